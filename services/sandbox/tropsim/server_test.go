package tropsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/tropsim"
)

const (
	clientID     = "shop-1"
	clientSecret = "s3cret/+=" // characters that Basic auth must URL-encode
)

type fixture struct {
	sim   *tropsim.Server
	srv   *httptest.Server
	clock *testclock.Clock
}

func newFixture(t *testing.T, opts tropsim.Options) *fixture {
	t.Helper()
	c := testclock.New(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	opts.ClientID, opts.ClientSecret = clientID, clientSecret
	opts.Now = c.Now
	sim := tropsim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: releases hanging requests
	return &fixture{sim: sim, srv: srv, clock: c}
}

func (f *fixture) token(t *testing.T) string {
	t.Helper()
	resp, body := f.postForm(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}})
	wantStatus(t, resp, body, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 300 {
		t.Fatalf("token answer %s (%v)", body, err)
	}
	return tok.AccessToken
}

func (f *fixture) postForm(t *testing.T, form url.Values) (*http.Response, []byte) {
	t.Helper()
	resp, err := f.srv.Client().PostForm(f.srv.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

// submit posts an order with a token; validateOnly picks the mode.
func (f *fixture) submit(t *testing.T, tok string, validateOnly bool, order any) (*http.Response, []byte) {
	t.Helper()
	resp, err := f.submitCtx(context.Background(), tok, validateOnly, order)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func (f *fixture) submitCtx(ctx context.Context, tok string, validateOnly bool, order any) (*http.Response, error) {
	b, err := json.Marshal(order)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s/v1/offline-orders?validate_only=%t", f.srv.URL, validateOnly)
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return f.srv.Client().Do(req)
}

func (f *fixture) lookup(t *testing.T, tok, ref string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/offline-orders?reference="+url.QueryEscape(ref), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

func order(ref string) tropsim.OrderRequest {
	return tropsim.OrderRequest{
		Reference: ref,
		Delivery: tropsim.Delivery{Name: "Jo Bloggs", Line1: "1 High St", City: "Leeds", County: "West Yorkshire",
			Postcode: "LS1 1AA", CountryCode: "GB", Phone: "01130000000", Email: "jo@example.com"},
		Lines: []tropsim.Line{{ProductCode: "APP449", Quantity: 2}},
		Notes: "BigCommerce order 250",
	}
}

type errorsBody struct {
	Errors []tropsim.APIError `json:"errors"`
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	f.token(t)

	// Basic auth, URL-encoded as RFC 6749 wants.
	req, _ := http.NewRequest("POST", f.srv.URL+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, resp, readBody(t, resp), http.StatusOK)

	resp, body := f.postForm(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"wrong"}})
	wantStatus(t, resp, body, http.StatusUnauthorized)
	if got := strings.TrimSpace(string(body)); got != `{"error":"invalid_client"}` {
		t.Errorf("401 body %s", got)
	}
	resp, body = f.postForm(t, url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {clientSecret}})
	wantStatus(t, resp, body, http.StatusBadRequest)

	if l := f.sim.Ledger(); l.TokensIssued != 2 || l.Unauthorized != 1 || l.Requests != 4 {
		t.Errorf("ledger counts %+v", l.Counts)
	}
}

// TestOAuth2Library checks that golang.org/x/oauth2's client-credentials
// flow works with every auth style, since that is what the product uses.
func TestOAuth2Library(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	for i, style := range []oauth2.AuthStyle{oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret,
			TokenURL: f.srv.URL + "/oauth/token", AuthStyle: style}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.srv.Client())
		body, _ := json.Marshal(order(fmt.Sprintf("BC-lib-%d", i)))
		resp, err := cfg.Client(ctx).Post(f.srv.URL+"/v1/offline-orders?validate_only=false", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		wantStatus(t, resp, readBody(t, resp), http.StatusCreated)
	}
	if n := len(f.sim.Ledger().Orders); n != 3 {
		t.Errorf("%d orders, want 3", n)
	}
}

func TestTokenExpiry(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.clock.Advance(299 * time.Second)
	resp, body := f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusOK)

	f.clock.Advance(time.Second)
	resp, body = f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusUnauthorized)
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
	resp, body = f.submit(t, "made-up", true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusUnauthorized)

	resp, body = f.submit(t, f.token(t), true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusOK)
}

func TestTokenTTLFaultKillsTokensEarly(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	f.sim.SetFaults(tropsim.Faults{TokenTTL: 10 * time.Second})
	tok := f.token(t) // still advertises expires_in 300
	f.clock.Advance(10 * time.Second)
	resp, body := f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusUnauthorized)
}

func TestRevokeTokens(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.RevokeTokens()
	resp, body := f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusUnauthorized)

	tok = f.token(t)
	req, _ := http.NewRequest("PUT", f.srv.URL+"/_sim/faults", strings.NewReader(`{"revoke_tokens": true}`))
	r, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r, readBody(t, r), http.StatusOK)
	resp, body = f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusUnauthorized)
	if f.sim.Faults().RevokeTokens {
		t.Error("RevokeTokens stayed set: it is an action")
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t, tropsim.Options{Catalog: []string{"APP449", "APP450"}})
	tok := f.token(t)
	cases := []struct {
		name        string
		edit        func(*tropsim.OrderRequest)
		field, code string
	}{
		{"no reference", func(o *tropsim.OrderRequest) { o.Reference = " " }, "reference", "required"},
		{"long reference", func(o *tropsim.OrderRequest) { o.Reference = strings.Repeat("r", 51) }, "reference", "too_long"},
		{"no name", func(o *tropsim.OrderRequest) { o.Delivery.Name = "" }, "delivery.name", "required"},
		{"no line1", func(o *tropsim.OrderRequest) { o.Delivery.Line1 = "" }, "delivery.line1", "required"},
		{"no city", func(o *tropsim.OrderRequest) { o.Delivery.City = "" }, "delivery.city", "required"},
		{"no postcode", func(o *tropsim.OrderRequest) { o.Delivery.Postcode = "" }, "delivery.postcode", "required"},
		{"France", func(o *tropsim.OrderRequest) { o.Delivery.CountryCode = "FR" }, "delivery.country_code", "unsupported_country"},
		{"no country", func(o *tropsim.OrderRequest) { o.Delivery.CountryCode = "" }, "delivery.country_code", "unsupported_country"},
		{"no lines", func(o *tropsim.OrderRequest) { o.Lines = nil }, "lines", "required"},
		{"zero quantity", func(o *tropsim.OrderRequest) { o.Lines[0].Quantity = 0 }, "lines[0].quantity", "invalid"},
		{"unknown product", func(o *tropsim.OrderRequest) {
			o.Lines = append(o.Lines, tropsim.Line{ProductCode: "XYZ", Quantity: 1})
		}, "lines[1].product_code", "unknown_product"},
		{"empty product", func(o *tropsim.OrderRequest) { o.Lines[0].ProductCode = "" }, "lines[0].product_code", "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, validateOnly := range []bool{true, false} {
				o := order("BC-abc-250")
				c.edit(&o)
				resp, body := f.submit(t, tok, validateOnly, o)
				wantStatus(t, resp, body, http.StatusUnprocessableEntity)
				var e errorsBody
				if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 ||
					e.Errors[0].Field != c.field || e.Errors[0].Code != c.code || e.Errors[0].Message == "" {
					t.Errorf("validate_only=%t: body %s, want one error %s/%s", validateOnly, body, c.field, c.code)
				}
			}
		})
	}
	resp, err := f.srv.Client().Do(func() *http.Request {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/offline-orders?validate_only=false", strings.NewReader(`{"reference": 12`))
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, resp, readBody(t, resp), http.StatusBadRequest)

	l := f.sim.Ledger()
	if len(l.Orders) != 0 || l.Validations != 0 || l.Rejections != 2*len(cases)+1 {
		t.Errorf("after rejections: %d orders, %+v", len(l.Orders), l.Counts)
	}
}

func TestValidateCreatesNothingLiveDoes(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)

	resp, body := f.submit(t, tok, true, order("BC-abc-250"))
	wantStatus(t, resp, body, http.StatusOK)
	if got := strings.TrimSpace(string(body)); got != `{"valid":true,"warnings":[]}` {
		t.Errorf("validate answer %s", got)
	}
	if l := f.sim.Ledger(); len(l.Orders) != 0 || l.Validations != 1 {
		t.Fatalf("after validate: %+v", l)
	}

	resp, body = f.submit(t, tok, false, order("BC-abc-250"))
	wantStatus(t, resp, body, http.StatusCreated)
	var created map[string]string
	_ = json.Unmarshal(body, &created)
	want := map[string]string{"offline_order_id": "TS-000001", "reference": "BC-abc-250", "status": "received"}
	if fmt.Sprint(created) != fmt.Sprint(want) {
		t.Errorf("created %v, want %v", created, want)
	}
	l := f.sim.Ledger()
	if len(l.Orders) != 1 || l.Orders[0].Request.Lines[0].ProductCode != "APP449" || l.ExtraOrders != 0 || l.References["BC-abc-250"] != 1 {
		t.Errorf("ledger %+v", l)
	}
}

func TestDuplicateReferenceCreatesTwoOrders(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	for _, ref := range []string{"BC-abc-250", "BC-abc-251", "BC-abc-250"} {
		resp, body := f.submit(t, tok, false, order(ref))
		wantStatus(t, resp, body, http.StatusCreated)
	}
	l := f.sim.Ledger()
	if len(l.Orders) != 3 || l.References["BC-abc-250"] != 2 || l.DuplicateReferences != 1 || l.ExtraOrders != 1 {
		t.Errorf("ledger %+v", l)
	}
	if dup := l.OrdersFor("BC-abc-250"); len(dup) != 2 || dup[0].OfflineOrderID != "TS-000001" || dup[1].OfflineOrderID != "TS-000003" {
		t.Errorf("orders for the reference: %+v", dup)
	}

	resp, body := f.lookup(t, tok, "BC-abc-250")
	wantStatus(t, resp, body, http.StatusOK)
	var found struct {
		Orders []map[string]string `json:"orders"`
	}
	_ = json.Unmarshal(body, &found)
	if len(found.Orders) != 2 || found.Orders[1]["offline_order_id"] != "TS-000003" ||
		found.Orders[0]["status"] != "received" || found.Orders[0]["created_at"] != "2026-03-02T10:00:00Z" {
		t.Errorf("lookup %s", body)
	}

	r, err := f.srv.Client().Get(f.srv.URL + "/_sim/ledger")
	if err != nil {
		t.Fatal(err)
	}
	var viaHTTP tropsim.Ledger
	if err := json.Unmarshal(readBody(t, r), &viaHTTP); err != nil || viaHTTP.ExtraOrders != 1 || len(viaHTTP.Orders) != 3 {
		t.Errorf("/_sim/ledger: %+v %v", viaHTTP, err)
	}
}

func TestLookup(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	resp, body := f.lookup(t, tok, "BC-none")
	wantStatus(t, resp, body, http.StatusOK)
	if got := strings.TrimSpace(string(body)); got != `{"orders":[]}` {
		t.Errorf("empty lookup %s", got)
	}
	resp, body = f.lookup(t, tok, "")
	wantStatus(t, resp, body, http.StatusBadRequest)

	f.sim.SetFaults(tropsim.Faults{FailLookup: tropsim.Trigger{Count: 1, Status: 503}})
	resp, body = f.lookup(t, tok, "BC-none")
	wantStatus(t, resp, body, http.StatusServiceUnavailable)

	f.sim.SetLookup(false)
	resp, body = f.lookup(t, tok, "BC-none")
	wantStatus(t, resp, body, http.StatusNotFound)

	f2 := newFixture(t, tropsim.Options{DisableLookup: true})
	resp, body = f2.lookup(t, f2.token(t), "BC-none")
	wantStatus(t, resp, body, http.StatusNotFound)
}

func TestFailBeforeCreate(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{FailBeforeCreate: tropsim.Trigger{Count: 1, Status: 503}})

	// Validate-only calls are not hit unless ValidateToo is set.
	resp, body := f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusOK)
	resp, body = f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusServiceUnavailable)
	if l := f.sim.Ledger(); len(l.Orders) != 0 || l.FailedBeforeCreate != 1 {
		t.Fatalf("after 503: %+v", l)
	}
	resp, body = f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusCreated)

	f.sim.SetFaults(tropsim.Faults{FailBeforeCreate: tropsim.Trigger{Count: 1}, ValidateToo: true})
	resp, body = f.submit(t, tok, true, order("BC-1"))
	wantStatus(t, resp, body, http.StatusInternalServerError)
}

func TestFailAfterCreate(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{FailAfterCreate: tropsim.Trigger{Count: 1}})
	resp, body := f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusInternalServerError)

	l := f.sim.Ledger()
	if len(l.Orders) != 1 || l.FailedAfterCreate != 1 {
		t.Fatalf("after 500: %+v", l)
	}
	// The order exists: a lookup finds it, and a blind resend duplicates it.
	resp, body = f.lookup(t, tok, "BC-1")
	wantStatus(t, resp, body, http.StatusOK)
	if !strings.Contains(string(body), "TS-000001") {
		t.Errorf("lookup %s", body)
	}
	resp, body = f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusCreated)
	if l := f.sim.Ledger(); l.ExtraOrders != 1 {
		t.Errorf("ExtraOrders = %d, want 1", l.ExtraOrders)
	}
}

// waitFor polls the ledger until cond holds. It never times out by itself:
// the test binary's -timeout does, so slow machines only make it slower.
func waitFor(f *fixture, cond func(tropsim.Ledger) bool) {
	for !cond(f.sim.Ledger()) {
		time.Sleep(time.Millisecond)
	}
}

func TestTimeoutAfterCreate(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{TimeoutAfterCreate: tropsim.Trigger{Count: 1}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		resp, err := f.submitCtx(ctx, tok, false, order("BC-1"))
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("got an answer: %d", resp.StatusCode)
		}
		errc <- err
	}()
	waitFor(f, func(l tropsim.Ledger) bool { return l.TimedOutAfterCreate == 1 })
	cancel() // the client gives up, as its timeout would
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("client error %v, want context canceled", err)
	}
	if l := f.sim.Ledger(); len(l.Orders) != 1 {
		t.Errorf("%d orders, want the 1 created before the hang", len(l.Orders))
	}
	resp, body := f.submit(t, tok, false, order("BC-2"))
	wantStatus(t, resp, body, http.StatusCreated)
}

func TestTimeoutAfterCreateDropsConnectionWhenClosed(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{TimeoutAfterCreate: tropsim.Trigger{Rate: 1}})
	errc := make(chan error, 1)
	go func() {
		resp, err := f.submitCtx(context.Background(), tok, false, order("BC-1"))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(f, func(l tropsim.Ledger) bool { return l.TimedOutAfterCreate == 1 })
	f.sim.Close()
	if err := <-errc; err == nil {
		t.Error("the client got an answer; want a dropped connection")
	}
}

func TestLatencyHonoursCancellation(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{Latency: time.Hour})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		resp, err := f.submitCtx(ctx, tok, false, order("BC-1"))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(f, func(l tropsim.Ledger) bool { return l.Requests == 2 }) // token + order
	cancel()
	if err := <-errc; err == nil {
		t.Error("a request delayed by an hour answered")
	}
	if l := f.sim.Ledger(); len(l.Orders) != 0 {
		t.Errorf("%d orders created by an abandoned request", len(l.Orders))
	}

	f.sim.SetFaults(tropsim.Faults{Latency: 20 * time.Millisecond})
	start := time.Now()
	resp, body := f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusCreated)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("answered after %s, before the latency", d)
	}
}

func TestThrottle(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	f.sim.SetFaults(tropsim.Faults{Throttle: tropsim.Trigger{Count: 1}, RetryAfter: 2500 * time.Millisecond})
	resp, body := f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusTooManyRequests)
	if got := resp.Header.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q, want 3", got)
	}
	if l := f.sim.Ledger(); len(l.Orders) != 0 || l.Throttled != 1 {
		t.Errorf("after 429: %+v", l)
	}
	resp, body = f.submit(t, tok, false, order("BC-1"))
	wantStatus(t, resp, body, http.StatusCreated)
}

func TestFaultsJSON(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	in := `{"latency":"250ms","token_ttl":"5s","retry_after":"2s","fail_before_create":{"count":2,"status":503},
		"fail_after_create":{"rate":0.5},"validate_too":true}`
	req, _ := http.NewRequest("PUT", f.srv.URL+"/_sim/faults", strings.NewReader(in))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	wantStatus(t, resp, body, http.StatusOK)
	want := tropsim.Faults{Latency: 250 * time.Millisecond, TokenTTL: 5 * time.Second, RetryAfter: 2 * time.Second,
		FailBeforeCreate: tropsim.Trigger{Count: 2, Status: 503}, FailAfterCreate: tropsim.Trigger{Rate: 0.5}, ValidateToo: true}
	if got := f.sim.Faults(); got != want {
		t.Errorf("Faults() = %+v, want %+v", got, want)
	}
	if !strings.Contains(string(body), `"latency":"250ms"`) {
		t.Errorf("answer %s", body)
	}
	req, _ = http.NewRequest("PUT", f.srv.URL+"/_sim/faults", strings.NewReader(`{"latency":"soon"}`))
	resp, err = f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, resp, readBody(t, resp), http.StatusBadRequest)
}

// TestSeededFaultsRepeat: the same seed gives the same outcomes.
func TestSeededFaultsRepeat(t *testing.T) {
	run := func() string {
		f := newFixture(t, tropsim.Options{Seed: 7})
		tok := f.token(t)
		f.sim.SetFaults(tropsim.Faults{FailBeforeCreate: tropsim.Trigger{Rate: 0.5}})
		var out []int
		for i := range 30 {
			resp, _ := f.submit(t, tok, false, order(fmt.Sprint("BC-", i)))
			out = append(out, resp.StatusCode)
		}
		return fmt.Sprint(out)
	}
	a, b := run(), run()
	if a != b {
		t.Errorf("runs differ:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "500") || !strings.Contains(a, "201") {
		t.Errorf("rate 0.5 gave %s", a)
	}
}

func TestConcurrentDuplicatesAreAllCounted(t *testing.T) {
	f := newFixture(t, tropsim.Options{})
	tok := f.token(t)
	const n = 25
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := f.submitCtx(context.Background(), tok, false, order("BC-abc-250"))
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
			f.sim.Ledger()
		})
	}
	wg.Wait()
	for _, c := range codes {
		if c != http.StatusCreated {
			t.Fatalf("codes %v", codes)
		}
	}
	l := f.sim.Ledger()
	ids := map[string]bool{}
	for _, o := range l.Orders {
		ids[o.OfflineOrderID] = true
	}
	if len(ids) != n || l.ExtraOrders != n-1 || l.DuplicateReferences != 1 {
		t.Errorf("%d distinct ids, ExtraOrders %d, DuplicateReferences %d", len(ids), l.ExtraOrders, l.DuplicateReferences)
	}
}
