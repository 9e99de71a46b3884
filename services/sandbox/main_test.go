package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); !errors.Is(err, errUsage) {
			t.Errorf("%v: err %v, want errUsage", args, err)
		}
		for _, name := range []string{"serve", "send", "demo"} {
			if !strings.Contains(out.String(), name) {
				t.Errorf("%v: usage does not list %s:\n%s", args, name, out.String())
			}
		}
	}
}

// hookReceiver records verified webhook deliveries.
type hookReceiver struct {
	mu   sync.Mutex
	seen []http.Header
	body [][]byte
	errs []error
}

func newHookReceiver(t *testing.T, secret string) (*hookReceiver, *httptest.Server) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhookRaw([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	rc := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		err := wh.Verify(b, r.Header)
		rc.mu.Lock()
		rc.seen, rc.body, rc.errs = append(rc.seen, r.Header.Clone()), append(rc.body, b), append(rc.errs, err)
		rc.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *hookReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen)
}

func TestSendCommand(t *testing.T) {
	rc, srv := newHookReceiver(t, "s3cret")
	err := runSend(context.Background(), []string{"-url", srv.URL, "-secret", "s3cret", "-header", "X-Hook-Secret: abc",
		"-store", "abc123", "-order", "250", "-scope", "statusUpdated", "-prev-status", "7", "-status", "11", "-times", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.count() != 5 {
		t.Fatalf("%d deliveries, want 5", rc.count())
	}
	for i, h := range rc.seen {
		if rc.errs[i] != nil || h.Get("webhook-id") != rc.seen[0].Get("webhook-id") || h.Get("X-Hook-Secret") != "abc" {
			t.Errorf("delivery %d: %v %v", i, rc.errs[i], h)
		}
	}
	var env struct {
		Scope string `json:"scope"`
		Data  struct {
			ID     uint64 `json:"id"`
			Status struct {
				Prev uint32 `json:"previous_status_id"`
				New  uint32 `json:"new_status_id"`
			} `json:"status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rc.body[0], &env); err != nil || env.Scope != "store/order/statusUpdated" ||
		env.Data.ID != 250 || env.Data.Status.Prev != 7 || env.Data.Status.New != 11 {
		t.Errorf("body %s (%v)", rc.body[0], err)
	}

	if err := runSend(context.Background(), []string{"-url", srv.URL, "-secret", "s3cret", "-order", "250", "-bad", "forged"}); err == nil {
		t.Error("a forged delivery was accepted")
	}
	if err := runSend(context.Background(), []string{"-url", srv.URL}); err == nil {
		t.Error("no -order: no error")
	}
}

// TestServe runs both simulators on free ports, checks each answers, that
// order changes become signed webhooks, and that cancelling stops them.
func TestServe(t *testing.T) {
	rc, hooks := newHookReceiver(t, "bc-secret")
	cfg, err := parseServe([]string{"-bigcommerce-addr", "127.0.0.1:0", "-tropship-addr", "127.0.0.1:0",
		"-store", "abc123", "-token", "tok", "-tropship-client-id", "id", "-tropship-client-secret", "sec",
		"-seed", "3", "-quiet", "-webhook-url", hooks.URL, "-webhook-secret", "bc-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), func(bc, ts string) { urls <- [2]string{bc, ts} })
	}()
	u := <-urls

	req, _ := http.NewRequest("GET", u[0]+"/stores/abc123/v2/orders?status_id=11", nil)
	req.Header.Set("X-Auth-Token", "tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var orders []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&orders)
	resp.Body.Close()
	if len(orders) != 3 || orders[0]["id"] != 100.0 {
		t.Errorf("seeded orders: %v", orders)
	}

	resp, err = http.PostForm(u[1]+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"id"}, "client_secret": {"sec"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("tropship token: %d", resp.StatusCode)
	}

	// A status change by hand becomes statusUpdated + updated webhooks.
	resp, err = http.Post(u[0]+"/_sim/orders/101/status", "application/json", strings.NewReader(`{"status_id": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for rc.count() < 5 { // 3 created, 1 statusUpdated, 1 updated
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		waitABit()
	}
	rc.mu.Lock()
	for i, err := range rc.errs {
		if err != nil {
			t.Errorf("webhook %d does not verify: %v", i, err)
		}
	}
	if !strings.Contains(string(rc.body[3]), `"scope":"store/order/statusUpdated"`) {
		t.Errorf("4th webhook %s", rc.body[3])
	}
	rc.mu.Unlock()

	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v", err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	_, err := parseServe([]string{"-store", "", "-webhook-url", "http://x"})
	if err == nil || !strings.Contains(err.Error(), "BIGCOMMERCE_STORE_HASH") || !strings.Contains(err.Error(), "webhook-secret") {
		t.Errorf("err %v", err)
	}
	t.Setenv("SANDBOX_SEED_ORDERS", "many")
	if _, err := parseServe(nil); err == nil || !strings.Contains(err.Error(), "SANDBOX_SEED_ORDERS") {
		t.Errorf("bad env: err %v", err)
	}
}

// waitABit yields while polling for something another goroutine does; the
// test's -timeout, not a guess of machine speed, bounds the wait.
func waitABit() { time.Sleep(time.Millisecond) }
