package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
	"github.com/backorder/backorder/services/webhook-gateway/internal/gateway"
)

const (
	clientSecret = "bc-client-secret-0123456789"
	secretHeader = "X-Backorder-Secret"
	sharedSecret = "shared-secret-abcdef"
	adminToken   = "admin-token-xyz"
)

// orderBody is a statusUpdated delivery as BigCommerce sends it, plus a field
// BigCommerce might add one day.
const orderBody = `{"scope":"store/order/statusUpdated","store_id":"1025646",` +
	`"data":{"type":"order","id":250,"status":{"previous_status_id":0,"new_status_id":11}},` +
	`"hash":"5e1cc4c4d2b0c6ae","created_at":1561479335,"producer":"stores/abc123","added_later":{"x":1}}`

func testConfig(addrs ...string) config.Config {
	return config.Config{
		ListenAddr:         "127.0.0.1:0",
		FulfillmentAddrs:   addrs,
		FulfillmentTimeout: 5 * time.Second,
		AttemptTimeout:     time.Second,
		OperatorTimeout:    time.Minute,
		ClientSecret:       clientSecret,
		SecretHeader:       secretHeader,
		Secret:             sharedSecret,
		AdminToken:         adminToken,
		ShutdownTimeout:    5 * time.Second,
	}
}

// startGateway runs the real gateway on 127.0.0.1:0 and returns its base URL
// and its log. The gateway is shut down, and must shut down cleanly, when the
// test ends.
func startGateway(t *testing.T, cfg config.Config) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, t.Output()), nil))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), logs
}

// delivery describes one webhook request; the zero value of each knob means
// "as BigCommerce would send it".
type delivery struct {
	body      string
	id        string
	unsigned  bool
	signKey   string        // default clientSecret
	tsOffset  time.Duration // added to now
	tamper    bool          // sign body, send a modified body
	secret    string        // default sharedSecret
	noSecret  bool
	signature string // set after send, for the log check
}

func (d *delivery) request(t *testing.T, url string) *http.Request {
	t.Helper()
	body := []byte(d.body)
	req, err := http.NewRequest(http.MethodPost, url+gateway.WebhookPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if d.id == "" {
		d.id = "msg_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if !d.unsigned {
		key := d.signKey
		if key == "" {
			key = clientSecret
		}
		wh, err := standardwebhooks.NewWebhookRaw([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Now().Add(d.tsOffset)
		sig, err := wh.Sign(d.id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		d.signature = sig
		req.Header.Set(standardwebhooks.HeaderWebhookID, d.id)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	if d.tamper {
		body = bytes.Replace(body, []byte(`"id":250`), []byte(`"id":251`), 1)
	}
	if !d.noSecret {
		s := d.secret
		if s == "" {
			s = sharedSecret
		}
		req.Header.Set(secretHeader, s)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return req
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// paddedOrder returns an order delivery of exactly n bytes.
func paddedOrder(t *testing.T, n int) string {
	t.Helper()
	head := `{"scope":"store/order/created","store_id":"1","data":{"type":"order","id":7},"producer":"stores/abc123","pad":"`
	tail := `"}`
	if n < len(head)+len(tail) {
		t.Fatalf("cannot pad to %d bytes", n)
	}
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// A hook set up with a trailing slash is told where deliveries go, not
// asked for the operator token.
func TestWebhookPathWithTrailingSlash(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	for _, path := range []string{gateway.WebhookPath + "/", "/v1/webhooks", "/v1/webhooks/bc"} {
		req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(orderBody))
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, req)
		if resp.status != http.StatusNotFound || !strings.Contains(resp.body, "POST "+gateway.WebhookPath) {
			t.Errorf("%s: %d %s; want 404 naming the webhook route", path, resp.status, resp.body)
		}
	}
}

func TestWebhook(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, logs := startGateway(t, testConfig(fake.addr))

	tests := []struct {
		name        string
		d           delivery
		fakeErr     error
		wantStatus  int
		wantCalls   int
		wantBody    string // a substring
		wantRetryAf bool
	}{
		{name: "valid signed delivery", d: delivery{body: orderBody}, wantStatus: 200, wantCalls: 1, wantBody: `"recorded":true`},
		{name: "forged key", d: delivery{body: orderBody, signKey: "not-the-secret"}, wantStatus: 401},
		{name: "tampered body", d: delivery{body: orderBody, tamper: true}, wantStatus: 401},
		// Both mechanisms are configured here: one right credential is
		// enough, a wrong one is refused, none is refused.
		{name: "unsigned, with the shared secret (a store API account's hook)", d: delivery{body: orderBody, unsigned: true}, wantStatus: 200, wantCalls: 1, wantBody: `"recorded":true`},
		{name: "unsigned and without the shared secret", d: delivery{body: orderBody, unsigned: true, noSecret: true}, wantStatus: 401},
		{name: "stale timestamp", d: delivery{body: orderBody, tsOffset: -10 * time.Minute}, wantStatus: 401},
		{name: "future timestamp", d: delivery{body: orderBody, tsOffset: 10 * time.Minute}, wantStatus: 401},
		{name: "wrong shared secret", d: delivery{body: orderBody, secret: "shared-secret-abcdeg"}, wantStatus: 401},
		{name: "signed, without the shared secret (an app's hook)", d: delivery{body: orderBody, noSecret: true}, wantStatus: 200, wantCalls: 1, wantBody: `"recorded":true`},
		{name: "forged key, with the shared secret", d: delivery{body: orderBody, signKey: "not-the-secret"}, wantStatus: 401},
		{name: "body of 64 KiB + 1", d: delivery{body: paddedOrder(t, gateway.MaxBodyBytes+1)}, wantStatus: 413},
		{name: "body of exactly 64 KiB", d: delivery{body: paddedOrder(t, gateway.MaxBodyBytes)}, wantStatus: 200, wantCalls: 1},
		{name: "malformed JSON", d: delivery{body: `{"scope":"store/order/created",`}, wantStatus: 400},
		{name: "not a JSON object", d: delivery{body: `["store/order/created"]`}, wantStatus: 400},
		{name: "order scope with undecodable data", d: delivery{body: `{"scope":"store/order/created","data":{"id":true}}`}, wantStatus: 400,
			wantBody: `"error":"malformed request body: (line 1:45): invalid value for uint64 field id: true"`},
		{name: "null", d: delivery{body: `null`}, wantStatus: 400, wantBody: "not an object"},
		{name: "no scope", d: delivery{body: `{"store_id":"1","data":{"type":"order","id":7}}`}, wantStatus: 400, wantBody: "scope is missing"},
		{name: "ignored scope with data of another type", d: delivery{body: `{"scope":"store/order/transaction/created","store_id":"1","producer":7,"data":"t-9"}`},
			wantStatus: 200, wantBody: `{"ignored":true}`},
		{name: "order scope with data that is not an object", d: delivery{body: `{"scope":"store/order/created","store_id":"1","data":"250"}`}, wantStatus: 400},
		{name: "non-order scope", d: delivery{body: `{"scope":"store/product/updated","store_id":"1","data":{"type":"product","id":7}}`},
			wantStatus: 200, wantBody: `{"ignored":true}`},
		{name: "order scope not acted on, data of another shape", d: delivery{body: `{"scope":"store/order/message/created","store_id":"1","data":{"type":"message","id":"m-7","message":{"order_id":7}}}`},
			wantStatus: 200, wantBody: `{"ignored":true}`},
		{name: "store_id as a JSON number", d: delivery{body: strings.Replace(orderBody, `"1025646"`, `1025646`, 1)},
			wantStatus: 200, wantCalls: 1, wantBody: `"recorded":true`},
		{name: "store_id of another type", d: delivery{body: strings.Replace(orderBody, `"1025646"`, `{"id":1}`, 1)},
			wantStatus: 400, wantBody: "field store_id"},
		{name: "fulfillment unavailable", d: delivery{body: orderBody}, fakeErr: status.Error(codes.Unavailable, "etcd down"),
			wantStatus: 503, wantCalls: 1, wantRetryAf: true},
		{name: "fulfillment internal error", d: delivery{body: orderBody}, fakeErr: status.Error(codes.Internal, "boom"),
			wantStatus: 503, wantCalls: 1, wantRetryAf: true},
		{name: "duplicate delivery", d: delivery{body: orderBody}, fakeErr: status.Error(codes.AlreadyExists, "seen"),
			wantStatus: 200, wantCalls: 1, wantBody: `"duplicate":true`},
		{name: "fulfillment rejects argument", d: delivery{body: orderBody}, fakeErr: status.Error(codes.InvalidArgument, "no producer"),
			wantStatus: 400, wantCalls: 1, wantBody: "no producer"},
		{name: "fulfillment's own message is passed on as it is", d: delivery{body: orderBody}, fakeErr: status.Error(codes.InvalidArgument, "invalid character in actor"),
			wantStatus: 400, wantCalls: 1, wantBody: `{"error":"invalid character in actor","code":"InvalidArgument"}`},
		{name: "fulfillment failed precondition", d: delivery{body: orderBody}, fakeErr: status.Error(codes.FailedPrecondition, "other store"),
			wantStatus: 409, wantCalls: 1},
	}
	var signatures []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.reset(tt.fakeErr)
			resp := do(t, tt.d.request(t, url))
			signatures = append(signatures, tt.d.signature)

			if resp.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", resp.status, tt.wantStatus, resp.body)
			}
			if !strings.Contains(resp.body, tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", resp.body, tt.wantBody)
			}
			if got := resp.header.Get("Retry-After") != ""; got != tt.wantRetryAf {
				t.Errorf("Retry-After = %q, want present: %v", resp.header.Get("Retry-After"), tt.wantRetryAf)
			}
			if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			calls := fake.recorded()
			if len(calls) != tt.wantCalls {
				t.Fatalf("fulfillment received %d calls, want %d", len(calls), tt.wantCalls)
			}
			for _, c := range calls {
				got := c.md.Get("webhook-id")
				if tt.d.unsigned && len(got) != 0 {
					t.Errorf("webhook-id metadata = %q of an unsigned delivery, want none", got)
				}
				if !tt.d.unsigned && (len(got) != 1 || got[0] != tt.d.id) {
					t.Errorf("webhook-id metadata = %q, want [%q]", got, tt.d.id)
				}
				for _, k := range []string{"authorization", strings.ToLower(secretHeader), "webhook-signature", "grpcgateway-webhook-signature"} {
					if v := c.md.Get(k); len(v) > 0 {
						t.Errorf("metadata %q was forwarded to fulfillment", k)
					}
				}
			}
		})
	}

	// forward sends d, which must be answered 200, and returns the one call
	// the gateway made.
	forward := func(t *testing.T, d delivery) (call, *backorderv1.HandleOrderWebhookRequest) {
		t.Helper()
		fake.reset(nil)
		if resp := do(t, d.request(t, url)); resp.status != 200 {
			t.Fatalf("status = %d, body %s", resp.status, resp.body)
		}
		calls := fake.recorded()
		if len(calls) != 1 {
			t.Fatalf("got %d calls, want 1", len(calls))
		}
		req, ok := calls[0].req.(*backorderv1.HandleOrderWebhookRequest)
		if !ok || calls[0].method != "HandleOrderWebhook" {
			t.Fatalf("call = %s %T", calls[0].method, calls[0].req)
		}
		return calls[0], req
	}

	t.Run("fields decoded", func(t *testing.T) {
		c, req := forward(t, delivery{body: orderBody, id: "msg_2kP9"})
		if req.GetScope() != "store/order/statusUpdated" || req.GetStoreId() != "1025646" ||
			req.GetData().GetId() != 250 || req.GetData().GetType() != "order" ||
			req.GetData().GetStatus().GetNewStatusId() != 11 || req.GetHash() != "5e1cc4c4d2b0c6ae" ||
			req.GetProducer() != "stores/abc123" {
			t.Errorf("decoded request = %v", req)
		}
		if got := c.md.Get("webhook-id"); len(got) != 1 || got[0] != "msg_2kP9" {
			t.Errorf("webhook-id metadata = %q", got)
		}
	})

	// created_at's meaning is unsettled and its form varies: whatever it
	// holds, the delivery is taken.
	for _, createdAt := range []string{`1561479335.5`, `"2026-12-04T20:00:00Z"`, `null`, `{"at":1}`} {
		t.Run("created_at "+createdAt, func(t *testing.T) {
			_, req := forward(t, delivery{body: strings.Replace(orderBody, `1561479335`, createdAt, 1)})
			if req.GetData().GetId() != 250 || req.GetHash() != "5e1cc4c4d2b0c6ae" {
				t.Errorf("decoded request = %v", req)
			}
		})
	}

	t.Run("numeric store_id forwarded as the documented string", func(t *testing.T) {
		_, req := forward(t, delivery{body: strings.Replace(orderBody, `"1025646"`, `1025646`, 1)})
		if req.GetStoreId() != "1025646" || req.GetData().GetId() != 250 || req.GetHash() != "5e1cc4c4d2b0c6ae" {
			t.Errorf("decoded request = %v", req)
		}
	})

	t.Run("GET on the webhook route", func(t *testing.T) {
		fake.reset(nil)
		req, _ := http.NewRequest(http.MethodGet, url+gateway.WebhookPath, nil)
		if resp := do(t, req); resp.status != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.status)
		}
		if n := len(fake.recorded()); n != 0 {
			t.Errorf("fulfillment received %d calls, want 0", n)
		}
	})

	t.Run("no secret in logs", func(t *testing.T) {
		out := logs.String()
		for _, s := range append([]string{clientSecret, sharedSecret, adminToken}, signatures...) {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("log contains secret or signature %q", s)
			}
		}
		if !strings.Contains(out, `"webhook_id"`) || !strings.Contains(out, `"reject"`) {
			t.Errorf("log lacks the expected request attributes:\n%s", out)
		}
		// Refused deliveries are warnings; a scanner's 405 is not.
		for _, line := range strings.Split(out, "\n") {
			var l struct {
				Level  string `json:"level"`
				Msg    string `json:"msg"`
				Status int    `json:"status"`
			}
			if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "http request" {
				continue
			}
			want := "INFO"
			if l.Status >= 400 && l.Status != 404 && l.Status != 405 {
				want = "WARN"
			}
			if l.Level != want {
				t.Errorf("a %d answer logged at %s, want %s: %s", l.Status, l.Level, want, line)
			}
		}
	})
}

func TestWebhookFulfillmentDown(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	fake.stop()

	d := delivery{body: orderBody}
	resp := do(t, d.request(t, url))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Errorf("status = %d, Retry-After = %q; want 503 with Retry-After (body %s)",
			resp.status, resp.header.Get("Retry-After"), resp.body)
	}
}

func TestWebhookInsecureSkipVerify(t *testing.T) {
	fake := startFake(t, "replica-1")
	cfg := testConfig(fake.addr)
	cfg.ClientSecret, cfg.SecretHeader, cfg.Secret = "", "", ""
	cfg.InsecureSkipVerify = true
	url, logs := startGateway(t, cfg)

	d := delivery{body: orderBody, unsigned: true, noSecret: true}
	if resp := do(t, d.request(t, url)); resp.status != 200 {
		t.Fatalf("status = %d, want 200 (body %s)", resp.status, resp.body)
	}
	if n := len(fake.recorded()); n != 1 {
		t.Errorf("fulfillment received %d calls, want 1", n)
	}
	out := logs.String()
	if !strings.Contains(out, "WARNING: WEBHOOK VERIFICATION IS DISABLED") {
		t.Errorf("no start-up warning in log:\n%s", out)
	}
	if !strings.Contains(out, "NOT VERIFIED") {
		t.Errorf("no per-delivery warning in log:\n%s", out)
	}
}

func TestAdminRoutes(t *testing.T) {
	fake := startFake(t, "replica-1")
	get := func(t *testing.T, url, auth string) response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+"/v1/stores/abc123/orders/250", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return do(t, req)
	}

	t.Run("no token configured", func(t *testing.T) {
		cfg := testConfig(fake.addr)
		cfg.AdminToken = ""
		url, _ := startGateway(t, cfg)
		fake.reset(nil)
		for _, path := range []string{"/v1/orders", "/v1/status", "/v1/stores/abc123/orders/250"} {
			req, _ := http.NewRequest(http.MethodGet, url+path, nil)
			req.Header.Set("Authorization", "Bearer anything")
			resp := do(t, req)
			if resp.status != http.StatusForbidden || !strings.Contains(resp.body, "ADMIN_TOKEN") {
				t.Errorf("GET %s: status = %d, body %s; want 403 naming ADMIN_TOKEN", path, resp.status, resp.body)
			}
		}
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/stores/abc123/orders/250:process", strings.NewReader(`{}`))
		if resp := do(t, req); resp.status != http.StatusForbidden {
			t.Errorf("ProcessOrder: status = %d, want 403", resp.status)
		}
		if n := len(fake.recorded()); n != 0 {
			t.Errorf("fulfillment received %d calls, want 0", n)
		}
	})

	url, logs := startGateway(t, testConfig(fake.addr))
	for _, tt := range []struct {
		name, auth string
	}{
		{"missing bearer", ""},
		{"wrong bearer", "Bearer admin-token-xyw"},
		{"token prefix", "Bearer admin-token"},
		{"wrong scheme", "Basic " + adminToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake.reset(nil)
			resp := get(t, url, tt.auth)
			if resp.status != http.StatusUnauthorized || resp.header.Get("WWW-Authenticate") == "" {
				t.Errorf("status = %d, WWW-Authenticate %q; want 401 with a challenge", resp.status, resp.header.Get("WWW-Authenticate"))
			}
			if n := len(fake.recorded()); n != 0 {
				t.Errorf("fulfillment received %d calls, want 0", n)
			}
		})
	}

	t.Run("right bearer is proxied", func(t *testing.T) {
		fake.reset(nil)
		resp := get(t, url, "bearer "+adminToken)
		if resp.status != http.StatusOK {
			t.Fatalf("status = %d, body %s", resp.status, resp.body)
		}
		var got struct {
			Order struct {
				StoreHash string `json:"store_hash"`
				OrderID   string `json:"order_id"`
				State     string `json:"state"`
			} `json:"order"`
		}
		if err := json.Unmarshal([]byte(resp.body), &got); err != nil {
			t.Fatalf("decode %s: %v", resp.body, err)
		}
		if got.Order.StoreHash != "abc123" || got.Order.OrderID != "250" || got.Order.State != "ORDER_STATE_SUBMITTED" {
			t.Errorf("order = %+v (body %s)", got.Order, resp.body)
		}
		calls := fake.recorded()
		if len(calls) != 1 || calls[0].method != "GetOrder" {
			t.Fatalf("calls = %v, want one GetOrder", calls)
		}
		if v := calls[0].md.Get("authorization"); len(v) != 0 {
			t.Errorf("the bearer token was forwarded to fulfillment")
		}
	})

	t.Run("not found from fulfillment", func(t *testing.T) {
		fake.reset(status.Error(codes.NotFound, "no such order"))
		if resp := get(t, url, "Bearer "+adminToken); resp.status != http.StatusNotFound {
			t.Errorf("status = %d, want 404 (body %s)", resp.status, resp.body)
		}
	})

	if strings.Contains(logs.String(), adminToken) {
		t.Errorf("log contains the admin token")
	}
}

// The operator routes refuse what they do not know, where the webhook route
// (TestWebhook's orderBody carries unknown fields) drops it: a misspelt
// validate_only would otherwise send the order live, and a misspelt filter
// list every order.
func TestOperatorRoutesRefuseUnknownFields(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	send := func(method, path, body string) response {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		return do(t, req)
	}
	for _, c := range []struct{ method, path, body, name string }{
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"validate":true}`, "validate"},
		{http.MethodGet, "/v1/orders?statee=ORDER_STATE_NEEDS_REVIEW", "", "statee"},
		{http.MethodGet, "/v1/orders?pending=true&page_size=5&order.id=1", "", "order.id"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:process?validate_only=true", `{}`, "query parameters"},
		{http.MethodGet, "/v1/stores/abc123/orders/250?x=1", "", "query parameters"},
		// The path names the order; a body naming another is a mistake.
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"order_id":251}`, "order_id 251"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:retry", `{"order_id":"251","actor":"ops"}`, "order_id 251"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:resolve", `{"store_hash":"other","actor":"ops"}`, `store_hash \"other\"`},
		{http.MethodPost, "/v1/stores/abc123/orders:sweep", `{"store_hash":"other"}`, `store_hash \"other\"`},
		// Read as grpc-gateway reads it: JSON names, numbers in any form,
		// only the first value.
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"orderId":251}`, "order_id 251"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"order_id":2.51e2}`, "order_id 251"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"order_id":251} x`, "order_id 251"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"storeHash":"other"}`, `store_hash \"other\"`},
	} {
		fake.reset(nil)
		resp := send(c.method, c.path, c.body)
		if resp.status != http.StatusBadRequest || !strings.Contains(resp.body, c.name) {
			t.Errorf("%s %s %s: status %d, body %s; want 400 naming %q", c.method, c.path, c.body, resp.status, resp.body, c.name)
		}
		if n := len(fake.recorded()); n != 0 {
			t.Errorf("%s %s: fulfillment received %d calls, want 0", c.method, c.path, n)
		}
	}

	// An action by another method, or one that does not exist, is told so.
	for _, c := range []struct {
		method, path string
		status       int
		says         string
	}{
		{http.MethodGet, "/v1/stores/abc123/orders/250:process", http.StatusMethodNotAllowed, ":process takes POST"},
		{http.MethodPost, "/v1/stores/abc123/orders/250:bogus", http.StatusNotFound, "the actions are :process, :retry, :resolve"},
		{http.MethodPost, "/v1/stores/abc123/orders:process", http.StatusNotFound, "the actions are :sweep"},
		{http.MethodGet, "/v1/stores/abc123/orders:sweep", http.StatusMethodNotAllowed, ":sweep takes POST"},
	} {
		if resp := send(c.method, c.path, ""); resp.status != c.status || !strings.Contains(resp.body, c.says) {
			t.Errorf("%s %s: status %d, body %s; want %d saying %q", c.method, c.path, resp.status, resp.body, c.status, c.says)
		}
	}
	// A body over 64 KiB is 413, as on the webhook route; one that is not
	// JSON says so.
	if resp := send(http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"actor":"`+strings.Repeat("x", gateway.MaxBodyBytes)+`"}`); resp.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, body %s; want 413", resp.status, resp.body)
	}
	if resp := send(http.MethodPost, "/v1/stores/abc123/orders/250:process", `not json`); resp.status != http.StatusBadRequest ||
		!strings.Contains(resp.body, "request body is not valid JSON") {
		t.Errorf("not JSON: status %d, body %s; want 400 saying so", resp.status, resp.body)
	}
	// The same order, written any way protojson reads, or no order at all.
	for _, body := range []string{`{"order_id":250}`, `{"order_id":2.5e2}`, `{"orderId":"250"}`, `{"order_id":null,"store_hash":null}`, `{"store_hash":"abc123"}`} {
		fake.reset(nil)
		if resp := send(http.MethodPost, "/v1/stores/abc123/orders/0250:process", body); resp.status != http.StatusOK {
			t.Errorf("ProcessOrder %s: status %d, body %s; want 200", body, resp.status, resp.body)
		}
	}
	fake.reset(nil)
	if resp := send(http.MethodPost, "/v1/stores/abc123/orders/250:process", `{"validate_only":true,"order_id":"250","store_hash":"abc123"}`); resp.status != http.StatusOK {
		t.Fatalf("ProcessOrder validate_only: status %d, body %s", resp.status, resp.body)
	}
	if resp := send(http.MethodGet, "/v1/orders?state=ORDER_STATE_NEEDS_REVIEW&pageSize=5&pending=true", ""); resp.status != http.StatusOK {
		t.Fatalf("ListOrders: status %d, body %s", resp.status, resp.body)
	}
	calls := fake.recorded()
	if len(calls) != 2 {
		t.Fatalf("calls = %v, want ProcessOrder and ListOrders", calls)
	}
	if p, ok := calls[0].req.(*backorderv1.ProcessOrderRequest); !ok || !p.GetValidateOnly() {
		t.Errorf("ProcessOrder request = %v, want validate_only", calls[0].req)
	}
	if l, ok := calls[1].req.(*backorderv1.ListOrdersRequest); !ok ||
		l.GetState() != backorderv1.OrderState_ORDER_STATE_NEEDS_REVIEW || l.GetPageSize() != 5 || !l.GetPending() {
		t.Errorf("ListOrders request = %v, want state, page size (by its JSON name) and pending", calls[1].req)
	}
}

// A state filter may name the state as design.md and the README's tables
// do, or by its protobuf name or number; a name that is no state is 400.
func TestListOrdersStateNames(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	list := func(q string) response {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/orders?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		return do(t, req)
	}
	for _, q := range []string{"state=WRITTEN_BACK", "state=written_back", "state=ORDER_STATE_WRITTEN_BACK", "state=5"} {
		fake.reset(nil)
		if resp := list(q); resp.status != http.StatusOK {
			t.Errorf("%s: status %d, body %s; want 200", q, resp.status, resp.body)
			continue
		}
		if calls := fake.recorded(); len(calls) != 1 || calls[0].req.(*backorderv1.ListOrdersRequest).GetState() != backorderv1.OrderState_ORDER_STATE_WRITTEN_BACK {
			t.Errorf("%s: calls %v; want one ListOrders of WRITTEN_BACK", q, calls)
		}
	}
	for _, bad := range []string{"SHIPPED", "unspecified"} {
		if resp := list("state=" + bad); resp.status != http.StatusBadRequest || !strings.Contains(resp.body, bad) {
			t.Errorf("state=%s: status %d, body %s; want 400 naming it", bad, resp.status, resp.body)
		}
	}
}

// An operator is told why a call failed; BigCommerce, on the open webhook
// route, only that it should try again.
func TestOperatorErrorsSayWhy(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	const why = "reading the order from BigCommerce: HTTP 401: bigcommerce refused the access token"
	fake.reset(status.Error(codes.Internal, why))

	req, _ := http.NewRequest(http.MethodPost, url+"/v1/stores/abc123/orders/250:process", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp := do(t, req)
	if resp.status != http.StatusServiceUnavailable || !strings.Contains(resp.body, "refused the access token") {
		t.Errorf("operator route: status %d, body %s; want 503 with the cause", resp.status, resp.body)
	}

	resp = do(t, (&delivery{body: orderBody}).request(t, url))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || strings.Contains(resp.body, "access token") {
		t.Errorf("webhook route: status %d, body %s; want 503 with Retry-After and no internals", resp.status, resp.body)
	}
}

// deliverUntil sends deliveries, one at a time, each of which must be
// answered 200, until done says so, within a generous bound rather than a
// guess at how fast connections come up; it returns how many it sent.
func deliverUntil(t *testing.T, url, what string, done func() bool) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	sent := 0
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("after %d deliveries: %s never happened", sent, what)
		}
		d := delivery{body: orderBody}
		if resp := do(t, d.request(t, url)); resp.status != 200 {
			t.Fatalf("delivery %d: status %d, body %s; want 200", sent, resp.status, resp.body)
		}
		sent++
	}
	return sent
}

// deliverN sends n deliveries, one at a time, each of which must be
// answered 200.
func deliverN(t *testing.T, url string, n int) {
	t.Helper()
	for i := range n {
		d := delivery{body: orderBody}
		if resp := do(t, d.request(t, url)); resp.status != 200 {
			t.Fatalf("delivery %d: status %d, body %s; want 200", i, resp.status, resp.body)
		}
	}
}

func TestRoundRobin(t *testing.T) {
	a, b := startFake(t, "replica-a"), startFake(t, "replica-b")
	url, _ := startGateway(t, testConfig(a.addr, b.addr))

	// Balancing starts once both connections are up; keep delivering until
	// both replicas have been used.
	sent := deliverUntil(t, url, "a call to each replica", func() bool { return len(a.recorded()) > 0 && len(b.recorded()) > 0 })
	if got := len(a.recorded()) + len(b.recorded()); got != sent {
		t.Errorf("replicas received %d calls for %d deliveries", got, sent)
	}
}

// A replica that freezes (its connection and health stay up, nothing is
// answered) costs the delivery that finds it one try of AttemptTimeout,
// after which the delivery is recorded by another replica; the deliveries
// after it are not sent to the frozen one at all. Before, every other
// delivery hung for FULFILLMENT_TIMEOUT and was answered 503.
func TestFrozenReplicaIsPassedOver(t *testing.T) {
	a, b := startFake(t, "replica-a"), startFake(t, "replica-b")
	// AttemptTimeout stays at its default (1 s): a shorter one could also
	// pass over a healthy replica that a loaded machine made slow.
	url, logs := startGateway(t, testConfig(a.addr, b.addr))
	deliverUntil(t, url, "a call to each replica", func() bool { return len(a.recorded()) > 0 && len(b.recorded()) > 0 })
	a.reset(nil)
	b.reset(nil)
	thaw := b.freeze()
	defer thaw()

	const n = 20
	start := time.Now()
	deliverN(t, url, n)
	elapsed := time.Since(start)
	if got := len(a.recorded()); got != n {
		t.Errorf("replica a recorded %d of the %d deliveries, want all", got, n)
	}
	// One try finds b frozen; after that b gets one trial call per
	// stallCooldown (5 s) at most.
	if got, most := len(b.recorded()), 2+int(elapsed/(5*time.Second)); got < 1 || got > most {
		t.Errorf("frozen replica b got %d tries in %s, want 1 to %d", got, elapsed.Round(time.Millisecond), most)
	}
	// An operator sees it: a warning naming the replica, and a counter.
	if l := logs.String(); !strings.Contains(l, "did not answer a delivery in time") || !strings.Contains(l, b.addr) {
		t.Errorf("no warning naming the frozen replica %s in the log", b.addr)
	}
	req, _ := http.NewRequest(http.MethodGet, url+gateway.MetricsPath, nil)
	if r := do(t, req); !regexp.MustCompile(`(?m)^backorder_gateway_fulfillment_tries_timed_out_total [1-9]`).MatchString(r.body) {
		t.Errorf("metrics do not count the timed-out try:\n%s", r.body)
	}
}

// When every replica is slow (etcd is), a delivery whose first try runs
// out of time is still answered 200 by its second, which has the rest of
// FULFILLMENT_TIMEOUT.
func TestSlowReplicasStillAnswer(t *testing.T) {
	a, b := startFake(t, "replica-a"), startFake(t, "replica-b")
	cfg := testConfig(a.addr, b.addr)
	cfg.AttemptTimeout = 100 * time.Millisecond
	url, _ := startGateway(t, cfg)
	for _, f := range []*fakeFulfillment{a, b} {
		f.mu.Lock()
		f.delay = 300 * time.Millisecond
		f.mu.Unlock()
	}
	deliverN(t, url, 6)
	// Each delivery was tried at most twice.
	if got := len(a.recorded()) + len(b.recorded()); got > 12 {
		t.Errorf("%d tries for 6 deliveries, want at most 12", got)
	}
}

// With three replicas and one frozen, the other two share the deliveries
// evenly (the frozen one's share is not all handed to its neighbour).
func TestFrozenReplicaShareIsSpread(t *testing.T) {
	a, b, c := startFake(t, "replica-a"), startFake(t, "replica-b"), startFake(t, "replica-c")
	url, _ := startGateway(t, testConfig(a.addr, b.addr, c.addr))
	deliverUntil(t, url, "a call to each replica", func() bool {
		return len(a.recorded()) > 0 && len(b.recorded()) > 0 && len(c.recorded()) > 0
	})
	b.reset(nil)
	thaw := b.freeze()
	defer thaw()
	// Until a delivery has found b frozen (and b is passed over).
	deliverUntil(t, url, "a delivery to b", func() bool { return len(b.recorded()) > 0 })
	a.reset(nil)
	c.reset(nil)
	const n = 40
	deliverN(t, url, n)
	// A trial of b may take one delivery every 5 s; each is then retried.
	ga, gc := len(a.recorded()), len(c.recorded())
	if ga+gc != n || ga < n/4 || gc < n/4 {
		t.Errorf("with b frozen, a got %d and c got %d of %d deliveries; want them shared", ga, gc, n)
	}
}

// A replica that reports NOT_SERVING (draining, or cut off from etcd) gets
// no deliveries while another serves: the balancer honours client-side
// health checks.
func TestNotServingReplicaIsSkipped(t *testing.T) {
	a, b := startFake(t, "replica-a"), startFake(t, "replica-b")
	url, _ := startGateway(t, testConfig(a.addr, b.addr))
	deliverUntil(t, url, "a call to each replica", func() bool { return len(a.recorded()) > 0 && len(b.recorded()) > 0 })
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// The status reaches the gateway by a health stream: deliver until
	// ten in a row went to a.
	deliverUntil(t, url, "ten deliveries in a row to a", func() bool {
		if len(b.recorded()) > 0 {
			a.reset(nil)
			b.reset(nil)
		}
		return len(a.recorded()) >= 10
	})
	b.reset(nil)
	deliverN(t, url, 20)
	if got := len(b.recorded()); got != 0 {
		t.Errorf("NOT_SERVING replica b got %d of 20 deliveries", got)
	}
}

func TestReadyz(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	get := func(path string) response {
		req, err := http.NewRequest(http.MethodGet, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return do(t, req)
	}

	if resp := get("/healthz"); resp.status != 200 {
		t.Errorf("/healthz = %d", resp.status)
	}
	resp := get("/readyz")
	if resp.status != 200 {
		t.Fatalf("/readyz = %d, body %s", resp.status, resp.body)
	}
	var ready map[string]any
	if err := json.Unmarshal([]byte(resp.body), &ready); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	if ready["status"] != "ready" || ready["supplier_mode"] != "SUPPLIER_MODE_VALIDATE" || ready["replica"] != "replica-1" {
		t.Errorf("/readyz body = %s", resp.body)
	}

	// NOT_SERVING reaches the gateway through a health watch, asynchronously:
	// poll until it shows.
	fake.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "/readyz to answer 503 when NOT_SERVING", func() bool { return get("/readyz").status == 503 })
	fake.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "/readyz to recover", func() bool { return get("/readyz").status == 200 })

	fake.stop()
	waitFor(t, "/readyz to answer 503 when fulfillment is down", func() bool { return get("/readyz").status == 503 })
	if resp := get("/healthz"); resp.status != 200 {
		t.Errorf("/healthz = %d with fulfillment down, want 200", resp.status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPStatus(t *testing.T) {
	want := map[codes.Code]int{
		codes.OK:                 200,
		codes.AlreadyExists:      200,
		codes.InvalidArgument:    400,
		codes.OutOfRange:         400,
		codes.Unauthenticated:    401,
		codes.PermissionDenied:   403,
		codes.NotFound:           404,
		codes.FailedPrecondition: 409,
		codes.Unimplemented:      501,
		codes.Unavailable:        503,
		codes.ResourceExhausted:  503,
		codes.Aborted:            503,
		codes.DeadlineExceeded:   503,
		codes.Canceled:           503,
		codes.Internal:           503,
		codes.Unknown:            503,
		codes.DataLoss:           500,
	}
	for c, w := range want {
		if got := gateway.HTTPStatus(c); got != w {
			t.Errorf("HTTPStatus(%s) = %d, want %d", c, got, w)
		}
	}
}

// /metrics counts every request by route and status, and is served
// without a token, like health (design.md).
func TestMetrics(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	for _, d := range []delivery{{body: orderBody}, {body: orderBody}, {body: orderBody, signKey: "not-the-secret"}} {
		do(t, d.request(t, url))
	}
	get := func(token string) response {
		req, _ := http.NewRequest(http.MethodGet, url+gateway.MetricsPath, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return do(t, req)
	}
	if r := get(""); r.status != http.StatusOK {
		t.Errorf("metrics without a token: %d, want 200", r.status)
	}
	r := get("")
	if r.status != http.StatusOK {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	for _, l := range []string{
		`backorder_gateway_http_requests_total{code="200",route="webhook"} 2`,
		`backorder_gateway_http_requests_total{code="401",route="webhook"} 1`,
		`backorder_gateway_http_requests_total{code="200",route="metrics"} 1`,
		`backorder_gateway_http_request_duration_seconds_count{route="webhook"} 3`,
	} {
		if !strings.Contains(r.body, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

// The OpenAPI document is served without the operator token, and describes
// the routes the gateway really serves.
func TestOpenAPIDocument(t *testing.T) {
	fake := startFake(t, "replica-1")
	url, _ := startGateway(t, testConfig(fake.addr))
	req, err := http.NewRequest(http.MethodGet, url+"/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, req)
	if resp.status != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d %s", resp.status, resp.body)
	}
	type response struct {
		Schema struct {
			Ref string `json:"$ref"`
		} `json:"schema"`
	}
	var doc struct {
		Swagger  string                `json:"swagger"`
		Security []map[string][]string `json:"security"`
		Paths    map[string]map[string]struct {
			Security  *[]any              `json:"security"`
			Responses map[string]response `json:"responses"`
		} `json:"paths"`
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal([]byte(resp.body), &doc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, p := range []string{"/v1/webhooks/bigcommerce", "/v1/orders", "/v1/status", "/v1/stores/{store_hash}/orders:sweep"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("the document lacks %s (has %d paths)", p, len(doc.Paths))
		}
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q", doc.Swagger)
	}
	// The operator routes need the bearer token; the webhook route does not.
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("top-level security = %v, want the bearer token", doc.Security)
	}
	if s := doc.Paths["/v1/webhooks/bigcommerce"]["post"].Security; s == nil || len(*s) != 0 {
		t.Errorf("webhook route security = %v, want none ([])", s)
	}
	// Fields are named as the gateway writes them (proto names).
	if _, ok := doc.Defs["v1Order"].Properties["offline_order_id"]; !ok {
		t.Errorf("v1Order properties %v lack offline_order_id", doc.Defs["v1Order"].Properties)
	}
	// Errors are described as the gateway writes them, on every operation.
	props := doc.Defs["v1ErrorResponse"].Properties
	if _, ok := props["error"]; !ok || len(props) != 2 {
		t.Errorf("v1ErrorResponse properties %v, want error and code", props)
	}
	if _, ok := props["code"]; !ok {
		t.Errorf("v1ErrorResponse properties %v lack code", props)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, code := range []string{"400", "401", "503", "default"} {
				if ref := op.Responses[code].Schema.Ref; ref != "#/definitions/v1ErrorResponse" {
					t.Errorf("%s %s: response %s is %q, want v1ErrorResponse", method, path, code, ref)
				}
			}
		}
	}
}
