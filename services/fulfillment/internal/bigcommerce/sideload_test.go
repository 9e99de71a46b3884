package bigcommerce

import (
	"errors"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// sideLoadQuery is the query of every order read: the consignments with
// their lines, in the object structure.
const sideLoadQuery = "consignment_structure=object&include=consignments.line_items"

// readBothWays reads order id from a fake store that ignores the side-load
// and from one that serves it as mode says, and returns both reads and the
// second store's requests.
func readBothWays(t *testing.T, id uint64, n int, mode string, edit func(fs *fakeStore)) (plain, side order.StorefrontOrder, log []string) {
	t.Helper()
	read := func(mode string) (order.StorefrontOrder, []string) {
		fs, srv := newFakeStore(t)
		fs.addOrder(id, 11, n)
		fs.sideLoad = mode
		if edit != nil {
			edit(fs)
		}
		o, err := readOrder(testCtx(t), newClient(t, srv, nil), order.Key{Store: testStore, ID: id})
		if err != nil {
			t.Fatalf("read with side-load %q: %v", mode, err)
		}
		return o, fs.requests()
	}
	plain, _ = read("")
	side, log = read(mode)
	if plain.ContentsRead {
		t.Fatal("a server that ignores include: ContentsRead = true")
	}
	if len(plain.Lines) != n || len(plain.Shipping) != 1 {
		t.Fatalf("plain read: %d lines, %d addresses; want %d and 1", len(plain.Lines), len(plain.Shipping), n)
	}
	return plain, side, log
}

// One request reads the order with its lines and shipping address where
// the server side-loads them, in either structure, and what it reads is
// what the three requests of the plain read give, line for line (numbers
// given as strings, quantity_backordered present or absent).
func TestOrderSideLoadsItsContents(t *testing.T) {
	for _, mode := range []string{"object", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			plain, side, log := readBothWays(t, 250, 260, mode, nil)
			if !side.ContentsRead {
				t.Fatal("ContentsRead = false; want the side-loaded lines taken")
			}
			if !reflect.DeepEqual(side.Lines, plain.Lines) || !reflect.DeepEqual(side.Shipping, plain.Shipping) {
				t.Errorf("side-loaded contents differ from the plain read:\nlines %+v\nwant  %+v\nshipping %+v\nwant     %+v",
					side.Lines[:2], plain.Lines[:2], side.Shipping, plain.Shipping)
			}
			if want := "GET /stores/abc123/v2/orders/250?" + sideLoadQuery; len(log) != 1 || log[0] != want {
				t.Errorf("requests = %q; want only %q", log, want)
			}
		})
	}
}

// Lines of other consignments (downloads, pickups) are lines of the order
// too, a download's line_items given as one object as in BigCommerce's
// examples or as a list; only shipping consignments are addresses.
func TestOrderSideLoadKeepsLinesOfOtherConsignments(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  func(c map[string]any, line any)
	}{
		{"download", func(c map[string]any, line any) {
			c["downloads"] = []any{map[string]any{"recipient_email": "jo@example.com", "line_items": []any{line}}}
		}},
		{"download, one object", func(c map[string]any, line any) {
			c["downloads"] = []any{map[string]any{"recipient_email": "jo@example.com", "line_items": line}}
		}},
		{"pickup", func(c map[string]any, line any) {
			c["pickups"] = []any{map[string]any{"id": 1, "pickup_method_id": 2, "line_items": []any{line}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, side, _ := readBothWays(t, 251, 4, "object", func(fs *fakeStore) {
				o := fs.orders[251]
				o.lines[3]["order_address_id"] = 0
				o.addrs[0]["items_total"] = 6 // the three lines still sent to it
				fs.consignments = func(o *fakeOrder) any {
					c := o.consignments(true)
					delete(c, "downloads")
					tc.put(c, o.lines[3])
					return c
				}
			})
			if !side.ContentsRead || !reflect.DeepEqual(side.Shipping, plain.Shipping) || !reflect.DeepEqual(side.Lines, plain.Lines) {
				t.Fatalf("side read = %+v; want ContentsRead, lines %+v, shipping %+v", side, plain.Lines, plain.Shipping)
			}
		})
	}
}

// Whatever the side-load brings that is not the whole order, the lines and
// addresses are read from their own resources: never an order sent with
// lines missing, nor found ineligible for an address it was not given.
func TestOrderSideLoadNotWholeIsReadPlainly(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(fs *fakeStore)
	}{
		{"consignments as a link", func(fs *fakeStore) {
			fs.consignments = func(*fakeOrder) any {
				return map[string]any{"url": "https://example/consignments", "resource": "/orders/252/consignments"}
			}
		}},
		{"lines as links", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any { return o.consignments(false) }
		}},
		{"lines left out", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				c["shipping"].([]any)[0].(map[string]any)["line_items"] = []any{}
				return c
			}
		}},
		{"some lines left out", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				s := c["shipping"].([]any)[0].(map[string]any)
				s["line_items"] = s["line_items"].([]any)[:50]
				return c
			}
		}},
		{"no items_total", func(fs *fakeStore) { delete(fs.orders[252].order, "items_total") }},
		{"items_total not a count", func(fs *fakeStore) { fs.orders[252].order["items_total"] = "2.5" }},
		{"items_total null", func(fs *fakeStore) { fs.orders[252].order["items_total"] = nil }},
		{"a line of no quantity", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				line := maps.Clone(o.lines[5])
				line["id"], line["quantity"] = 9999, 0
				s := c["shipping"].([]any)[0].(map[string]any)
				s["line_items"] = append(s["line_items"].([]any), line)
				return c
			}
		}},
		{"a pickup without its lines", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				c["pickups"] = []any{map[string]any{"id": 1, "pickup_method_id": 2}}
				return c
			}
		}},
		{"a line without its sku", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				line := maps.Clone(o.lines[5])
				delete(line, "sku")
				c["shipping"].([]any)[0].(map[string]any)["line_items"].([]any)[5] = line
				return c
			}
		}},
		{"a line without its quantity shipped", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				line := maps.Clone(o.lines[5])
				line["quantity_shipped"] = nil
				c["shipping"].([]any)[0].(map[string]any)["line_items"].([]any)[5] = line
				return c
			}
		}},
		{"an address without its country", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				delete(c["shipping"].([]any)[0].(map[string]any), "country_iso2")
				return c
			}
		}},
		{"an address's items not its lines'", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				c["shipping"].([]any)[0].(map[string]any)["items_total"] = 121
				return c
			}
		}},
		{"a line twice", func(fs *fakeStore) {
			fs.orders[252].order["items_total"] = 122
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				s := c["shipping"].([]any)[0].(map[string]any)
				s["line_items"] = append(s["line_items"].([]any), o.lines[0])
				s["items_total"] = 122
				return c
			}
		}},
		{"no shipping consignment", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				lines := c["shipping"].([]any)[0].(map[string]any)["line_items"]
				c["shipping"] = []any{}
				c["downloads"] = []any{map[string]any{"recipient_email": "jo@example.com", "line_items": lines}}
				return c
			}
		}},
		{"legacy structure twice over", func(fs *fakeStore) {
			fs.consignments = func(o *fakeOrder) any {
				c := o.consignments(true)
				return []any{c, c}
			}
		}},
		{"an unknown shape", func(fs *fakeStore) {
			fs.consignments = func(*fakeOrder) any { return map[string]any{"shipping": "soon"} }
		}},
		{"no consignment", func(fs *fakeStore) {
			fs.consignments = func(*fakeOrder) any { return map[string]any{} }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain, side, log := readBothWays(t, 252, 60, "object", tc.edit)
			if side.ContentsRead {
				t.Fatal("ContentsRead = true; want the lines read from /products")
			}
			if !reflect.DeepEqual(side.Lines, plain.Lines) || !reflect.DeepEqual(side.Shipping, plain.Shipping) {
				t.Errorf("got %d lines, shipping %+v; want %d lines, %+v", len(side.Lines), side.Shipping, len(plain.Lines), plain.Shipping)
			}
			if countPrefix(log, "GET /stores/abc123/v2/orders/252/products") == 0 {
				t.Errorf("requests %q: want the lines read from /products", log)
			}
		})
	}
}

// A server that refuses the side-load (400, or 422) is asked plainly, at
// once and for a while: one extra request, no failure.
func TestOrderSideLoadRefused(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) { testOrderSideLoadRefused(t, status) })
	}
}

func testOrderSideLoadRefused(t *testing.T, status int) {
	fs, srv := newFakeStore(t)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.RawQuery != "" && !strings.Contains(r.URL.Path, "/products") {
			writeJSON(w, status, map[string]any{"status": status, "title": "The query parameter include is not supported"})
			return true
		}
		return false
	}
	fs.addOrder(253, 11, 3)
	fs.addOrder(254, 11, 3)
	c := newClient(t, srv, nil)
	for _, id := range []uint64{253, 254} {
		o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: id})
		if err != nil || o.ContentsRead || len(o.Lines) != 3 || len(o.Shipping) != 1 {
			t.Fatalf("order %d = %+v, %v; want it read plainly", id, o, err)
		}
	}
	want := []string{
		"GET /stores/abc123/v2/orders/253?" + sideLoadQuery,
		"GET /stores/abc123/v2/orders/253",
		"GET /stores/abc123/v2/orders/253/products?limit=250&page=1",
		"GET /stores/abc123/v2/orders/253/shipping_addresses",
		"GET /stores/abc123/v2/orders/254",
		"GET /stores/abc123/v2/orders/254/products?limit=250&page=1",
		"GET /stores/abc123/v2/orders/254/shipping_addresses",
	}
	if got := fs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// An answer to the side-load that cannot be decoded (cut short, say) is
// followed by the plain read in the same call, and that order is read
// plainly next time (an order too large to side-load would be every time).
func TestOrderSideLoadUndecodable(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(256, 11, 2)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.RawQuery, "include=") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":256,"status_id":11,"consignments":{"shipping":[{"id":7,"line_it`))
			return true
		}
		return false
	}
	c := newClient(t, srv, nil)
	for range 2 {
		o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 256})
		if err != nil || o.ContentsRead || len(o.Lines) != 2 || len(o.Shipping) != 1 {
			t.Fatalf("order = %+v, %v; want it read plainly", o, err)
		}
	}
	if got := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders/256?"+sideLoadQuery); got != 1 {
		t.Errorf("requests %q: want the side-load asked for once", fs.requests())
	}
}

// A 400 for the plain read too is the answer: an error, and the side-load
// is asked for again next time.
func TestOrderBadRequestBothWays(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(255, 11, 1)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "title": "Bad Request"})
		return true
	}
	c := newClient(t, srv, nil)
	for range 2 {
		if _, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 255}); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
			t.Fatalf("err = %v; want the 400", err)
		}
	}
	if got := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders/255?"+sideLoadQuery); got != 2 {
		t.Errorf("requests %q: want the side-load asked for each time", fs.requests())
	}
}

// PlainOrders (BIGCOMMERCE_SIDE_LOAD=false) never asks for the side-load.
func TestOrderPlainOrders(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.sideLoad = "object"
	fs.addOrder(257, 11, 2)
	c := newClient(t, srv, func(cfg *Config) { cfg.PlainOrders = true })
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 257})
	if err != nil || o.ContentsRead || len(o.Lines) != 2 || len(o.Shipping) != 1 {
		t.Fatalf("order = %+v, %v; want it read plainly", o, err)
	}
	if got := fs.requests(); got[0] != "GET /stores/abc123/v2/orders/257" || len(got) != 3 {
		t.Errorf("requests = %q; want the order read plainly, then its lines and addresses", got)
	}
}

// An order whose side-loaded read failed with a 5xx (or in transport) is
// read plainly next time, in case it is the side-load that fails for it;
// other orders are still side-loaded.
func TestOrderSideLoadFailedIsReadPlainlyNextTime(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.sideLoad = "object"
	fs.addOrder(258, 11, 2)
	fs.addOrder(259, 11, 2)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/orders/258") && r.URL.RawQuery != "" {
			writeJSON(w, http.StatusBadGateway, map[string]any{"status": 502, "title": "Bad Gateway"})
			return true
		}
		return false
	}
	c := newClient(t, srv, nil)
	k := order.Key{Store: testStore, ID: 258}
	var re *fulfill.RetryableError
	if _, err := c.Order(testCtx(t), k); !errors.As(err, &re) {
		t.Fatalf("err = %v; want a RetryableError", err)
	}
	o, err := readOrder(testCtx(t), c, k)
	if err != nil || o.ContentsRead || len(o.Lines) != 2 || len(o.Shipping) != 1 {
		t.Fatalf("order 258 = %+v, %v; want it read plainly", o, err)
	}
	if o, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 259}); err != nil || !o.ContentsRead {
		t.Fatalf("order 259 = %+v, %v; want it side-loaded", o, err)
	}
	want := []string{
		"GET /stores/abc123/v2/orders/258?" + sideLoadQuery,
		"GET /stores/abc123/v2/orders/258",
		"GET /stores/abc123/v2/orders/258/products?limit=250&page=1",
		"GET /stores/abc123/v2/orders/258/shipping_addresses",
		"GET /stores/abc123/v2/orders/259?" + sideLoadQuery,
	}
	if got := fs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := c.Stats(); s.SideLoaded != 1 || s.ReadApart != 1 {
		t.Errorf("Stats = %+v; want 1 order side-loaded (259), 1 read apart (258)", s)
	}
}

// Only the plain read may say an order does not exist: a 404 for the
// side-load is asked again plainly.
func TestOrderSideLoad404(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.sideLoad = "object"
	fs.addOrder(260, 11, 2)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.RawQuery != "" && !strings.Contains(r.URL.Path, "/products") {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	c := newClient(t, srv, nil)
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 260})
	if err != nil || o.ContentsRead || len(o.Lines) != 2 {
		t.Fatalf("order 260 = %+v, %v; want it found by the plain read", o, err)
	}
	if _, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 261}); !errors.Is(err, fulfill.ErrOrderNotFound) {
		t.Fatalf("order 261: err = %v; want ErrOrderNotFound", err)
	}
	if got := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders/261"); got != 2 {
		t.Errorf("requests %q: want order 261 asked for twice, the second time plainly", fs.requests())
	}
}
