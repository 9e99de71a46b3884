package bcsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/bcsim"
)

const (
	storeHash = "abc123"
	token     = "secret-token"
)

type fixture struct {
	sim   *bcsim.Server
	srv   *httptest.Server
	clock *testclock.Clock
}

func newFixture(t *testing.T, opts bcsim.Options) *fixture {
	t.Helper()
	c := testclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	if opts.Tokens == nil {
		opts.Tokens = map[string]string{storeHash: token}
	}
	opts.Now = c.Now
	sim := bcsim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &fixture{sim: sim, srv: srv, clock: c}
}

// do sends a request to the store's API with the store's token.
func (f *fixture) do(t *testing.T, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	return f.doToken(t, token, method, path, body)
}

func (f *fixture) doToken(t *testing.T, tok, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func v2(path string) string { return "/stores/" + storeHash + "/v2" + path }
func v3(path string) string { return "/stores/" + storeHash + "/v3" + path }

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, body)
	}
}

func TestOrderHasBigCommerceShape(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, bcsim.StatusAwaitingFulfillment, bcsim.Line{SKU: "APP449", Quantity: 2}))

	resp, body := f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	o := decode[map[string]any](t, body)

	if o["id"] != 250.0 || o["status_id"] != 11.0 || o["status"] != "Awaiting Fulfillment" {
		t.Errorf("id/status: %v %v %v", o["id"], o["status_id"], o["status"])
	}
	for _, k := range []string{"date_created", "date_modified"} {
		s, _ := o[k].(string)
		if _, err := time.Parse(time.RFC1123Z, s); err != nil || s != "Mon, 02 Mar 2026 10:00:00 +0000" {
			t.Errorf("%s = %q, want RFC 1123Z %q", k, s, "Mon, 02 Mar 2026 10:00:00 +0000")
		}
	}
	for _, k := range []string{"customer_message", "staff_notes", "total_inc_tax"} {
		if _, ok := o[k].(string); !ok {
			t.Errorf("%s missing or not a string: %v", k, o[k])
		}
	}
	if o["total_inc_tax"] != "27.9900" {
		t.Errorf("total_inc_tax = %v, want 27.9900", o["total_inc_tax"])
	}
	bill := o["billing_address"].(map[string]any)
	for _, k := range []string{"first_name", "last_name", "company", "street_1", "street_2", "city", "state", "zip", "country", "country_iso2", "phone", "email"} {
		if _, ok := bill[k].(string); !ok {
			t.Errorf("billing_address.%s missing", k)
		}
	}
	products := o["products"].(map[string]any)
	if products["resource"] != "/orders/250/products" || products["url"] != f.srv.URL+v2("/orders/250/products") {
		t.Errorf("products link = %v", products)
	}
	addrs := o["shipping_addresses"].(map[string]any)
	if addrs["resource"] != "/orders/250/shipping_addresses" {
		t.Errorf("shipping_addresses link = %v", addrs)
	}
}

func TestProductsArePagedAndEndWith204(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(300, bcsim.StatusAwaitingFulfillment, bcsim.Lines(120)...))

	var skus []string
	for page := 1; ; page++ {
		resp, body := f.do(t, "GET", v2(fmt.Sprintf("/orders/300/products?page=%d", page)), nil)
		if resp.StatusCode == http.StatusNoContent {
			if len(body) != 0 || page != 4 {
				t.Fatalf("204 on page %d with body %q, want page 4 and no body", page, body)
			}
			break
		}
		wantStatus(t, resp, body, http.StatusOK)
		lines := decode[[]map[string]any](t, body)
		if want := []int{50, 50, 20}[page-1]; len(lines) != want {
			t.Fatalf("page %d: %d lines, want %d", page, len(lines), want)
		}
		for _, l := range lines {
			skus = append(skus, l["sku"].(string))
		}
	}
	if len(skus) != 120 || skus[0] != "APP001" || skus[119] != "APP120" {
		t.Fatalf("got %d lines, first %s last %s", len(skus), skus[0], skus[len(skus)-1])
	}
	if got := f.sim.Stats().Products; got != 4 {
		t.Errorf("Stats().Products = %d, want 4", got)
	}

	// limit is capped at 250 and honoured below that.
	_, body := f.do(t, "GET", v2("/orders/300/products?limit=1000"), nil)
	if n := len(decode[[]any](t, body)); n != 120 {
		t.Errorf("limit=1000: %d lines, want 120", n)
	}
	_, body = f.do(t, "GET", v2("/orders/300/products?limit=7&page=2"), nil)
	lines := decode[[]bcsim.Product](t, body)
	if len(lines) != 7 || lines[0].SKU != "APP008" {
		t.Errorf("limit=7&page=2: %d lines starting %s", len(lines), lines[0].SKU)
	}
}

func TestProductLineFields(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	back := uint32(1)
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11,
		bcsim.Line{SKU: "APP449", Quantity: 2, Backordered: &back},
		bcsim.Line{SKU: "APP450"}))

	_, body := f.do(t, "GET", v2("/orders/250/products"), nil)
	lines := decode[[]map[string]any](t, body)
	for _, k := range []string{"id", "order_id", "product_id", "variant_id", "sku", "name", "quantity",
		"quantity_shipped", "quantity_refunded", "order_address_id", "is_bundled_product",
		"parent_order_product_id", "product_options", "base_price", "total_inc_tax"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("line field %s missing", k)
		}
	}
	if lines[0]["quantity_backordered"] != 1.0 {
		t.Errorf("quantity_backordered = %v, want 1", lines[0]["quantity_backordered"])
	}
	if _, ok := lines[1]["quantity_backordered"]; ok {
		t.Error("quantity_backordered present on a line without it")
	}
	if lines[0]["parent_order_product_id"] != nil || lines[0]["total_inc_tax"] != "24.0000" {
		t.Errorf("parent %v total %v", lines[0]["parent_order_product_id"], lines[0]["total_inc_tax"])
	}

	resp, body := f.do(t, "GET", v2("/orders/250/shipping_addresses"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	addrs := decode[[]map[string]any](t, body)
	if len(addrs) != 1 {
		t.Fatalf("%d addresses", len(addrs))
	}
	a := addrs[0]
	if a["country_iso2"] != "GB" || a["zip"] != "LS1 1AA" || a["items_total"] != 3.0 || a["items_shipped"] != 0.0 {
		t.Errorf("address = %v", a)
	}
	if a["id"] != lines[0]["order_address_id"] {
		t.Errorf("address id %v, line order_address_id %v", a["id"], lines[0]["order_address_id"])
	}
	for _, k := range []string{"first_name", "last_name", "company", "street_1", "street_2", "city", "state", "country", "phone", "email", "shipping_method"} {
		if _, ok := a[k].(string); !ok {
			t.Errorf("address field %s missing", k)
		}
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, bcsim.Options{Tokens: map[string]string{storeHash: token, "other": "other-token"}})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))

	for name, tok := range map[string]string{"missing": "", "wrong": "nope", "other store's": "other-token"} {
		resp, body := f.doToken(t, tok, "GET", v2("/orders/250"), nil)
		wantStatus(t, resp, body, http.StatusUnauthorized)
		errs := decode[[]map[string]any](t, body)
		if len(errs) != 1 || errs[0]["status"] != 401.0 {
			t.Errorf("%s token: body %s", name, body)
		}
		if resp.Header.Get(bcsim.HeaderRequestsQuota) == "" {
			t.Errorf("%s token: no rate-limit headers", name)
		}
	}
	resp, body := f.doToken(t, "nope", "GET", v3("/orders/250/metafields"), nil)
	wantStatus(t, resp, body, http.StatusUnauthorized)
	if e := decode[map[string]any](t, body); e["status"] != 401.0 || e["title"] == "" {
		t.Errorf("v3 401 body %s", body)
	}
	if got := f.sim.Stats().Unauthorized; got != 4 {
		t.Errorf("Unauthorized = %d, want 4", got)
	}
}

func TestUnknownOrderIs404WithBigCommerceBody(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	for _, path := range []string{"/orders/999", "/orders/999/products", "/orders/999/shipping_addresses", "/orders/x"} {
		resp, body := f.do(t, "GET", v2(path), nil)
		wantStatus(t, resp, body, http.StatusNotFound)
		if got, want := string(bytes.TrimSpace(body)), `[{"message":"The requested resource was not found.","status":404}]`; got != want {
			t.Errorf("%s: body %s, want %s", path, got, want)
		}
	}
	resp, body := f.do(t, "PUT", v2("/orders/999"), map[string]any{"status_id": 2})
	wantStatus(t, resp, body, http.StatusNotFound)
	resp, body = f.do(t, "GET", v3("/orders/999/metafields"), nil)
	wantStatus(t, resp, body, http.StatusNotFound)
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, bcsim.Options{Quota: 3, Window: 30 * time.Second})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))

	// A request without the store's token does not spend its quota.
	resp, body := f.doToken(t, "bad", "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusUnauthorized)

	for want := 2; want >= 0; want-- {
		resp, body := f.do(t, "GET", v2("/orders/250"), nil)
		wantStatus(t, resp, body, http.StatusOK)
		if got := resp.Header.Get(bcsim.HeaderRequestsLeft); got != strconv.Itoa(want) {
			t.Errorf("Requests-Left = %s, want %d", got, want)
		}
		f.clock.Advance(time.Second)
	}
	resp, body = f.do(t, "GET", v2("/orders/250/products"), nil)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	h := resp.Header
	if h.Get(bcsim.HeaderRequestsLeft) != "0" || h.Get(bcsim.HeaderRequestsQuota) != "3" ||
		h.Get(bcsim.HeaderWindowMs) != "30000" || h.Get(bcsim.HeaderResetMs) != "27000" {
		t.Errorf("429 headers: %v", h)
	}
	if e := decode[[]map[string]any](t, body); e[0]["status"] != 429.0 {
		t.Errorf("429 body %s", body)
	}

	f.clock.Advance(27 * time.Second) // the window is over
	resp, body = f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get(bcsim.HeaderRequestsLeft); got != "2" {
		t.Errorf("after the window: Requests-Left = %s, want 2", got)
	}
	if got := f.sim.Stats().RateLimited; got != 1 {
		t.Errorf("RateLimited = %d", got)
	}
}

// Other apps on the store spend the same quota: what they spend is left out
// of this app's headers, and they cannot spend more than is left.
func TestOtherAppsSpendTheQuota(t *testing.T) {
	f := newFixture(t, bcsim.Options{Quota: 5, Window: 30 * time.Second})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))
	if got := f.sim.SpendQuota(storeHash, 3); got != 3 {
		t.Fatalf("spent %d of 3", got)
	}
	resp, body := f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get(bcsim.HeaderRequestsLeft); got != "1" {
		t.Errorf("Requests-Left = %s, want 1 (5 - 3 spent by others - 1)", got)
	}
	if got := f.sim.SpendQuota(storeHash, 4); got != 1 {
		t.Errorf("others spent %d with 1 left, want 1", got)
	}
	resp, body = f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if s := f.sim.Stats(); s.OtherApps != 4 || s.Total != 2 {
		t.Errorf("Stats: other apps %d, total %d; want 4 and 2 (ours)", s.OtherApps, s.Total)
	}
	f.clock.Advance(30 * time.Second)
	if got := f.sim.SpendQuota(storeHash, 4); got != 4 {
		t.Errorf("in a new window others spent %d of 4", got)
	}
}

func TestRateHeadersWithoutQuota(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	resp, _ := f.do(t, "GET", v2("/orders"), nil)
	for _, h := range []string{bcsim.HeaderWindowMs, bcsim.HeaderResetMs, bcsim.HeaderRequestsQuota, bcsim.HeaderRequestsLeft} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))

	f.sim.SetFaults(bcsim.Faults{Count: 2})
	for i, want := range []int{500, 500, 200} {
		resp, body := f.do(t, "GET", v2("/orders/250"), nil)
		if resp.StatusCode != want {
			t.Errorf("request %d: %d, want %d (%s)", i, resp.StatusCode, want, body)
		}
	}

	// An injected fault on an update changes nothing.
	f.sim.SetFaults(bcsim.Faults{Rate: 1, Status: http.StatusServiceUnavailable})
	resp, body := f.do(t, "PUT", v2("/orders/250"), map[string]any{"status_id": 2})
	wantStatus(t, resp, body, http.StatusServiceUnavailable)
	if o, _ := f.sim.Order(storeHash, 250); o.StatusID != 11 {
		t.Errorf("status changed to %d by a failed update", o.StatusID)
	}

	// The admin API sets the same switches.
	req, _ := http.NewRequest("PUT", f.srv.URL+"/_sim/faults", bytes.NewReader([]byte(`{"rate":0}`)))
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT /_sim/faults: %v %v", resp, err)
	}
	resp, body = f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	if got := f.sim.Stats().Faulted; got != 3 {
		t.Errorf("Faulted = %d, want 3", got)
	}
}

// WritesOnly faults fail what changes something and answer reads.
func TestWriteOnlyFaults(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))
	f.sim.SetFaults(bcsim.Faults{Rate: 1, Status: http.StatusForbidden, WritesOnly: true})
	resp, body := f.do(t, "GET", v2("/orders/250"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = f.do(t, "POST", "/stores/"+storeHash+"/v3/orders/250/metafields",
		map[string]any{"permission_set": "app_only", "namespace": "n", "key": "k", "value": "v"})
	wantStatus(t, resp, body, http.StatusForbidden)
	if mf := f.sim.Metafields(storeHash, 250); len(mf) != 0 {
		t.Errorf("a failed write created %v", mf)
	}
}

func TestFaultRateIsRoughlyHonoured(t *testing.T) {
	f := newFixture(t, bcsim.Options{Seed: 42})
	f.sim.SetFaults(bcsim.Faults{Rate: 0.5})
	failed := 0
	for range 200 {
		if resp, _ := f.do(t, "GET", v2("/orders"), nil); resp.StatusCode == 500 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("%d of 200 failed at rate 0.5", failed)
	}
}

func TestPutOrderChangesOnlyStatusAndNotes(t *testing.T) {
	var mu sync.Mutex
	var changes []bcsim.Change
	f := newFixture(t, bcsim.Options{OnChange: func(c bcsim.Change) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, c)
	}})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))
	f.clock.Advance(time.Hour)

	resp, body := f.do(t, "PUT", v2("/orders/250"), map[string]any{
		"status_id": 2, "staff_notes": "TropShip TS-000001", "customer_message": "hacked", "discount_amount": "5.0000",
	})
	wantStatus(t, resp, body, http.StatusOK)
	got := decode[map[string]any](t, body)
	if got["status_id"] != 2.0 || got["status"] != "Shipped" || got["staff_notes"] != "TropShip TS-000001" ||
		got["customer_message"] != "" || got["date_modified"] != "Mon, 02 Mar 2026 11:00:00 +0000" {
		t.Errorf("after PUT: %v", got)
	}
	if s := f.sim.Stats(); s.PutOrder != 1 || s.PutOrderExtraFields != 1 {
		t.Errorf("stats %+v", s)
	}
	resp, body = f.do(t, "PUT", v2("/orders/250"), map[string]any{"status_id": 99})
	wantStatus(t, resp, body, http.StatusBadRequest)

	mu.Lock()
	defer mu.Unlock()
	want := []bcsim.Change{
		{Scope: bcsim.ScopeCreated, Store: storeHash, OrderID: 250, NewStatusID: 11},
		{Scope: bcsim.ScopeStatusUpdated, Store: storeHash, OrderID: 250, PrevStatusID: 11, NewStatusID: 2},
		{Scope: bcsim.ScopeUpdated, Store: storeHash, OrderID: 250, NewStatusID: 2},
	}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
}

func TestListOrders(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	for id := uint64(100); id < 110; id++ {
		status := bcsim.StatusAwaitingFulfillment
		if id%2 == 1 {
			status = bcsim.StatusPending
		}
		f.sim.AddOrder(storeHash, bcsim.NewUKOrder(id, status, bcsim.Line{SKU: "A"}))
		f.clock.Advance(time.Minute) // order id N was modified at 10:00 + (N-100) minutes
	}
	ids := func(query string) []uint64 {
		t.Helper()
		resp, body := f.do(t, "GET", v2("/orders?"+query), nil)
		if resp.StatusCode == http.StatusNoContent {
			return nil
		}
		wantStatus(t, resp, body, http.StatusOK)
		var out []uint64
		for _, o := range decode[[]struct {
			ID       uint64 `json:"id"`
			StatusID uint32 `json:"status_id"`
		}](t, body) {
			out = append(out, o.ID)
		}
		return out
	}
	cases := []struct {
		query string
		want  string
	}{
		{"", "[100 101 102 103 104 105 106 107 108 109]"},
		{"status_id=11", "[100 102 104 106 108]"},
		{"status_id=11&min_id=104", "[104 106 108]"},
		{"max_id=101&sort=id:desc", "[101 100]"},
		{"limit=3&page=2", "[103 104 105]"},
		{"limit=3&page=5", "[]"},
		{"min_date_modified=" + url.QueryEscape("Mon, 02 Mar 2026 10:07:00 +0000"), "[107 108 109]"},
		{"min_date_modified=2026-03-02T10:07:00Z", "[107 108 109]"},
		{"max_date_modified=2026-03-02T11:01:00%2B01:00", "[100 101]"},
		// A "+" left unescaped arrives as a space; it is still understood.
		{"max_date_modified=2026-03-02T11:01:00+01:00", "[100 101]"},
		{"max_date_modified=Mon,%2002%20Mar%202026%2010:01:00%20+0000", "[100 101]"},
		{"min_date_modified=2026-03-02T10:03:00Z&max_date_modified=2026-03-02T10:05:00Z&status_id=1", "[103 105]"},
		{"status_id=5", "[]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(ids(c.query)); got != c.want {
			t.Errorf("?%s: %s, want %s", c.query, got, c.want)
		}
	}
	resp, body := f.do(t, "GET", v2("/orders?min_date_modified=yesterday"), nil)
	wantStatus(t, resp, body, http.StatusBadRequest)

	// An empty list is 204 with no body.
	resp, body = f.do(t, "GET", v2("/orders?status_id=5"), nil)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Errorf("empty list: %d %q", resp.StatusCode, body)
	}
}

func TestMetafields(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Line{SKU: "A"}))
	mf := map[string]any{"namespace": "backorder", "key": "tropship", "value": "TS-000001",
		"permission_set": "app_only", "description": "TropShip offline order id"}

	resp, body := f.do(t, "POST", v3("/orders/250/metafields"), mf)
	wantStatus(t, resp, body, http.StatusOK)
	created := decode[struct {
		Data bcsim.Metafield `json:"data"`
	}](t, body).Data
	if created.ID == 0 || created.ResourceType != "order" || created.ResourceID != 250 || created.Value != "TS-000001" {
		t.Errorf("created %+v", created)
	}

	resp, body = f.do(t, "POST", v3("/orders/250/metafields"), mf)
	wantStatus(t, resp, body, http.StatusConflict)
	if e := decode[map[string]any](t, body); e["status"] != 409.0 {
		t.Errorf("409 body %s", body)
	}

	other := map[string]any{"namespace": "other", "key": "tropship", "value": "x", "permission_set": "read"}
	resp, body = f.do(t, "POST", v3("/orders/250/metafields"), other)
	wantStatus(t, resp, body, http.StatusOK)

	type list struct {
		Data []bcsim.Metafield `json:"data"`
		Meta struct {
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		} `json:"meta"`
	}
	_, body = f.do(t, "GET", v3("/orders/250/metafields?namespace=backorder&key=tropship"), nil)
	got := decode[list](t, body)
	if len(got.Data) != 1 || got.Data[0].ID != created.ID || got.Meta.Pagination.Total != 1 {
		t.Errorf("filtered list %s", body)
	}
	_, body = f.do(t, "GET", v3("/orders/250/metafields?key=tropship"), nil)
	if n := len(decode[list](t, body).Data); n != 2 {
		t.Errorf("by key: %d, want 2", n)
	}
	resp, body = f.do(t, "GET", v3("/orders/250/metafields?namespace=none"), nil)
	wantStatus(t, resp, body, http.StatusOK)
	if n := len(decode[list](t, body).Data); n != 0 {
		t.Errorf("no match: %d", n)
	}

	path := v3(fmt.Sprintf("/orders/250/metafields/%d", created.ID))
	resp, body = f.do(t, "PUT", path, map[string]any{"value": "TS-000002"})
	wantStatus(t, resp, body, http.StatusOK)
	if v := f.sim.Metafields(storeHash, 250)[0].Value; v != "TS-000002" {
		t.Errorf("after PUT value %q", v)
	}
	resp, body = f.do(t, "PUT", path, map[string]any{"namespace": "other"}) // collides with the second
	wantStatus(t, resp, body, http.StatusConflict)

	resp, body = f.do(t, "POST", v3("/orders/250/metafields"), map[string]any{"namespace": "n", "key": "k"})
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)

	resp, body = f.do(t, "DELETE", path, nil)
	wantStatus(t, resp, body, http.StatusNoContent)
	resp, body = f.do(t, "DELETE", path, nil)
	wantStatus(t, resp, body, http.StatusNotFound)

	s := f.sim.Stats()
	if s.MetafieldsPost != 4 || s.MetafieldsGet != 3 || s.MetafieldsPut != 2 || s.MetafieldsDelete != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestAdminAPI(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	post := func(path, body string) (*http.Response, []byte) {
		t.Helper()
		resp, err := f.srv.Client().Post(f.srv.URL+path, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	seed, _ := json.Marshal(bcsim.NewUKOrder(0, bcsim.StatusPending, bcsim.Line{SKU: "APP449"}))
	resp, body := post("/_sim/orders", string(seed))
	wantStatus(t, resp, body, http.StatusCreated)
	id := decode[bcsim.Order](t, body).ID
	if id != 100 {
		t.Errorf("assigned id %d, want 100", id)
	}
	resp, body = post(fmt.Sprintf("/_sim/orders/%d/status", id), `{"status_id": 11}`)
	wantStatus(t, resp, body, http.StatusOK)

	resp, body = f.do(t, "GET", v2(fmt.Sprintf("/orders/%d", id)), nil)
	wantStatus(t, resp, body, http.StatusOK)
	if o := decode[map[string]any](t, body); o["status_id"] != 11.0 {
		t.Errorf("status %v", o["status_id"])
	}
	resp, body = post("/_sim/orders/999/status", `{"status_id": 11}`)
	wantStatus(t, resp, body, http.StatusNotFound)

	r, err := f.srv.Client().Get(f.srv.URL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if s := decode[bcsim.Stats](t, b); s.Order != 1 || s.Total != 1 {
		t.Errorf("stats %s", b)
	}
}

// TestConcurrentUse hammers one order from many goroutines: exactly one
// metafield create wins, the rest see 409, and -race finds no data race.
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(250, 11, bcsim.Lines(60)...))
	mf := map[string]any{"namespace": "backorder", "key": "tropship", "value": "TS-1", "permission_set": "app_only"}

	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, _ := f.do(t, "POST", v3("/orders/250/metafields"), mf)
			statuses[i] = resp.StatusCode
			f.do(t, "GET", v2("/orders/250/products?page=2"), nil)
			_ = f.sim.SetStatus(storeHash, 250, uint32(i%15))
			f.sim.Stats()
		})
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if created != 1 || len(f.sim.Metafields(storeHash, 250)) != 1 {
		t.Errorf("%d creates succeeded, %d metafields stored", created, len(f.sim.Metafields(storeHash, 250)))
	}
}

// GET /v2/orders/{id} side-loads consignments as include asks: none without
// it; lines in full (every one, past a page of /products) with
// consignments.line_items, as links with consignments; the object structure
// with consignment_structure=object, the legacy array without.
func TestOrderSideLoadsConsignments(t *testing.T) {
	f := newFixture(t, bcsim.Options{})
	f.sim.AddOrder(storeHash, bcsim.NewUKOrder(260, bcsim.StatusAwaitingFulfillment, bcsim.Lines(120)...))
	get := func(query string) map[string]any {
		t.Helper()
		resp, body := f.do(t, "GET", v2("/orders/260"+query), nil)
		wantStatus(t, resp, body, http.StatusOK)
		return decode[map[string]any](t, body)
	}
	if o := get(""); o["consignments"] != nil {
		t.Errorf("consignments without include: %v", o["consignments"])
	}
	o := get("?include=consignments.line_items&consignment_structure=object")
	c, ok := o["consignments"].(map[string]any)
	if !ok {
		t.Fatalf("consignments = %v, want an object", o["consignments"])
	}
	ship := c["shipping"].([]any)
	if len(ship) != 1 {
		t.Fatalf("shipping = %v, want one consignment", ship)
	}
	s := ship[0].(map[string]any)
	_, addrBody := f.do(t, "GET", v2("/orders/260/shipping_addresses"), nil)
	addr := decode[[]map[string]any](t, addrBody)[0]
	for _, k := range []string{"id", "first_name", "street_1", "city", "zip", "country_iso2", "items_total", "shipping_method"} {
		if s[k] != addr[k] {
			t.Errorf("shipping consignment %s = %v, shipping address has %v", k, s[k], addr[k])
		}
	}
	items := s["line_items"].([]any)
	_, pageBody := f.do(t, "GET", v2("/orders/260/products?limit=250"), nil)
	lines := decode[[]any](t, pageBody)
	if len(items) != 120 || fmt.Sprint(items[119]) != fmt.Sprint(lines[119]) {
		t.Errorf("%d line items, last %v; want the 120 lines of /products, last %v", len(items), items[len(items)-1], lines[119])
	}
	if o["items_total"] != 240.0 {
		t.Errorf("items_total = %v, want 240", o["items_total"])
	}

	legacy, ok := get("?include=consignments.line_items")["consignments"].([]any)
	if !ok || len(legacy) != 1 || fmt.Sprint(legacy[0]) != fmt.Sprint(c) {
		t.Errorf("legacy structure = %v, want the object in an array", legacy)
	}
	linked := get("?include=consignments&consignment_structure=object")["consignments"].(map[string]any)
	first := linked["shipping"].([]any)[0].(map[string]any)["line_items"].([]any)[0].(map[string]any)
	if first["resource"] != "/orders/260/products/"+fmt.Sprint(lines[0].(map[string]any)["id"]) {
		t.Errorf("line item without .line_items = %v, want a link", first)
	}

	g := newFixture(t, bcsim.Options{NoSideLoad: true})
	g.sim.AddOrder(storeHash, bcsim.NewUKOrder(261, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	_, body := g.do(t, "GET", v2("/orders/261?include=consignments.line_items&consignment_structure=object"), nil)
	if v := decode[map[string]any](t, body); v["consignments"] != nil || v["id"] != 261.0 {
		t.Errorf("NoSideLoad: %v, want the order without consignments", v)
	}
}
