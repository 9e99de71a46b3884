package bigcommerce

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// modifiedJSON is what the sweep reads of one element of GET /v2/orders.
type modifiedJSON struct {
	ID           flexUint   `json:"id"`
	StatusID     flexUint   `json:"status_id"`
	DateModified flexString `json:"date_modified"`
}

// dateLayouts are the forms BigCommerce gives dates in: RFC 2822 in v2
// answers, ISO 8601 elsewhere.
var dateLayouts = []string{time.RFC1123Z, time.RFC1123, time.RFC3339Nano, "2006-01-02T15:04:05-0700"}

func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised date %q", s)
}

// ModifiedOrders lists the store's orders in status statusID that were
// modified at or after since (GET /v2/orders with status_id and
// min_date_modified). It implements fulfill.OrderLister. Pages follow
// each other by min_id (the last id seen, plus one), not by page number:
// an order that leaves the status while the list is read (it is being
// processed) would otherwise shift the later pages and hide an order at a
// page boundary. That needs the list sorted by id (sort=id:asc): a page
// that is not (a server that ignores sort) switches the rest of the
// listing to page numbers, which lists every order whatever the order. An
// order whose date_modified does not parse gets a zero DateModified.
func (c *Client) ModifiedOrders(ctx context.Context, store string, statusID uint32, since time.Time) ([]order.Modified, error) {
	var out []order.Modified
	seen := map[uint64]bool{}
	var minID uint64
	byNumber := 0 // once the server ignores sort: the page of the query at minID
	for n := 1; ; n++ {
		if n > maxPages {
			return nil, fmt.Errorf("bigcommerce: GET /v2/orders: more than %d pages", maxPages)
		}
		q := url.Values{
			"status_id":         {strconv.FormatUint(uint64(statusID), 10)},
			"min_date_modified": {since.UTC().Format(time.RFC1123Z)},
			"sort":              {"id:asc"},
			"limit":             {strconv.Itoa(c.cfg.PageLimit)},
		}
		if minID > 0 {
			q.Set("min_id", strconv.FormatUint(minID, 10))
		}
		if byNumber > 1 {
			q.Set("page", strconv.Itoa(byNumber))
		}
		var batch []modifiedJSON
		// The list has no 404 of its own: one means a wrong base URL or
		// store hash, and is reported as an unexpected answer.
		if err := c.getJSONOr(ctx, store, request{method: http.MethodGet, path: "/v2/orders", query: q}, &batch, nil); err != nil {
			return nil, err
		}
		if byNumber == 0 && !sortedFrom(batch, minID) {
			byNumber = 1 // this page was page 1 of the query at minID
		}
		added := 0
		next := minID
		for _, m := range batch {
			id := uint64(m.ID)
			if id == 0 || seen[id] {
				continue
			}
			seen[id] = true
			mod, _ := parseDate(string(m.DateModified))
			out = append(out, order.Modified{ID: id, StatusID: uint32(m.StatusID), DateModified: mod})
			added++
			next = max(next, id+1)
		}
		if c.lastPage(len(batch), added) {
			return out, nil
		}
		if byNumber > 0 {
			byNumber++
		} else {
			minID = next
		}
	}
}

// sortedFrom says whether a page is sorted by id, ascending, from minID on.
func sortedFrom(batch []modifiedJSON, minID uint64) bool {
	prev := uint64(0)
	for _, m := range batch {
		id := uint64(m.ID)
		if id == 0 {
			continue
		}
		if id < minID || id <= prev {
			return false
		}
		prev = id
	}
	return true
}
