package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/sandbox/stack"
)

// demoArgs returns the demo's flags with every address on a free port.
func demoArgs(t *testing.T, extra ...string) (args []string, gateway, bigcommerce string) {
	t.Helper()
	addr := func() string {
		a, err := stack.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	gateway, bigcommerce = addr(), addr()
	args = append([]string{
		"-gateway-addr", gateway, "-fulfillment-addr", addr(), "-bigcommerce-addr", bigcommerce,
		"-tropship-addr", addr(), "-etcd-url", "http://" + addr(), "-metrics-addr", addr(),
	}, extra...)
	return args, gateway, bigcommerce
}

// The README's first command: the demo builds and starts everything, sends
// one backorder's webhooks five times each in parallel, and fails unless the
// supplier's ledger holds exactly one order for it and its id is written
// back to BigCommerce. Here on free ports, stopping after its check.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args, _, _ := demoArgs(t, "-exit")
	if err := runDemo(ctx, args); err != nil {
		t.Fatalf("demo %v: %v", args, err)
	}
}

// The README's walk-through after the check: an order added to the
// BigCommerce simulator awaiting payment is announced and left INELIGIBLE;
// once its payment arrives (status 11) it is announced again and sent.
func TestDemoAnnouncesSimulatorChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args, gateway, bc := demoArgs(t)
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runDemoWith(ctx, args, func() { close(running) }) }()
	stopped := false
	t.Cleanup(func() {
		// Whatever failed, the demo's services stop with the test.
		cancel()
		if !stopped {
			<-done
		}
	})
	select {
	case <-running:
	case err := <-done:
		stopped = true
		t.Fatalf("demo ended before running: %v", err)
	}
	post := func(url, body string) {
		t.Helper()
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: HTTP %d", url, resp.StatusCode)
		}
	}
	state := func() (string, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gateway+"/v1/stores/demo1/orders/251", nil)
		req.Header.Set("Authorization", "Bearer "+demoAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err.Error()
		}
		defer resp.Body.Close()
		var out struct {
			Order struct {
				State            string `json:"state"`
				IneligibleReason string `json:"ineligible_reason"`
			} `json:"order"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out.Order.State, out.Order.IneligibleReason
	}
	waitState := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			st, reason := state()
			if st == want {
				return reason
			}
			if time.Now().After(deadline) {
				t.Fatalf("order 251 is %q (%s), want %s", st, reason, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	post("http://"+bc+"/_sim/orders", `{"id":251,"status_id":7,"products":[{"sku":"APP449","quantity":2}],
		"shipping_addresses":[{"first_name":"Jo","last_name":"Bloggs","street_1":"1 High St","city":"Leeds",
		"zip":"LS1 1AA","country":"United Kingdom","country_iso2":"GB"}]}`)
	if reason := waitState("ORDER_STATE_INELIGIBLE"); !strings.Contains(reason, "status 7") {
		t.Fatalf("ineligible reason %q, want status 7", reason)
	}
	post("http://"+bc+"/_sim/orders/251/status", `{"status_id":11}`)
	if reason := waitState("ORDER_STATE_WRITTEN_BACK"); reason != "" {
		t.Fatalf("sent order still says it is ineligible: %q", reason)
	}
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatalf("demo stopped with %v", err)
	}
}
