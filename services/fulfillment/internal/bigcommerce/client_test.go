package bigcommerce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

const (
	testStore = "abc123"
	testToken = "s3cr3t-token-value"
)

// fakeStore is a BigCommerce store API following bigcommerce.md, with hooks
// for faults. Handlers run concurrently, so everything is under mu.
type fakeStore struct {
	t  *testing.T
	mu sync.Mutex
	// orders by id
	orders map[uint64]*fakeOrder
	// endOfLines says how a page past the last line is answered:
	// "204" (No Content), "404", "empty" ([]) or "" (a short page ends it
	// anyway).
	endOfLines string
	// metafields per order
	metafields map[uint64][]map[string]any
	nextMFID   int
	// sideLoad is how GET /v2/orders/{id} answers include=consignments
	// .line_items: "" ignores it (no consignments), "object" and "legacy"
	// serve them in that structure (object only with
	// consignment_structure=object, as BigCommerce).
	sideLoad string
	// consignments, when set, replaces what "object" serves.
	consignments func(o *fakeOrder) any
	// fault, when set, may answer a request itself (returns true).
	fault func(w http.ResponseWriter, r *http.Request) bool
	// log of requests: "METHOD path?query"
	log []string
	// bodies of metafield writes
	writes []map[string]any
}

type fakeOrder struct {
	order map[string]any
	lines []map[string]any
	addrs []map[string]any
}

func newFakeStore(t *testing.T) (*fakeStore, *httptest.Server) {
	t.Helper()
	fs := &fakeStore{t: t, orders: map[uint64]*fakeOrder{}, metafields: map[uint64][]map[string]any{}, nextMFID: 100}
	srv := httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(srv.Close)
	return fs, srv
}

func (fs *fakeStore) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.log...)
}

func (fs *fakeStore) serve(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	fs.log = append(fs.log, r.Method+" "+r.URL.RequestURI())
	fault := fs.fault
	fs.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}
	if r.Header.Get("X-Auth-Token") != testToken {
		http.Error(w, `{"status":401,"title":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Accept") != "application/json" {
		http.Error(w, "Accept must be application/json", http.StatusNotAcceptable)
		return
	}
	prefix := "/stores/" + testStore
	if !strings.HasPrefix(r.URL.Path, prefix+"/") {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, prefix+"/"), "/")
	// v2 orders {id} [products|shipping_addresses]; v3 orders {id} metafields [{mfid}]
	if len(parts) < 3 || parts[1] != "orders" {
		http.NotFound(w, r)
		return
	}
	id, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	o := fs.orders[id]
	if o == nil {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `[{"status":404,"message":"The requested resource was not found."}]`)
		return
	}
	switch {
	case parts[0] == "v2" && len(parts) == 3 && r.Method == http.MethodGet:
		fs.serveOrder(w, r, o)
	case parts[0] == "v2" && len(parts) == 4 && parts[3] == "products" && r.Method == http.MethodGet:
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if page < 1 {
			page = 1
		}
		if limit < 1 {
			limit = 50
		}
		if limit > 250 {
			limit = 250
		}
		from := (page - 1) * limit
		if from >= len(o.lines) {
			switch fs.endOfLines {
			case "204":
				w.WriteHeader(http.StatusNoContent)
				return
			case "404":
				http.NotFound(w, r)
				return
			}
			writeJSON(w, http.StatusOK, []any{})
			return
		}
		writeJSON(w, http.StatusOK, o.lines[from:min(from+limit, len(o.lines))])
	case parts[0] == "v2" && len(parts) == 4 && parts[3] == "shipping_addresses" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, o.addrs)
	case parts[0] == "v3" && len(parts) >= 4 && parts[3] == "metafields":
		fs.serveMetafields(w, r, id, parts[4:])
	default:
		http.NotFound(w, r)
	}
}

// serveOrder answers GET /v2/orders/{id}, with the order's consignments
// as fs.sideLoad says. It runs under fs.mu.
func (fs *fakeStore) serveOrder(w http.ResponseWriter, r *http.Request, o *fakeOrder) {
	q := r.URL.Query()
	include := q.Get("include")
	if fs.sideLoad == "" || (include != "consignments" && include != "consignments.line_items") {
		writeJSON(w, http.StatusOK, o.order)
		return
	}
	view := maps.Clone(o.order)
	var c any = o.consignments(include == "consignments.line_items")
	if fs.consignments != nil {
		c = fs.consignments(o)
	}
	if fs.sideLoad == "legacy" || q.Get("consignment_structure") != "object" {
		c = []any{c}
	}
	view["consignments"] = c
	writeJSON(w, http.StatusOK, view)
}

// consignments is the order's consignments in the object structure: one
// shipping consignment per address, with the lines sent to it, and the
// other lines as a download. Without withLines, lines are links.
func (o *fakeOrder) consignments(withLines bool) map[string]any {
	items := func(match func(l map[string]any) bool) []any {
		out := []any{}
		for _, l := range o.lines {
			if !match(l) {
				continue
			}
			if withLines {
				out = append(out, l)
			} else {
				out = append(out, map[string]any{"url": "https://example/products/" + fmt.Sprint(l["id"]), "resource": "/orders/1/products/" + fmt.Sprint(l["id"])})
			}
		}
		return out
	}
	shipping := []any{}
	toAddr := map[string]bool{}
	for _, a := range o.addrs {
		id := fmt.Sprint(a["id"])
		toAddr[id] = true
		c := maps.Clone(a)
		c["line_items"] = items(func(l map[string]any) bool { return fmt.Sprint(l["order_address_id"]) == id })
		c["shipping_quotes"] = map[string]any{"url": "https://example/quotes", "resource": "/orders/1/shipping_addresses/" + id + "/shipping_quotes"}
		shipping = append(shipping, c)
	}
	out := map[string]any{"shipping": shipping, "pickups": []any{}}
	if rest := items(func(l map[string]any) bool { return !toAddr[fmt.Sprint(l["order_address_id"])] }); len(rest) > 0 {
		out["downloads"] = []any{map[string]any{"recipient_email": "jo@example.com", "line_items": rest}}
	}
	return out
}

// serveMetafields runs under fs.mu.
func (fs *fakeStore) serveMetafields(w http.ResponseWriter, r *http.Request, id uint64, rest []string) {
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		ns, key := r.URL.Query().Get("namespace"), r.URL.Query().Get("key")
		data := []map[string]any{}
		for _, mf := range fs.metafields[id] {
			if (ns == "" || mf["namespace"] == ns) && (key == "" || mf["key"] == key) {
				data = append(data, mf)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{
			"pagination": map[string]any{"total": len(data), "count": len(data), "per_page": 50, "current_page": 1, "total_pages": 1},
		}})
	case len(rest) == 0 && r.Method == http.MethodPost:
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fs.writes = append(fs.writes, maps.Clone(body))
		for _, mf := range fs.metafields[id] {
			if mf["namespace"] == body["namespace"] && mf["key"] == body["key"] {
				writeJSON(w, http.StatusConflict, map[string]any{"status": 409, "title": "A metafield with this namespace and key already exists"})
				return
			}
		}
		fs.nextMFID++
		body["id"] = fs.nextMFID
		body["resource_type"] = "order"
		body["resource_id"] = id
		fs.metafields[id] = append(fs.metafields[id], body)
		writeJSON(w, http.StatusOK, map[string]any{"data": body, "meta": map[string]any{}})
	case len(rest) == 1 && r.Method == http.MethodPut:
		mfid, _ := strconv.Atoi(rest[0])
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fs.writes = append(fs.writes, maps.Clone(body))
		for _, mf := range fs.metafields[id] {
			if n, _ := mf["id"].(int); n == mfid {
				mf["value"] = body["value"]
				writeJSON(w, http.StatusOK, map[string]any{"data": mf, "meta": map[string]any{}})
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]any{"status": 404, "title": "metafield not found"})
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func address(id int, country string) map[string]any {
	return map[string]any{
		"id": id, "first_name": "Jo", "last_name": "Bloggs", "company": "Bloggs Ltd",
		"street_1": "1 High St", "street_2": "Flat 2", "city": "Leeds", "state": "West Yorkshire",
		"zip": "LS1 1AA", "country": "United Kingdom", "country_iso2": country,
		"phone": "01130000000", "email": "jo@example.com",
		"shipping_method": "Free", "items_total": 2, "items_shipped": 0,
	}
}

// addOrder stores an order with n lines; line i has id 1000+i and SKU
// APP<i>. Even lines carry quantity_backordered, odd ones do not, and every
// third line gives its numbers as strings, as the v2 API sometimes does.
func (fs *fakeStore) addOrder(id uint64, status int, n int) {
	o := &fakeOrder{
		order: map[string]any{
			"id": id, "status_id": status, "status": order.StatusName(uint32(status)),
			"customer_message": "leave at the door", "staff_notes": "",
			"date_created":    "Tue, 20 Nov 2012 00:00:00 +0000",
			"billing_address": address(0, "GB"),
			"products":        map[string]any{"url": "https://example/products", "resource": "/orders/1/products"},
			"total_inc_tax":   "10.0000",
		},
		addrs: []map[string]any{address(7, "GB")},
	}
	for i := range n {
		l := map[string]any{
			"id": 1000 + i, "product_id": 50 + i, "variant_id": 3, "sku": fmt.Sprintf("APP%d", i),
			"name": fmt.Sprintf("Product %d", i), "quantity": 2, "quantity_shipped": 0,
			"quantity_refunded": 0, "order_address_id": 7, "is_bundled_product": false,
			"parent_order_product_id": nil, "product_options": []any{},
		}
		if i%2 == 0 {
			l["quantity_backordered"] = 1
		}
		if i%3 == 0 {
			l["id"] = strconv.Itoa(1000 + i)
			l["quantity"] = "2"
		}
		o.lines = append(o.lines, l)
	}
	// As BigCommerce does: the items to ship to the address, and in all.
	o.addrs[0]["items_total"] = 2 * n
	o.order["items_total"] = 2 * n
	fs.mu.Lock()
	fs.orders[id] = o
	fs.mu.Unlock()
}

func newClient(t *testing.T, srv *httptest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: srv.URL, AccessToken: testToken, HTTPClient: srv.Client(), Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func countPrefix(log []string, prefix string) int {
	n := 0
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestOrderReadsEveryPageAndDecodes reads from a server that ignores the
// side-load (the fake's default): the lines and addresses come from their
// own resources, every page.
func TestOrderReadsEveryPageAndDecodes(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(250, 11, 260)
	c := newClient(t, srv, nil)

	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 250})
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	if o.ID != 250 || o.StatusID != 11 || o.Status != "Awaiting Fulfillment" || o.CustomerMessage != "leave at the door" {
		t.Errorf("order header = %+v", o)
	}
	if len(o.Lines) != 260 {
		t.Fatalf("got %d lines, want 260", len(o.Lines))
	}
	if o.Billing.CountryISO2 != "GB" || o.Billing.FirstName != "Jo" {
		t.Errorf("billing = %+v", o.Billing)
	}
	l0 := o.Lines[0] // numbers as strings, backordered present
	if l0.ID != 1000 || l0.ProductID != 50 || l0.SKU != "APP0" || l0.Name != "Product 0" || l0.Quantity != 2 ||
		l0.OrderAddressID != 7 || l0.QuantityBackordered == nil || *l0.QuantityBackordered != 1 {
		t.Errorf("line 0 = %+v", l0)
	}
	if l1 := o.Lines[1]; l1.ID != 1001 || l1.QuantityBackordered != nil {
		t.Errorf("line 1 = %+v (quantity_backordered absent must be nil)", l1)
	}
	if last := o.Lines[259]; last.ID != 1259 || last.SKU != "APP259" {
		t.Errorf("last line = %+v", last)
	}
	want := order.Address{ID: 7, FirstName: "Jo", LastName: "Bloggs", Company: "Bloggs Ltd", Street1: "1 High St",
		Street2: "Flat 2", City: "Leeds", State: "West Yorkshire", Zip: "LS1 1AA", Country: "United Kingdom",
		CountryISO2: "GB", Phone: "01130000000", Email: "jo@example.com"}
	if len(o.Shipping) != 1 || o.Shipping[0] != want {
		t.Errorf("shipping = %+v, want [%+v]", o.Shipping, want)
	}

	got := fs.requests()
	wantLog := []string{
		"GET /stores/abc123/v2/orders/250?" + sideLoadQuery,
		"GET /stores/abc123/v2/orders/250/products?limit=250&page=1",
		"GET /stores/abc123/v2/orders/250/products?limit=250&page=2",
		"GET /stores/abc123/v2/orders/250/shipping_addresses",
	}
	if strings.Join(got, "\n") != strings.Join(wantLog, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLog, "\n"))
	}
	if s := c.Stats(); s.Requests != 4 {
		t.Errorf("Stats = %+v, want 4 requests", s)
	}
}

func TestOrderPagingEnds(t *testing.T) {
	for _, tc := range []struct {
		name, end string
		lines     int
		limit     int
		wantPages int
	}{
		{"204 after a full page", "204", 250, 250, 2},
		{"empty array after a full page", "empty", 250, 250, 2},
		{"short page", "204", 260, 250, 2},
		{"small pages", "204", 7, 3, 3},
		{"fewer than 50 lines: one page", "empty", 49, 250, 1},
		{"a page of 50 may be cut short by the server: read on", "empty", 50, 250, 2},
		{"no lines", "empty", 0, 250, 1},
		{"no lines 204", "204", 0, 250, 1},
		{"404 for the page after two full ones", "404", 100, 50, 3},
		{"404 for the page after 50 lines", "404", 50, 250, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, srv := newFakeStore(t)
			fs.endOfLines = tc.end
			fs.addOrder(9, 11, tc.lines)
			c := newClient(t, srv, func(c *Config) { c.PageLimit = tc.limit })
			o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 9})
			if err != nil {
				t.Fatalf("Order: %v", err)
			}
			if len(o.Lines) != tc.lines {
				t.Errorf("got %d lines, want %d", len(o.Lines), tc.lines)
			}
			if n := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders/9/products"); n != tc.wantPages {
				t.Errorf("%d product pages read, want %d", n, tc.wantPages)
			}
		})
	}
}

// A server that ignores `page` must neither loop for ever nor double lines.
func TestOrderPagingServerIgnoresPage(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(9, 11, 4)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/products") {
			return false
		}
		fs.mu.Lock()
		lines := fs.orders[9].lines
		fs.mu.Unlock()
		writeJSON(w, http.StatusOK, lines)
		return true
	}
	c := newClient(t, srv, func(c *Config) { c.PageLimit = 2 })
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 9})
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	if len(o.Lines) != 4 {
		t.Errorf("got %d lines, want 4", len(o.Lines))
	}
}

// A server that ignores `limit` (or caps it) and serves BigCommerce's
// default page of 50 must not make lines 51 and beyond disappear: a short
// live order would be charged.
func TestOrderPagingServerCapsLimitAt50(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(9, 11, 120)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/products") {
			return false
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		fs.mu.Lock()
		lines := fs.orders[9].lines
		fs.mu.Unlock()
		from := min((max(page, 1)-1)*50, len(lines))
		writeJSON(w, http.StatusOK, lines[from:min(from+50, len(lines))])
		return true
	}
	c := newClient(t, srv, nil)
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 9})
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	if len(o.Lines) != 120 {
		t.Errorf("got %d lines, want all 120", len(o.Lines))
	}
	if n := countPrefix(fs.requests(), "GET /stores/abc123/v2/orders/9/products"); n != 3 {
		t.Errorf("%d product pages read, want 3 (50, 50, 20)", n)
	}
}

// A 404 in the middle of an order's lines must not pass for the end of the
// list: the order would be sent, and charged, with lines missing. The
// shipping address's items_total tells the two apart.
func TestOrderLines404MidListIsNotTheEnd(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(9, 11, 120)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/products") && r.URL.Query().Get("page") == "2" {
			http.NotFound(w, r)
			return true
		}
		return false
	}
	c := newClient(t, srv, func(c *Config) { c.PageLimit = 50 })
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 9})
	if err == nil || errors.Is(err, fulfill.ErrOrderNotFound) || !strings.Contains(err.Error(), "items_total") {
		t.Fatalf("Order = %d lines, %v; want an error naming items_total", len(o.Lines), err)
	}
}

// Once the order itself was read, a 404 from its lines' first page or its
// shipping addresses is an unexpected answer, retried later: taken for "no
// such order", it would make a real order INELIGIBLE for good.
func TestOrderSubresource404IsNotOrderNotFound(t *testing.T) {
	for _, sub := range []string{"/products", "/shipping_addresses"} {
		t.Run(sub, func(t *testing.T) {
			fs, srv := newFakeStore(t)
			fs.addOrder(9, 11, 2)
			fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, sub) {
					return false
				}
				http.NotFound(w, r)
				return true
			}
			c := newClient(t, srv, nil)
			_, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 9})
			if err == nil || errors.Is(err, fulfill.ErrOrderNotFound) {
				t.Fatalf("err = %v, want an error other than ErrOrderNotFound", err)
			}
		})
	}
}

func TestOrderNotFound(t *testing.T) {
	_, srv := newFakeStore(t)
	c := newClient(t, srv, nil)
	_, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 404})
	if !errors.Is(err, fulfill.ErrOrderNotFound) {
		t.Fatalf("err = %v, want ErrOrderNotFound", err)
	}
	var re *fulfill.RetryableError
	if errors.As(err, &re) {
		t.Errorf("a missing order is not retryable: %v", err)
	}
}

func TestRateLimit429ThenSuccess(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	var throttled atomic.Int32
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if throttled.Add(1) > 2 {
			return false
		}
		w.Header().Set("X-Rate-Limit-Time-Reset-Ms", "5")
		w.Header().Set("X-Rate-Limit-Requests-Left", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	c := newClient(t, srv, nil)
	o, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 1})
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	if len(o.Lines) != 1 {
		t.Errorf("lines = %d", len(o.Lines))
	}
	s := c.Stats()
	if s.RateLimited != 2 || s.Requests != 5 {
		t.Errorf("Stats = %+v, want 2 rate-limited of 5 requests", s)
	}
}

func TestRateLimitExhausted(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Rate-Limit-Time-Reset-Ms", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	c := newClient(t, srv, func(c *Config) { c.MaxRetries = 2 })
	_, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
	var re *fulfill.RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RetryableError", err)
	}
	if re.RetryAfter != 2*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 2ms", re.RetryAfter)
	}
	if n := len(fs.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (1 + 2 retries)", n)
	}
}

// A reset beyond the caller's deadline is not slept through.
func TestRateLimitResetBeyondDeadline(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Rate-Limit-Time-Reset-Ms", "20000")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	c := newClient(t, srv, nil)
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	_, err := c.Order(ctx, order.Key{Store: testStore, ID: 1})
	var re *fulfill.RetryableError
	if !errors.As(err, &re) || re.RetryAfter <= 0 {
		t.Fatalf("err = %v, want *RetryableError with RetryAfter", err)
	}
	if n := len(fs.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestRequestsLeftZeroPacesNextRequest(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	const reset = 60 * time.Millisecond
	stamps := stampRequests(fs, func(n int, h http.Header) {
		if n == 1 {
			h.Set("X-Rate-Limit-Requests-Left", "0")
			h.Set("X-Rate-Limit-Time-Reset-Ms", strconv.Itoa(int(reset/time.Millisecond)))
		} else {
			h.Set("X-Rate-Limit-Requests-Left", "100")
			h.Set("X-Rate-Limit-Time-Reset-Ms", "1")
		}
	})
	c := newClient(t, srv, nil)
	if _, err := readOrder(testCtx(t), c, order.Key{Store: testStore, ID: 1}); err != nil {
		t.Fatalf("Order: %v", err)
	}
	times := stamps()
	if len(times) != 3 {
		t.Fatalf("%d requests, want 3", len(times))
	}
	// The server stamped the first request before answering; the client
	// saw the answer later still; so the gap is at least the reset.
	if gap := times[1].Sub(times[0]); gap < reset {
		t.Errorf("second request came %v after the first, want >= %v", gap, reset)
	}
	if s := c.Stats(); s.PacedWaits != 1 || s.RateLimited != 0 {
		t.Errorf("Stats = %+v, want 1 paced wait", s)
	}
}

// Concurrent calls share the pacing: after an answer with no request left,
// no call goes out before the reset.
func TestPacingIsShared(t *testing.T) {
	fs, srv := newFakeStore(t)
	for i := uint64(1); i <= 8; i++ {
		fs.addOrder(i, 11, 1)
	}
	const reset = 50 * time.Millisecond
	var mu sync.Mutex
	var first time.Time
	var early int
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if first.IsZero() {
			first = now
			w.Header().Set("X-Rate-Limit-Requests-Left", "0")
			w.Header().Set("X-Rate-Limit-Time-Reset-Ms", strconv.Itoa(int(reset/time.Millisecond)))
			return false
		}
		if now.Sub(first) < reset {
			early++
		}
		return false
	}
	c := newClient(t, srv, nil)
	// One call first, so the hold is known before the others start.
	if _, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := uint64(2); i <= 8; i++ {
		wg.Go(func() {
			if _, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if early != 0 {
		t.Errorf("%d requests went out before the reset", early)
	}
}

func TestServerErrorIsRetryable(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
		return true
	}
	c := newClient(t, srv, nil)
	_, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
	var re *fulfill.RetryableError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RetryableError", err)
	}
	if re.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter = %v, want 3s", re.RetryAfter)
	}
	if n := len(fs.requests()); n != 1 {
		t.Errorf("%d requests; a 5xx is left to the caller's backoff", n)
	}
}

// An error body that echoes the request (some proxies do) never carries the
// access token into an error, which reaches logs, records and API answers.
func TestErrorBodiesNeverRepeatTheToken(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
		fs, srv := newFakeStore(t)
		fs.addOrder(1, 11, 1)
		fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "bad request; headers were X-Auth-Token: "+r.Header.Get("X-Auth-Token")+" Accept: json", code)
			return true
		}
		c := newClient(t, srv, nil)
		_, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
		if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("HTTP %d: err = %v; want the body quoted with the token redacted", code, err)
		}
	}
}

func TestTransportFailuresAreRetryable(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := New(Config{BaseURL: "http://" + addr, AccessToken: testToken, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
		var re *fulfill.RetryableError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want *RetryableError", err)
		}
		if strings.Contains(err.Error(), testToken) {
			t.Errorf("error holds the token: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		fs, srv := newFakeStore(t)
		fs.addOrder(1, 11, 1)
		fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
			<-r.Context().Done() // never answers; released when the client gives up
			return true
		}
		c := newClient(t, srv, func(c *Config) { c.Timeout = 50 * time.Millisecond })
		_, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
		var re *fulfill.RetryableError
		if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want *RetryableError wrapping DeadlineExceeded", err)
		}
	})
}

func TestUnauthorized(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			fs, srv := newFakeStore(t)
			fs.addOrder(1, 11, 1)
			fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
				http.Error(w, "token "+r.Header.Get("X-Auth-Token")+" is not valid", status)
				return true
			}
			c := newClient(t, srv, nil)
			_, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 1})
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			var re *fulfill.RetryableError
			if errors.As(err, &re) {
				t.Errorf("a refused token is not retryable")
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error holds the token: %v", err)
			}
			if !strings.Contains(err.Error(), "access token") {
				t.Errorf("error does not say the access token was refused: %v", err)
			}
		})
	}
}

func TestSupplierReference(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.addOrder(2, 11, 1)
	fs.metafields[1] = []map[string]any{
		{"id": 5, "namespace": "other", "key": "offline_order_id", "value": "wrong", "permission_set": "app_only"},
		{"id": 6, "namespace": "tropship", "key": "offline_order_id", "value": "TS-777", "permission_set": "app_only"},
	}
	c := newClient(t, srv, nil)
	ctx := testCtx(t)

	got, err := c.SupplierReference(ctx, order.Key{Store: testStore, ID: 1})
	if err != nil || got != "TS-777" {
		t.Errorf("SupplierReference(1) = %q, %v; want TS-777", got, err)
	}
	got, err = c.SupplierReference(ctx, order.Key{Store: testStore, ID: 2})
	if err != nil || got != "" {
		t.Errorf("SupplierReference(2) = %q, %v; want empty", got, err)
	}
	if _, err := c.SupplierReference(ctx, order.Key{Store: testStore, ID: 3}); !errors.Is(err, fulfill.ErrOrderNotFound) {
		t.Errorf("SupplierReference(3): %v, want ErrOrderNotFound", err)
	}
	log := fs.requests()
	if log[0] != "GET /stores/abc123/v3/orders/1/metafields?key=offline_order_id&namespace=tropship" {
		t.Errorf("request = %q", log[0])
	}
}

// A server that ignores the filter must not make another namespace's value
// pass for ours.
func TestSupplierReferenceIgnoredFilter(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		writeJSON(w, http.StatusOK, map[string]any{"data": []any{
			map[string]any{"id": 5, "namespace": "other", "key": "offline_order_id", "value": "wrong"},
		}})
		return true
	}
	c := newClient(t, srv, nil)
	got, err := c.SupplierReference(testCtx(t), order.Key{Store: testStore, ID: 1})
	if err != nil || got != "" {
		t.Errorf("SupplierReference = %q, %v; want empty", got, err)
	}
}

func TestSetSupplierReference(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	c := newClient(t, srv, func(c *Config) { c.MetafieldDescription = "desc" })
	ctx := testCtx(t)
	k := order.Key{Store: testStore, ID: 1}

	if err := c.SetSupplierReference(ctx, k, "TS-1"); err != nil {
		t.Fatalf("create: %v", err)
	}
	want := map[string]any{"permission_set": "app_only", "namespace": "tropship", "key": "offline_order_id", "value": "TS-1", "description": "desc"}
	fs.mu.Lock()
	w0 := fs.writes[0]
	fs.mu.Unlock()
	for k, v := range want {
		if w0[k] != v {
			t.Errorf("POST body %s = %v, want %v", k, w0[k], v)
		}
	}
	if len(w0) != len(want) {
		t.Errorf("POST body has fields %v, want exactly %v", w0, want)
	}

	// The same value again: 409, found equal, nothing more.
	before := len(fs.requests())
	if err := c.SetSupplierReference(ctx, k, "TS-1"); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	log := fs.requests()
	wantTail := []string{
		"POST /stores/abc123/v3/orders/1/metafields",
		"GET /stores/abc123/v3/orders/1/metafields?key=offline_order_id&namespace=tropship",
	}
	if got := strings.Join(log[before:], "\n"); got != strings.Join(wantTail, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", got, strings.Join(wantTail, "\n"))
	}

	// Another value: never overwritten; the error names both ids, and is
	// not worth retrying.
	before = len(fs.requests())
	err := c.SetSupplierReference(ctx, k, "TS-2")
	var re *fulfill.RetryableError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), `"TS-1"`) || !strings.Contains(err.Error(), `"TS-2"`) {
		t.Fatalf("write of another id: %v; want a final error naming TS-1 and TS-2", err)
	}
	if got, _ := c.SupplierReference(ctx, k); got != "TS-1" {
		t.Errorf("the metafield holds %q, want TS-1 kept", got)
	}
	if n := len(fs.requests()) - before; n != 3 {
		t.Errorf("write of another id made %d requests, want 3 (POST, GET, and the check's GET)", n)
	}

	if err := c.SetSupplierReference(ctx, order.Key{Store: testStore, ID: 99}, "TS-3"); !errors.Is(err, fulfill.ErrOrderNotFound) {
		t.Errorf("missing order: %v, want ErrOrderNotFound", err)
	}
	if err := c.SetSupplierReference(ctx, k, ""); err == nil {
		t.Error("an empty reference was accepted")
	}
}

func TestStoreHashGuard(t *testing.T) {
	fs, srv := newFakeStore(t)
	c := newClient(t, srv, func(c *Config) { c.StoreHash = testStore })
	if _, err := c.Order(testCtx(t), order.Key{Store: "other", ID: 1}); err == nil {
		t.Fatal("an order of another store was read")
	}
	if _, err := c.Order(testCtx(t), order.Key{ID: 1}); err == nil {
		t.Fatal("a key without a store was accepted")
	}
	if n := len(fs.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestConfig(t *testing.T) {
	c, err := New(Config{AccessToken: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.BaseURL != DefaultBaseURL || c.cfg.MetafieldNamespace != "tropship" || c.cfg.MetafieldKey != "offline_order_id" ||
		c.cfg.MaxRetries != 3 || c.cfg.PageLimit != 250 || c.cfg.Timeout != DefaultTimeout {
		t.Errorf("defaults = %+v", c.cfg)
	}
	for _, bad := range []Config{
		{},
		{AccessToken: "x", BaseURL: "ftp://x"},
		{AccessToken: "x", BaseURL: "::"},
		{AccessToken: "x", PageLimit: 251},
		{AccessToken: "x", MetafieldKey: strings.Repeat("k", 65)},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
	if c, _ := New(Config{AccessToken: "x", MaxRetries: -1}); c.cfg.MaxRetries != 0 {
		t.Errorf("MaxRetries -1 -> %d, want 0", c.cfg.MaxRetries)
	}
}

func TestDecodeTolerance(t *testing.T) {
	var l lineJSON
	in := `{"id":"12","product_id":3.0,"sku":123,"quantity":"4","quantity_shipped":null,"quantity_backordered":null,"is_bundled_product":"true","order_address_id":""}`
	if err := json.Unmarshal([]byte(in), &l); err != nil {
		t.Fatal(err)
	}
	got := l.domain()
	if got.ID != 12 || got.ProductID != 3 || got.SKU != "123" || got.Quantity != 4 || got.QuantityBackordered != nil || !got.IsBundledProduct {
		t.Errorf("decoded %+v", got)
	}
	if err := json.Unmarshal([]byte(`{"quantity":"many"}`), &l); err == nil {
		t.Error("a non-numeric quantity was accepted")
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		reset   time.Duration
		attempt int
		want    time.Duration
	}{
		{5 * time.Millisecond, 0, 5 * time.Millisecond},
		{5 * time.Millisecond, 2, 20 * time.Millisecond},
		{time.Second, 50, 30 * time.Second},
		{time.Minute, 0, 30 * time.Second},
	} {
		if got := backoff(tc.reset, tc.attempt, 30*time.Second); got != tc.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", tc.reset, tc.attempt, got, tc.want)
		}
	}
}

// A redirect is never followed: net/http would carry X-Auth-Token to
// wherever it points.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "" {
			leaked.Store(true)
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": 9})
	}))
	t.Cleanup(elsewhere.Close)
	fs, srv := newFakeStore(t)
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
		return true
	}
	_, err := newClient(t, srv, nil).Order(testCtx(t), order.Key{Store: testStore, ID: 9})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("err = %v, want the 307 as an unexpected answer", err)
	}
	if leaked.Load() {
		t.Error("the access token was sent to the redirect's target")
	}
}

// readOrder reads an order as a run does when its status is eligible: the
// order, then its lines and shipping addresses.
func readOrder(ctx context.Context, c *Client, k order.Key) (order.StorefrontOrder, error) {
	o, err := c.Order(ctx, k)
	if err != nil || o.ContentsRead {
		return o, err
	}
	o.Lines, o.Shipping, err = c.Contents(ctx, k)
	return o, err
}

// Order alone is one request: an order in a status that is not eligible
// costs the store's API quota one request, not four.
func TestOrderAloneIsOneRequest(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(250, 7, 3)
	c := newClient(t, srv, nil)
	o, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: 250})
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	if o.ID != 250 || o.StatusID != 7 || len(o.Lines) != 0 || len(o.Shipping) != 0 {
		t.Errorf("Order = %+v; want order 250 in status 7, no lines or addresses", o)
	}
	if got := fs.requests(); len(got) != 1 || got[0] != "GET /stores/abc123/v2/orders/250?"+sideLoadQuery {
		t.Errorf("requests = %q; want only GET /stores/abc123/v2/orders/250?%s", got, sideLoadQuery)
	}
}

// An archived order (BigCommerce's DELETE archives it) is still returned,
// with is_deleted: it is read as Archived, which no policy sends.
func TestArchivedOrder(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(251, 11, 1)
	fs.addOrder(252, 11, 1)
	fs.mu.Lock()
	fs.orders[251].order["is_deleted"] = true
	fs.orders[252].order["is_deleted"] = "false"
	fs.mu.Unlock()
	c := newClient(t, srv, nil)
	for id, want := range map[uint64]bool{251: true, 252: false} {
		o, err := c.Order(testCtx(t), order.Key{Store: testStore, ID: id})
		if err != nil {
			t.Fatalf("Order %d: %v", id, err)
		}
		if o.Archived != want {
			t.Errorf("order %d: Archived = %v, want %v", id, o.Archived, want)
		}
		if reason := order.DefaultPolicy().StatusReason(o); (reason != "") != want {
			t.Errorf("order %d: StatusReason = %q", id, reason)
		}
	}
}

// A server that answers a second metafield with 422 instead of 409: what is
// there decides, as after a 409; a 422 with nothing there stays an error.
func TestSetSupplierReference422(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	fs.addOrder(2, 11, 1)
	c := newClient(t, srv, nil)
	ctx := testCtx(t)
	k := order.Key{Store: testStore, ID: 1}
	if err := c.SetSupplierReference(ctx, k, "TS-1"); err != nil {
		t.Fatalf("create: %v", err)
	}
	fs.mu.Lock()
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"status":422,"title":"The metafield key is already in use"}`)
		return true
	}
	fs.mu.Unlock()
	if err := c.SetSupplierReference(ctx, k, "TS-1"); err != nil {
		t.Errorf("repeat answered 422: %v; want success (the metafield holds TS-1)", err)
	}
	if err := c.SetSupplierReference(ctx, k, "TS-2"); err == nil || !strings.Contains(err.Error(), `"TS-1"`) {
		t.Errorf("another id answered 422: %v; want an error naming TS-1", err)
	}
	if err := c.SetSupplierReference(ctx, order.Key{Store: testStore, ID: 2}, "TS-3"); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("422 with no metafield there: %v; want the 422 as an error", err)
	}
}
