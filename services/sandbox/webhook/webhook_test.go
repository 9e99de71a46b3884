package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/backorder/backorder/services/sandbox/webhook"
)

const secret = "app-client-secret"

// delivery is what the receiver saw.
type delivery struct {
	header http.Header
	body   []byte
	err    error // verification result
}

// receiver verifies every delivery with the Standard Webhooks library, the
// way BigCommerce tells integrators to.
type receiver struct {
	mu         sync.Mutex
	deliveries []delivery
	status     int
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	rc := &receiver{status: http.StatusNoContent}
	wh, err := standardwebhooks.NewWebhookRaw([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		verr := wh.Verify(body, r.Header)
		rc.mu.Lock()
		rc.deliveries = append(rc.deliveries, delivery{header: r.Header.Clone(), body: body, err: verr})
		status := rc.status
		rc.mu.Unlock()
		if verr != nil {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) all() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.deliveries...)
}

func TestEnvelopeShape(t *testing.T) {
	ev := webhook.StatusUpdated("abc123", "1025646", 250, 7, 11)
	var got map[string]any
	if err := json.Unmarshal(ev.Body(), &got); err != nil {
		t.Fatal(err)
	}
	if got["scope"] != "store/order/statusUpdated" || got["store_id"] != "1025646" || got["producer"] != "stores/abc123" {
		t.Errorf("envelope %v", got)
	}
	if _, ok := got["created_at"].(float64); !ok {
		t.Errorf("created_at %v", got["created_at"])
	}
	if h, _ := got["hash"].(string); len(h) != 40 {
		t.Errorf("hash %q is not hex SHA-1", h)
	}
	data := got["data"].(map[string]any)
	status := data["status"].(map[string]any)
	if data["type"] != "order" || data["id"] != 250.0 || status["previous_status_id"] != 7.0 || status["new_status_id"] != 11.0 {
		t.Errorf("data %v", data)
	}

	created := webhook.Created("abc123", "1025646", 250)
	created.CreatedAt = 0
	var c map[string]any
	_ = json.Unmarshal(created.Body(), &c)
	if _, ok := c["created_at"]; ok {
		t.Error("created_at present when zero")
	}
	if _, ok := c["data"].(map[string]any)["status"]; ok {
		t.Error("status present on a created event")
	}
}

func TestHashSameForRetriesDifferentForEvents(t *testing.T) {
	a := webhook.Updated("abc123", "1", 250)
	b := webhook.Updated("abc123", "1", 250) // another update of the same order
	if a.Hash() != a.Hash() || string(a.Body()) != string(a.Body()) {
		t.Error("one event hashes differently")
	}
	if a.Hash() == b.Hash() || a.ID == b.ID {
		t.Error("two events share a hash or id")
	}
}

func TestSignedDeliveryVerifiesAndRetriesReuseID(t *testing.T) {
	rc, srv := newReceiver(t)
	now := time.Now()
	s := &webhook.Sender{URL: srv.URL, ClientSecret: secret, Headers: map[string]string{"X-Hook-Secret": "shared"},
		Now: func() time.Time { return now }}
	ev := webhook.Created("abc123", "1025646", 250)

	for range 2 {
		status, err := s.Send(context.Background(), ev)
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("Send: %d %v", status, err)
		}
		now = now.Add(61 * time.Second) // BigCommerce's first retry comes after 60 s
	}
	d := rc.all()
	for i, x := range d {
		if x.err != nil {
			t.Errorf("delivery %d does not verify: %v", i, x.err)
		}
		if x.header.Get("X-Hook-Secret") != "shared" || x.header.Get("Content-Type") != "application/json" {
			t.Errorf("delivery %d headers %v", i, x.header)
		}
	}
	if d[0].header.Get("webhook-id") != ev.ID || d[1].header.Get("webhook-id") != ev.ID || string(d[0].body) != string(d[1].body) {
		t.Error("a retry changed the id or the body")
	}
	t0, _ := strconv.ParseInt(d[0].header.Get("webhook-timestamp"), 10, 64)
	t1, _ := strconv.ParseInt(d[1].header.Get("webhook-timestamp"), 10, 64)
	if t1-t0 != 61 || d[0].header.Get("webhook-signature") == d[1].header.Get("webhook-signature") {
		t.Errorf("retry not re-signed: timestamps %d %d", t0, t1)
	}
}

func TestBadDeliveriesFailVerification(t *testing.T) {
	rc, srv := newReceiver(t)
	s := &webhook.Sender{URL: srv.URL, ClientSecret: secret}
	ev := webhook.Created("abc123", "1", 250)
	cases := []struct {
		name string
		opt  webhook.Option
		want error
	}{
		{"forged", webhook.Forged(), standardwebhooks.ErrNoMatchingSignature},
		{"signed with another secret", webhook.SignedWith("other"), standardwebhooks.ErrNoMatchingSignature},
		{"tampered", webhook.Tampered(), standardwebhooks.ErrNoMatchingSignature},
		{"stale", webhook.Stale(10 * time.Minute), standardwebhooks.ErrMessageTooOld},
		{"from the future", webhook.SignedAt(time.Now().Add(10 * time.Minute)), standardwebhooks.ErrMessageTooNew},
		{"unsigned", webhook.Unsigned(), standardwebhooks.ErrRequiredHeaders},
	}
	for i, c := range cases {
		status, err := s.Send(context.Background(), ev, c.opt)
		if err != nil || status != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", c.name, status, err)
			continue
		}
		if got := rc.all()[i].err; !errors.Is(got, c.want) {
			t.Errorf("%s: verification error %v, want %v", c.name, got, c.want)
		}
	}
	var tampered webhook.Envelope
	_ = json.Unmarshal(rc.all()[2].body, &tampered)
	if tampered.Data.ID != 251 {
		t.Errorf("tampered body has order %d", tampered.Data.ID)
	}
	// Without a client secret nothing is signed.
	status, _ := (&webhook.Sender{URL: srv.URL}).Send(context.Background(), ev)
	if status != http.StatusUnauthorized || rc.all()[len(cases)].header.Get("webhook-signature") != "" {
		t.Error("a sender without a secret signed")
	}
}

func TestCustomHeaderOptions(t *testing.T) {
	rc, srv := newReceiver(t)
	s := &webhook.Sender{URL: srv.URL, ClientSecret: secret, Headers: map[string]string{"X-Hook-Secret": "shared"}}
	ev := webhook.Created("abc123", "1", 250)
	_, _ = s.Send(context.Background(), ev, webhook.WithoutHeaders())
	_, _ = s.Send(context.Background(), ev, webhook.Header("X-Hook-Secret", "wrong"))
	d := rc.all()
	if _, ok := d[0].header["X-Hook-Secret"]; ok {
		t.Error("WithoutHeaders sent the custom header")
	}
	if d[1].header.Get("X-Hook-Secret") != "wrong" {
		t.Errorf("Header override: %q", d[1].header.Get("X-Hook-Secret"))
	}
}

func TestRequestForInProcessHandlers(t *testing.T) {
	s := &webhook.Sender{URL: "http://gateway.test/v1/webhooks/bigcommerce", ClientSecret: secret}
	ev := webhook.Archived("abc123", "1", 250)
	req, err := s.Request(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhookRaw([]byte(secret))
	body, _ := io.ReadAll(req.Body)
	if err := wh.Verify(body, req.Header); err != nil || req.Method != http.MethodPost || req.URL.Path != "/v1/webhooks/bigcommerce" {
		t.Errorf("request %s %s: %v", req.Method, req.URL, err)
	}
}

func TestSendParallel(t *testing.T) {
	rc, srv := newReceiver(t)
	s := &webhook.Sender{URL: srv.URL, ClientSecret: secret}
	ev := webhook.StatusUpdated("abc123", "1", 250, 7, 11)
	events := make([]webhook.Event, 30)
	for i := range events {
		events[i] = ev // 30 racing duplicates of one event
	}
	results := s.SendParallel(context.Background(), events, 8)
	for i, r := range results {
		if r.Err != nil || r.Status != http.StatusNoContent {
			t.Errorf("delivery %d: %+v", i, r)
		}
	}
	ids := map[string]int{}
	for _, d := range rc.all() {
		if d.err != nil {
			t.Errorf("verification: %v", d.err)
		}
		ids[d.header.Get("webhook-id")]++
	}
	if len(ids) != 1 || ids[ev.ID] != 30 {
		t.Errorf("webhook-ids %v", ids)
	}

	// A receiver that is down gives errors, not statuses.
	srv.Close()
	for _, r := range s.SendParallel(context.Background(), events[:3], 2) {
		if r.Err == nil || r.Status != 0 {
			t.Errorf("to a closed server: %+v", r)
		}
	}
}
