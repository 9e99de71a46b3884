package tropship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

const (
	testClientID     = "client-42"
	testClientSecret = "very-secret-value"
)

// fakeTropShip follows tropship.md: a token endpoint and an orders endpoint
// that does not deduplicate.
type fakeTropShip struct {
	t  *testing.T
	mu sync.Mutex
	// tokens issued, and those the orders endpoint accepts
	issued []string
	valid  map[string]bool
	// tokenFail, when non-zero, is the token endpoint's answer.
	tokenFail int
	// tokenMediaType is the Content-Type of a token: "" application/json,
	// "unset" none (net/http then sends text/plain).
	tokenMediaType string
	// answer, when set, answers an orders request itself (returns true).
	answer func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// created orders by reference (a duplicate appends).
	created map[string][]string
	// bodies of order requests, and the tokens they carried
	bodies    [][]byte
	bearers   []string
	queries   []string
	orderHits int
}

func newFake(t *testing.T) (*fakeTropShip, *httptest.Server) {
	t.Helper()
	f := &fakeTropShip{t: t, valid: map[string]bool{}, created: map[string][]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", f.token)
	mux.HandleFunc("/v1/offline-orders", f.orders)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeTropShip) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokenFail != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.tokenFail)
		// A careless server echoing the secret must not leak it further.
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s"}`, r.FormValue("client_secret"))
		return
	}
	if _, _, ok := r.BasicAuth(); ok {
		http.Error(w, "credentials must be form fields", http.StatusBadRequest)
		return
	}
	if r.FormValue("grant_type") != "client_credentials" || r.FormValue("client_id") != testClientID ||
		r.FormValue("client_secret") != testClientSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	tok := fmt.Sprintf("tok-%d-abcdef", len(f.issued)+1)
	f.issued = append(f.issued, tok)
	f.valid[tok] = true
	switch f.tokenMediaType {
	case "":
		w.Header().Set("Content-Type", "application/json")
	case "unset":
		// net/http sniffs the body: "text/plain; charset=utf-8".
	default:
		w.Header().Set("Content-Type", f.tokenMediaType)
	}
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":300}`, tok)
}

func (f *fakeTropShip) orders(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.orderHits++
	f.bodies = append(f.bodies, body)
	f.bearers = append(f.bearers, r.Header.Get("Authorization"))
	f.queries = append(f.queries, r.URL.RawQuery)
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	ok := strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") && f.valid[bearer]
	answer := f.answer
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if answer != nil && answer(w, r, body) {
		return
	}
	switch r.Method {
	case http.MethodPost:
		var s struct {
			Reference string `json:"reference"`
		}
		if err := json.Unmarshal(body, &s); err != nil || s.Reference == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []any{map[string]any{"field": "reference", "code": "required", "message": "reference is required"}}})
			return
		}
		if r.URL.Query().Get("validate_only") == "true" {
			writeJSON(w, http.StatusOK, map[string]any{"valid": true, "warnings": []any{}})
			return
		}
		f.mu.Lock()
		id := fmt.Sprintf("OFF-%d", 1000+len(f.created)+countAll(f.created))
		f.created[s.Reference] = append(f.created[s.Reference], id)
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"offline_order_id": id, "reference": s.Reference, "status": "received"})
	case http.MethodGet:
		ref := r.URL.Query().Get("reference")
		f.mu.Lock()
		var list []any
		for _, id := range f.created[ref] {
			list = append(list, map[string]any{"offline_order_id": id, "reference": ref, "status": "received", "created_at": "2026-01-01T00:00:00Z"})
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"orders": list})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func countAll(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func (f *fakeTropShip) expireAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.valid)
}

func (f *fakeTropShip) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.orderHits
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newClient(t *testing.T, baseURL string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: baseURL, ClientID: testClientID, ClientSecret: testClientSecret, Timeout: 5 * time.Second}
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

func sampleSubmission() order.Submission {
	return order.Submission{
		Reference: "BC-abc123-250",
		Delivery: order.Delivery{
			Name: "Jo Bloggs", Company: "", Line1: "1 High St", Line2: "", City: "Leeds",
			County: "West Yorkshire", Postcode: "LS1 1AA", CountryCode: "GB", Phone: "01130000000", Email: "jo@example.com",
		},
		Lines: []order.SupplierLine{{ProductCode: "APP449", Quantity: 2}, {ProductCode: "APP450", Quantity: 1}},
		Notes: "BigCommerce order 250",
	}
}

// assertNoSecret fails when a reason holds the client secret or a token.
func assertNoSecret(t *testing.T, f *fakeTropShip, s string) {
	t.Helper()
	if strings.Contains(s, testClientSecret) {
		t.Errorf("reason holds the client secret: %q", s)
	}
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tok := range f.issued {
		if strings.Contains(s, tok) {
			t.Errorf("reason holds a token: %q", s)
		}
	}
}

func TestSubmitRequestShape(t *testing.T) {
	f, srv := newFake(t)
	c := newClient(t, srv.URL, nil)
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.Created || res.OfflineOrderID == "" {
		t.Fatalf("Submit = %+v, want Created", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queries[0] != "validate_only=false" {
		t.Errorf("query = %q", f.queries[0])
	}
	if f.bearers[0] != "Bearer "+f.issued[0] {
		t.Errorf("Authorization = %q", f.bearers[0])
	}
	var got map[string]any
	if err := json.Unmarshal(f.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"reference": "BC-abc123-250",
		"delivery": map[string]any{
			"name": "Jo Bloggs", "company": "", "line1": "1 High St", "line2": "", "city": "Leeds",
			"county": "West Yorkshire", "postcode": "LS1 1AA", "country_code": "GB",
			"phone": "01130000000", "email": "jo@example.com",
		},
		"lines": []any{
			map[string]any{"product_code": "APP449", "quantity": float64(2)},
			map[string]any{"product_code": "APP450", "quantity": float64(1)},
		},
		"notes": "BigCommerce order 250",
	}
	if len(got) != len(want) {
		t.Errorf("body has fields %v, want exactly reference, delivery, lines, notes", keys(got))
	}
	for _, k := range []string{"reference", "notes"} {
		if got[k] != want[k] {
			t.Errorf("%s = %v, want %v", k, got[k], want[k])
		}
	}
	gd, _ := got["delivery"].(map[string]any)
	wd := want["delivery"].(map[string]any)
	if len(gd) != len(wd) {
		t.Errorf("delivery has fields %v, want %v", keys(gd), keys(wd))
	}
	for k, v := range wd {
		if gv, ok := gd[k]; !ok || gv != v {
			t.Errorf("delivery.%s = %v (present %v), want %q", k, gv, ok, v)
		}
	}
	gl, _ := got["lines"].([]any)
	wl := want["lines"].([]any)
	if len(gl) != len(wl) {
		t.Fatalf("lines = %v", gl)
	}
	for i := range wl {
		g, _ := gl[i].(map[string]any)
		w := wl[i].(map[string]any)
		if len(g) != 2 || g["product_code"] != w["product_code"] || g["quantity"] != w["quantity"] {
			t.Errorf("lines[%d] = %v, want %v", i, g, w)
		}
	}

	// And validate-only.
	f.mu.Unlock()
	res = c.Submit(testCtx(t), sampleSubmission(), true)
	f.mu.Lock()
	if res.Outcome != order.Valid {
		t.Errorf("validate = %+v, want Valid", res)
	}
	if f.queries[1] != "validate_only=true" {
		t.Errorf("query = %q", f.queries[1])
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestTokenFetchedOnceAndReused(t *testing.T) {
	f, srv := newFake(t)
	c := newClient(t, srv.URL, nil)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := sampleSubmission()
			s.Reference = fmt.Sprintf("BC-abc123-%d", i)
			if res := c.Submit(ctx, s, i%2 == 0); res.Outcome != order.Created && res.Outcome != order.Valid {
				t.Errorf("Submit = %+v", res)
			}
		})
	}
	wg.Wait()
	if _, _, err := c.Lookup(ctx, "BC-abc123-1"); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.TokenRequests != 1 || st.OrderRequests != 8 || st.LookupRequests != 1 {
		t.Errorf("Stats = %+v, want 1 token request, 8 orders, 1 lookup", st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.issued) != 1 {
		t.Errorf("%d tokens issued", len(f.issued))
	}
}

// A token server that writes its JSON answer without saying so (a Go server
// that sets no Content-Type sends text/plain) is still understood: oauth2
// alone reads such an answer as a form and finds no token in it, and then
// nothing is ever sent.
func TestTokenAnswerNotLabelledJSON(t *testing.T) {
	for _, mt := range []string{"unset", "text/plain", "application/x-www-form-urlencoded"} {
		t.Run(mt, func(t *testing.T) {
			f, srv := newFake(t)
			f.tokenMediaType = mt
			c := newClient(t, srv.URL, nil)
			if res := c.Submit(testCtx(t), sampleSubmission(), false); res.Outcome != order.Created {
				t.Fatalf("Submit = %+v, want Created", res)
			}
		})
	}
	// A real form answer still reads as one.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = io.WriteString(w, "access_token=tok-form&token_type=bearer&expires_in=300")
	})
	var bearer atomic.Value
	mux.HandleFunc("POST /v1/offline-orders", func(w http.ResponseWriter, r *http.Request) {
		bearer.Store(r.Header.Get("Authorization"))
		writeJSON(w, http.StatusCreated, map[string]any{"offline_order_id": "OFF-1"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	if res := c.Submit(testCtx(t), sampleSubmission(), false); res.Outcome != order.Created {
		t.Fatalf("form token: Submit = %+v, want Created", res)
	}
	if got := bearer.Load(); got != "Bearer tok-form" {
		t.Errorf("form token: Authorization %v, want Bearer tok-form", got)
	}
}

func TestExpiredTokenRefreshedOnce(t *testing.T) {
	f, srv := newFake(t)
	c := newClient(t, srv.URL, nil)
	ctx := testCtx(t)
	if res := c.Submit(ctx, sampleSubmission(), true); res.Outcome != order.Valid {
		t.Fatalf("first = %+v", res)
	}
	f.expireAll() // the cached token is now refused
	s := sampleSubmission()
	s.Reference = "BC-abc123-251"
	res := c.Submit(ctx, s, false)
	if res.Outcome != order.Created {
		t.Fatalf("after expiry = %+v, want Created", res)
	}
	st := c.Stats()
	if st.TokenRequests != 2 || st.OrderRequests != 3 {
		t.Errorf("Stats = %+v, want 2 token requests, 3 order requests", st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.created["BC-abc123-251"]); n != 1 {
		t.Errorf("%d orders created, want 1", n)
	}
}

func TestDouble401IsNotSent(t *testing.T) {
	f, srv := newFake(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
	c := newClient(t, srv.URL, nil)
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.NotSent || !strings.Contains(res.Reason, "credentials") {
		t.Fatalf("Submit = %+v, want NotSent saying credentials were refused", res)
	}
	assertNoSecret(t, f, res.Reason)
	if st := c.Stats(); st.OrderRequests != 2 || st.TokenRequests != 2 {
		t.Errorf("Stats = %+v, want 2 order requests and 2 token requests", st)
	}
	if _, _, err := c.Lookup(testCtx(t), "BC-abc123-250"); !errors.Is(err, ErrCredentialsRefused) {
		t.Errorf("Lookup: %v, want ErrCredentialsRefused", err)
	}
}

func TestTokenEndpointFailureIsNotSent(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusBadRequest, http.StatusInternalServerError} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f, srv := newFake(t)
			f.tokenFail = status
			c := newClient(t, srv.URL, nil)
			res := c.Submit(testCtx(t), sampleSubmission(), false)
			if res.Outcome != order.NotSent {
				t.Fatalf("Submit = %+v, want NotSent", res)
			}
			if status != http.StatusInternalServerError && !strings.Contains(res.Reason, "credentials were refused") {
				t.Errorf("reason %q does not say the credentials were refused", res.Reason)
			}
			assertNoSecret(t, f, res.Reason)
			if n := f.hits(); n != 0 {
				t.Errorf("%d order requests reached the supplier", n)
			}
			_, _, err := c.Lookup(testCtx(t), "BC-abc123-250")
			var re *fulfill.RetryableError
			if !errors.As(err, &re) {
				t.Errorf("Lookup: %v, want *RetryableError", err)
			} else {
				assertNoSecret(t, f, err.Error())
			}
		})
	}
}

func TestOutcomeTable(t *testing.T) {
	type reply struct {
		status  int
		header  map[string]string
		body    string
		refresh bool // the server expires the token first
	}
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		validate   bool
		reply      reply
		want       order.Outcome
		wantID     string
		wantReason string
		wantAfter  func(time.Duration) bool
		settings   bool // an answer about the settings, not the order
	}{
		{name: "validate passes", validate: true, reply: reply{status: 200, body: `{"valid":true,"warnings":[]}`}, want: order.Valid},
		{name: "validate passes with warnings", validate: true, reply: reply{status: 200, body: `{"valid":true,"warnings":["postcode reformatted"]}`},
			want: order.Valid, wantReason: "postcode reformatted"},
		{name: "validate passes, written as a string", validate: true, reply: reply{status: 200, body: `{"valid":"true"}`}, want: order.Valid},
		{name: "validate passes, written as 1", validate: true, reply: reply{status: 200, body: `{"valid":1}`}, want: order.Valid},
		{name: "validate fails, written as a string", validate: true, reply: reply{status: 200, body: `{"valid":"false","errors":["APP449 unknown"]}`},
			want: order.Refused, wantReason: "APP449 unknown"},
		{name: "validate passes, echoing an id", validate: true, reply: reply{status: 200, body: `{"valid":true,"offline_order_id":"OFF-7"}`}, want: order.Valid},
		{name: "validate fails, echoing an id", validate: true, reply: reply{status: 200, body: `{"valid":false,"offline_order_id":"OFF-7","errors":["no stock"]}`},
			want: order.Refused, wantReason: "no stock"},
		// 201 says created, verdict or not: the order exists and is kept.
		{name: "validate answered 201 with a verdict and an id", validate: true, reply: reply{status: 201, body: `{"valid":true,"offline_order_id":"OFF-9","status":"received"}`},
			want: order.Created, wantID: "OFF-9"},
		{name: "validate answered 201 with a verdict and no id", validate: true, reply: reply{status: 201, body: `{"valid":true}`},
			want: order.Ambiguous, wantReason: "id is unknown"},
		{name: "validate answered by a creation", validate: true, reply: reply{status: 201, body: `{"offline_order_id":"OFF-8"}`}, want: order.Created, wantID: "OFF-8"},
		{name: "validate without a verdict", validate: true, reply: reply{status: 200, body: `{"valid":null}`}, want: order.NotSent},
		{name: "validate fails", validate: true, reply: reply{status: 200, body: `{"valid":false,"errors":[{"field":"lines[0].product_code","code":"unavailable","message":"APP449 is not dropship-enabled"}]}`},
			want: order.Refused, wantReason: "lines[0].product_code: APP449 is not dropship-enabled (unavailable)"},
		{name: "created", reply: reply{status: 201, body: `{"offline_order_id":"OFF-9","reference":"BC-abc123-250","status":"received"}`},
			want: order.Created, wantID: "OFF-9"},
		{name: "created with numeric id", reply: reply{status: 201, body: `{"offline_order_id":12345}`}, want: order.Created, wantID: "12345"},
		{name: "201 without id", reply: reply{status: 201, body: `{"status":"received"}`}, want: order.Ambiguous, wantReason: "id is unknown"},
		{name: "201 unreadable", reply: reply{status: 201, body: `<html>`}, want: order.Ambiguous},
		{name: "400", reply: reply{status: 400, body: `{"errors":[{"field":"delivery.country_code","code":"unsupported_country","message":"only GB"}]}`},
			want: order.Refused, wantReason: "delivery.country_code: only GB (unsupported_country)"},
		{name: "422 several", reply: reply{status: 422, body: `{"errors":[{"field":"a","code":"x","message":"m1"},{"field":"b","code":"y","message":"m2"}]}`},
			want: order.Refused, wantReason: "a: m1 (x); b: m2 (y)"},
		{name: "422 without details", reply: reply{status: 422, body: ``}, want: order.Refused, wantReason: "no details"},
		{name: "429 seconds", reply: reply{status: 429, header: map[string]string{"Retry-After": "7"}},
			want: order.Throttled, wantAfter: func(d time.Duration) bool { return d == 7*time.Second }},
		{name: "429 date", reply: reply{status: 429, header: map[string]string{"Retry-After": httpDate}},
			want: order.Throttled, wantAfter: func(d time.Duration) bool { return d > 80*time.Second && d <= 90*time.Second }},
		{name: "429 bare", reply: reply{status: 429}, want: order.Throttled, wantAfter: func(d time.Duration) bool { return d == 0 }},
		{name: "500 live", reply: reply{status: 500}, want: order.Ambiguous},
		{name: "502 live", reply: reply{status: 502}, want: order.Ambiguous},
		{name: "503 validate", validate: true, reply: reply{status: 503}, want: order.NotSent},
		{name: "409 live", reply: reply{status: 409, body: `{"errors":[{"code":"duplicate_reference","message":"exists"}]}`}, want: order.Ambiguous},
		// A 403, 404 or 405 that lists no errors is about the settings,
		// not the order: nothing was created, and it is tried again.
		{name: "403", reply: reply{status: 403}, want: order.NotSent, wantReason: "403 (Forbidden), nothing created: no details given; the TropShip account (TROPSHIP_CLIENT_ID)", settings: true},
		{name: "404 wrong path", reply: reply{status: 404, body: `404 page not found`}, want: order.NotSent, wantReason: "check TROPSHIP_BASE_URL and TROPSHIP_ORDERS_PATH", settings: true},
		{name: "405 validate", validate: true, reply: reply{status: 405}, want: order.NotSent, wantReason: "TROPSHIP_ORDERS_PATH", settings: true},
		// One that lists the order's errors is a refusal of the order.
		{name: "404 about a product", reply: reply{status: 404, body: `{"errors":[{"field":"lines[0].product_code","code":"not_found","message":"no such product"}]}`},
			want: order.Refused, wantReason: "no such product"},
		{name: "404 with a message", reply: reply{status: 404, body: `{"message":"product APP449 not found"}`},
			want: order.Refused, wantReason: "product APP449 not found"},
		{name: "410", reply: reply{status: 410}, want: order.Refused, wantReason: "410"},
		{name: "202 live without id", reply: reply{status: 202, body: `{}`}, want: order.Ambiguous},
		{name: "redirect not followed", reply: reply{status: 307, header: map[string]string{"Location": "/elsewhere"}}, want: order.Ambiguous},
		{name: "401 then created", reply: reply{status: 201, body: `{"offline_order_id":"OFF-10"}`, refresh: true}, want: order.Created, wantID: "OFF-10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t)
			var expired sync.Once
			f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				if tc.reply.refresh {
					first := false
					expired.Do(func() { first = true })
					if first {
						w.WriteHeader(http.StatusUnauthorized)
						return true
					}
				}
				for k, v := range tc.reply.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.reply.status)
				_, _ = io.WriteString(w, tc.reply.body)
				return true
			}
			c := newClient(t, srv.URL, nil)
			res := c.Submit(testCtx(t), sampleSubmission(), tc.validate)
			if res.Outcome != tc.want || res.OfflineOrderID != tc.wantID {
				t.Fatalf("Submit = %+v, want %v %q", res, tc.want, tc.wantID)
			}
			if res.Settings != tc.settings {
				t.Errorf("Settings = %v, want %v", res.Settings, tc.settings)
			}
			if !strings.Contains(res.Reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", res.Reason, tc.wantReason)
			}
			if tc.want != order.Created && tc.want != order.Valid && res.Reason == "" {
				t.Error("no reason given")
			}
			if tc.wantAfter != nil && !tc.wantAfter(res.RetryAfter) {
				t.Errorf("RetryAfter = %v", res.RetryAfter)
			}
			assertNoSecret(t, f, res.Reason)
		})
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConnectionRefusedIsNotSent(t *testing.T) {
	_, tokenSrv := newFake(t)
	c := newClient(t, "http://"+closedAddr(t), func(c *Config) { c.TokenPath = tokenSrv.URL + "/oauth/token" })
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.NotSent {
		t.Fatalf("Submit = %+v, want NotSent", res)
	}
	if st := c.Stats(); st.TokenRequests != 1 || st.OrderRequests != 1 {
		t.Errorf("Stats = %+v: the token must have come, and the order been tried", st)
	}
	_, _, err := c.Lookup(testCtx(t), "BC-abc123-250")
	var re *fulfill.RetryableError
	if !errors.As(err, &re) {
		t.Errorf("Lookup: %v, want *RetryableError", err)
	}
}

func TestTokenEndpointUnreachableIsNotSent(t *testing.T) {
	c := newClient(t, "http://"+closedAddr(t), nil)
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.NotSent || !strings.Contains(res.Reason, "token endpoint") {
		t.Fatalf("Submit = %+v, want NotSent naming the token endpoint", res)
	}
	if st := c.Stats(); st.OrderRequests != 0 {
		t.Errorf("Stats = %+v, want no order request", st)
	}
}

func TestDNSFailureIsNotSent(t *testing.T) {
	_, tokenSrv := newFake(t)
	c := newClient(t, "http://tropship.invalid", func(c *Config) {
		c.TokenPath = tokenSrv.URL + "/oauth/token"
		c.Timeout = 3 * time.Second
	})
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.NotSent {
		t.Fatalf("Submit = %+v, want NotSent", res)
	}
	t.Logf("reason: %s", res.Reason)
}

// A server that reads the whole order and then drops the connection may have
// created it.
func TestConnectionClosedAfterRequestIsAmbiguous(t *testing.T) {
	f, srv := newFake(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost {
			return false
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return true
		}
		conn.Close()
		return true
	}
	c := newClient(t, srv.URL, nil)
	res := c.Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.Ambiguous {
		t.Fatalf("live: %+v, want Ambiguous", res)
	}
	if n := f.hits(); n != 1 {
		t.Errorf("%d order requests reached the supplier, want 1 (never resent)", n)
	}
	if res := c.Submit(testCtx(t), sampleSubmission(), true); res.Outcome != order.NotSent {
		t.Errorf("validate: %+v, want NotSent", res)
	}
}

// A reset half-way through the answer, after the status line: also
// ambiguous.
func TestTruncatedAnswerIsAmbiguous(t *testing.T) {
	f, srv := newFake(t)
	f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return true
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"offline_")
		_ = buf.Flush()
		return true
	}
	c := newClient(t, srv.URL, nil)
	if res := c.Submit(testCtx(t), sampleSubmission(), false); res.Outcome != order.Ambiguous {
		t.Fatalf("Submit = %+v, want Ambiguous", res)
	}
}

func TestTimeoutAfterSendIsAmbiguous(t *testing.T) {
	f, srv := newFake(t)
	got := make(chan struct{}, 1)
	f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		select {
		case got <- struct{}{}: // the order is read (and counted)
		default:
		}
		<-r.Context().Done()
		return true
	}
	c := newClient(t, srv.URL, nil)
	// Get the token first, so that the deadline below is spent on the
	// order alone. It is long enough for the request to be written on a
	// loaded machine; the supplier never answers, so it always runs out.
	c.token(testCtx(t))
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	res := c.Submit(ctx, sampleSubmission(), false)
	if res.Outcome != order.Ambiguous {
		t.Fatalf("Submit = %+v, want Ambiguous", res)
	}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the supplier never read the order")
	}
	if n := f.hits(); n != 1 {
		t.Errorf("%d order requests, want 1", n)
	}
	// The client's own Timeout has the same effect.
	c2 := newClient(t, srv.URL, func(c *Config) { c.Timeout = 2 * time.Second })
	c2.token(testCtx(t))
	if res := c2.Submit(testCtx(t), sampleSubmission(), false); res.Outcome != order.Ambiguous {
		t.Errorf("Timeout: %+v, want Ambiguous", res)
	}
}

// A call whose context is over before anything is written sends nothing.
func TestCanceledBeforeSendIsNotSent(t *testing.T) {
	f, srv := newFake(t)
	c := newClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	res := c.Submit(ctx, sampleSubmission(), false)
	if res.Outcome != order.NotSent {
		t.Fatalf("Submit = %+v, want NotSent", res)
	}
	if n := f.hits(); n != 0 {
		t.Errorf("%d order requests", n)
	}
}

func TestLookup(t *testing.T) {
	f, srv := newFake(t)
	c := newClient(t, srv.URL, nil)
	ctx := testCtx(t)
	id, found, err := c.Lookup(ctx, "BC-abc123-250")
	if err != nil || found || id != "" {
		t.Fatalf("before: %q %v %v", id, found, err)
	}
	res := c.Submit(ctx, sampleSubmission(), false)
	id, found, err = c.Lookup(ctx, "BC-abc123-250")
	if err != nil || !found || id != res.OfflineOrderID {
		t.Fatalf("after: %q %v %v, want %q", id, found, err, res.OfflineOrderID)
	}
	f.mu.Lock()
	q := f.queries[len(f.queries)-1]
	f.mu.Unlock()
	if q != "reference=BC-abc123-250" {
		t.Errorf("query = %q", q)
	}

	// "Not found" lets the order be sent again, and so a second charge:
	// only an empty list says so. An answer that does not name the order
	// unmistakably is an error (the order is held for a person), never
	// "not found" and never another order's id.
	for name, body := range map[string]string{
		"ignored filter: another order, ours maybe on a later page": `{"orders":[{"offline_order_id":"OFF-X","reference":"BC-other-1"}]}`,
		"no orders list":               `{"items":[]}`,
		"orders not a list":            `{"orders":{"BC-abc123-250":"OFF-Z"}}`,
		"ours without an id":           `{"orders":[{"reference":"BC-abc123-250","status":"received"}]}`,
		"ours with a null id":          `{"orders":[{"offline_order_id":null,"reference":"BC-abc123-250"}]}`,
		"an entry without a reference": `{"orders":[{"offline_order_id":"OFF-Y"}]}`,
	} {
		f.answer = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body)
			return true
		}
		if id, found, err := c.Lookup(ctx, "BC-abc123-250"); err == nil || found || id != "" {
			t.Errorf("%s: %q %v %v; want an error", name, id, found, err)
		}
	}
	f.answer = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		writeJSON(w, http.StatusOK, map[string]any{"orders": []any{}})
		return true
	}
	if id, found, err := c.Lookup(ctx, "BC-abc123-250"); err != nil || found || id != "" {
		t.Errorf("empty list: %q %v %v; want not found", id, found, err)
	}
	f.answer = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"orders":null}`) // a Go server's empty slice
		return true
	}
	if id, found, err := c.Lookup(ctx, "BC-abc123-250"); err != nil || found || id != "" {
		t.Errorf("null list: %q %v %v; want not found", id, found, err)
	}
	// A numeric id is read as text.
	f.answer = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		writeJSON(w, http.StatusOK, map[string]any{"orders": []any{map[string]any{"offline_order_id": 4242, "reference": "BC-abc123-250"}}})
		return true
	}
	if id, found, err := c.Lookup(ctx, "BC-abc123-250"); err != nil || !found || id != "4242" {
		t.Errorf("numeric id: %q %v %v", id, found, err)
	}
}

func TestLookupErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		header    string
		retryable bool
		is        error
	}{
		{status: 404, is: ErrLookupUnsupported},
		{status: 405, is: ErrLookupUnsupported},
		{status: 429, header: "2", retryable: true},
		{status: 503, retryable: true},
		{status: 400},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f, srv := newFake(t)
			f.answer = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				return true
			}
			c := newClient(t, srv.URL, nil)
			_, found, err := c.Lookup(testCtx(t), "BC-abc123-250")
			if err == nil || found {
				t.Fatalf("Lookup: found=%v err=%v", found, err)
			}
			var re *fulfill.RetryableError
			if errors.As(err, &re) != tc.retryable {
				t.Errorf("retryable = %v, want %v (%v)", !tc.retryable, tc.retryable, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if tc.header == "2" && re.RetryAfter != 2*time.Second {
				t.Errorf("RetryAfter = %v", re.RetryAfter)
			}
		})
	}
}

func TestNeverSent(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, tc := range []struct {
		name  string
		err   error
		wrote bool
		want  bool
	}{
		{"nothing written", io.EOF, false, true},
		{"EOF after writing", io.EOF, true, false},
		{"dial error", refused, true, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "x.invalid"}, true, true},
		{"read reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true, false},
		{"deadline after writing", context.DeadlineExceeded, true, false},
	} {
		if got := neverSent(tc.err, tc.wrote); got != tc.want {
			t.Errorf("%s: neverSent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	c, err := New(Config{BaseURL: "https://api.example/", ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ordersURL != "https://api.example/v1/offline-orders" || c.oauth.TokenURL != "https://api.example/oauth/token" ||
		c.cfg.Timeout != DefaultTimeout {
		t.Errorf("defaults: orders %q token %q timeout %v", c.ordersURL, c.oauth.TokenURL, c.cfg.Timeout)
	}
	for _, bad := range []Config{
		{ClientID: "id", ClientSecret: "s"},
		{BaseURL: "ftp://x", ClientID: "id", ClientSecret: "s"},
		{BaseURL: "http://x", ClientSecret: "s"},
		{BaseURL: "http://x", ClientID: "id"},
		{BaseURL: "http://x", ClientID: "id", ClientSecret: "s", OrdersPath: "v1/orders"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// Redirects are never followed, from the token endpoint or the orders
// endpoint: net/http would carry the client secret or the token along.
func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), testClientSecret) || r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "stolen", "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(elsewhere.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusPermanentRedirect)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	res := newClient(t, srv.URL, nil).Submit(testCtx(t), sampleSubmission(), false)
	if res.Outcome != order.NotSent {
		t.Errorf("outcome %v (%s), want NotSent: the token request was redirected", res.Outcome, res.Reason)
	}
	if leaked.Load() {
		t.Error("the client secret or a token was sent to the redirect's target")
	}
}
