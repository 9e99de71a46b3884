package bigcommerce

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// listServer answers GET /v2/orders from n orders of status 11 sorted by
// id, filtered by min_id, cut into pages of at most pageCap (a server may
// cap limit) and chosen by page, and records the queries.
func listServer(t *testing.T, n, pageCap int) (*fakeStore, *Client) {
	t.Helper()
	fs, srv := newFakeStore(t)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/stores/"+testStore+"/v2/orders" {
			return false
		}
		q := r.URL.Query()
		minID, _ := strconv.Atoi(q.Get("min_id"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		limit = min(limit, pageCap)
		page, _ := strconv.Atoi(q.Get("page"))
		from := max(minID-1000, 0) + (max(page, 1)-1)*limit // order i has id 1000+i
		if from >= n {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		var out []map[string]any
		for i := from; i < min(from+limit, n); i++ {
			id := any(1000 + i)
			if i%2 == 1 {
				id = strconv.Itoa(1000 + i) // ids as strings are read too
			}
			out = append(out, map[string]any{"id": id, "status_id": 11, "status": "Awaiting Fulfillment",
				"date_modified": "Fri, 04 Dec 2026 20:0" + strconv.Itoa(i%10) + ":00 +0000"})
		}
		writeJSON(w, http.StatusOK, out)
		return true
	}
	return fs, newClient(t, srv, nil)
}

// orderedServer answers GET /v2/orders with the orders ids in that order
// (whatever sort asks), 50 a page by page, filtered by min_id only if
// minIDs, and 204 past the end.
func orderedServer(t *testing.T, ids []int, minIDs bool) (*fakeStore, *Client) {
	t.Helper()
	fs, srv := newFakeStore(t)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		minID, _ := strconv.Atoi(q.Get("min_id"))
		page, _ := strconv.Atoi(q.Get("page"))
		var kept []int
		for _, id := range ids {
			if !minIDs || id >= minID {
				kept = append(kept, id)
			}
		}
		from := min((max(page, 1)-1)*50, len(kept))
		var out []map[string]any
		for _, id := range kept[from:min(from+50, len(kept))] {
			out = append(out, map[string]any{"id": id, "status_id": 11, "date_modified": "Fri, 04 Dec 2026 20:00:00 +0000"})
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		writeJSON(w, http.StatusOK, out)
		return true
	}
	return fs, newClient(t, srv, nil)
}

// idRange returns the ids from first to last, counting up or down.
func idRange(first, last int) []int {
	var ids []int
	for id := first; ; {
		ids = append(ids, id)
		switch {
		case id == last:
			return ids
		case first < last:
			id++
		default:
			id--
		}
	}
}

func TestModifiedOrders(t *testing.T) {
	since := time.Date(2026, 12, 4, 19, 55, 0, 0, time.UTC)
	t.Run("query and decoding", func(t *testing.T) {
		fs, c := listServer(t, 3, 250)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].ID != 1000 || got[1].ID != 1001 || got[2].StatusID != 11 {
			t.Fatalf("got %+v", got)
		}
		if want := time.Date(2026, 12, 4, 20, 1, 0, 0, time.UTC); !got[1].DateModified.Equal(want) {
			t.Errorf("date_modified = %v, want %v", got[1].DateModified, want)
		}
		want := "GET /stores/abc123/v2/orders?limit=250&min_date_modified=Fri%2C+04+Dec+2026+19%3A55%3A00+%2B0000&sort=id%3Aasc&status_id=11"
		if reqs := fs.requests(); len(reqs) != 1 || reqs[0] != want {
			t.Errorf("requests %q, want [%q]", reqs, want)
		}
	})
	t.Run("a server that refuses sort is asked without it", func(t *testing.T) {
		fs, c := orderedServer(t, idRange(1000, 1002), true)
		answer := fs.fault
		fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Query().Has("sort") {
				writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "title": "The field 'sort' is invalid."})
				return true
			}
			return answer(w, r)
		}
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 3 {
			t.Fatalf("got %+v, %v; want the 3 orders", got, err)
		}
		reqs := fs.requests()
		if len(reqs) != 2 || !strings.Contains(reqs[0], "sort=") || strings.Contains(reqs[1], "sort=") {
			t.Errorf("requests %q; want one with sort, refused, then one without", reqs)
		}
	})
	t.Run("no orders: 204", func(t *testing.T) {
		_, c := listServer(t, 0, 250)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("a server that cuts pages at 50", func(t *testing.T) {
		fs, c := listServer(t, 120, 50)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 120 {
			t.Fatalf("got %d orders, %v; want all 120", len(got), err)
		}
		// 3 by min_id, then pages 2 and 3 by number: a listing of
		// several pages is read both ways.
		if n := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders?"); n != 5 {
			t.Errorf("%d pages read, want 5", n)
		}
	})
	t.Run("pages follow by min_id", func(t *testing.T) {
		fs, c := listServer(t, 120, 50)
		if _, err := c.ModifiedOrders(testCtx(t), testStore, 11, since); err != nil {
			t.Fatal(err)
		}
		reqs := fs.requests()
		if len(reqs) != 5 || !strings.Contains(reqs[1], "min_id=1050&") || !strings.Contains(reqs[2], "min_id=1100&") ||
			!strings.Contains(reqs[3], "page=2&") || !strings.Contains(reqs[4], "page=3&") {
			t.Errorf("requests %q, want min_id 1050 then 1100, then pages 2 and 3", reqs)
		}
	})
	t.Run("a server that ignores sort: the rest by page number", func(t *testing.T) {
		// Newest first, 50 a page; min_id and page honoured. Following
		// by min_id from the first page's highest id would list 50 of
		// the 120 and lose the rest for good.
		fs, c := orderedServer(t, idRange(1119, 1000), true)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 120 {
			t.Fatalf("got %d orders, %v; want all 120", len(got), err)
		}
		if reqs := fs.requests(); len(reqs) != 3 || !strings.Contains(reqs[1], "page=2&") || !strings.Contains(reqs[2], "page=3&") {
			t.Errorf("requests %q, want pages 2 and 3 after the first", reqs)
		}
	})
	t.Run("a server that sorts by date: every page looks sorted", func(t *testing.T) {
		// Oldest change first; order 1005 changed last. Page 1 happens to
		// be in id order, and min_id from its highest id would filter
		// 1005 out of every later page: only reading by page number too
		// finds it.
		byDate := append(append(idRange(1000, 1004), idRange(1006, 1099)...), 1005)
		_, c := orderedServer(t, byDate, true)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 100 {
			t.Fatalf("got %d orders, %v; want all 100", len(got), err)
		}
	})
	t.Run("a server that ignores min_id", func(t *testing.T) {
		fs, c := orderedServer(t, idRange(1000, 1119), false)
		got, err := c.ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 120 {
			t.Fatalf("got %d orders, %v; want all 120", len(got), err)
		}
		if n := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders?"); n != 4 {
			t.Errorf("%d requests, want 4 (page 1, min_id ignored, pages 2 and 3)", n)
		}
	})
	t.Run("an unreadable date_modified is zero", func(t *testing.T) {
		fs, srv := newFakeStore(t)
		fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
			writeJSON(w, http.StatusOK, []map[string]any{{"id": 5, "status_id": 11, "date_modified": "yesterday"}})
			return true
		}
		got, err := newClient(t, srv, nil).ModifiedOrders(testCtx(t), testStore, 11, since)
		if err != nil || len(got) != 1 || !got[0].DateModified.IsZero() {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("a 404 is not an order that does not exist", func(t *testing.T) {
		_, srv := newFakeStore(t)
		c := newClient(t, srv, func(c *Config) { c.StoreHash = "" })
		_, err := c.ModifiedOrders(testCtx(t), "nosuchstore", 11, since)
		if err == nil || errors.Is(err, fulfill.ErrOrderNotFound) {
			t.Fatalf("err = %v, want an unexpected answer, not ErrOrderNotFound", err)
		}
	})
}
