package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// sweepState is what the fulfillment service stores of its Orders API sweep.
type sweepState struct {
	Cursor  time.Time `json:"cursor"`
	LastRun time.Time `json:"last_run"`
}

// waitSweeps waits until the store's Orders API sweep has run n more times
// after the state it first reads (n=0: until it has run at all).
func (e *env) waitSweeps(n int) sweepState {
	e.t.Helper()
	cli := etcdtest.Client(e.t, e.etcd)
	read := func() (sweepState, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, e.prefix+"sweeps/"+storeHash+"/state")
		if err != nil || len(r.Kvs) == 0 {
			return sweepState{}, false
		}
		var st sweepState
		return st, json.Unmarshal(r.Kvs[0].Value, &st) == nil
	}
	deadline := time.Now().Add(2 * time.Minute)
	var last sweepState
	seen := -1
	for time.Now().Before(deadline) {
		if st, ok := read(); ok && (seen < 0 || !st.LastRun.Equal(last.LastRun)) {
			last, seen = st, seen+1
			if seen >= n {
				return st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("the orders sweep ran %d of %d times\n%s", max(seen, 0), n, e.logs())
	return sweepState{}
}

// An order whose webhooks never arrive (a deactivated hook, a blocklisted
// domain) is found by the Orders API sweep and reaches the supplier once,
// with two replicas sweeping, against the BigCommerce simulator.
func TestOrdersSweepFindsAnOrderWithoutWebhooks(t *testing.T) {
	e := newEnv(t, options{replicas: 2, mode: "live", env: map[string]string{"ORDERS_SWEEP_INTERVAL": "1s"}})
	e.waitSweeps(0) // the first sweep only sets the cursor
	const id = 4242
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
	// No webhook is sent.
	o := e.waitState(id, writtenBack)
	e.waitSweeps(2) // later sweeps list the same change again
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	if ev := r.GetOrder().GetEvents(); len(ev) != 1 || ev[0].GetScope() != "orders-api/sweep" {
		t.Errorf("events %v, want the one change found by the sweep", ev)
	}
	st, err := e.client.GetServiceStatus(ctx, &backorderv1.GetServiceStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sw := st.GetOrdersSweep(); !sw.GetEnabled() || sw.GetIntervalSeconds() != 1 || sw.GetSince() == nil ||
		!sw.GetLastRun().AsTime().After(sw.GetSince().AsTime()) || sw.GetLastError() != "" {
		t.Errorf("GetServiceStatus orders_sweep = %v; want enabled, every 1 s, swept since start-up, no error", sw)
	}
	l := e.ts.Ledger()
	checkNoDuplicates(t, l)
	if len(l.Orders) != 1 || o.GetOfflineOrderId() == "" {
		t.Fatalf("supplier orders %d (id %q), want 1", len(l.Orders), o.GetOfflineOrderId())
	}
}

// An operator runs the sweep now, through the gateway's operator API, with
// the periodic sweep off: after a webhook outage, say.
func TestOperatorSweepsNow(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live", env: map[string]string{"ORDERS_SWEEP_INTERVAL": "off"}})
	sweep := func() map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+e.gateway.Addr+"/v1/stores/"+storeHash+"/orders:sweep", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("sweep: HTTP %d, %v, %v", resp.StatusCode, out, err)
		}
		return out
	}
	if out := sweep(); out["first"] != true {
		t.Fatalf("first sweep: %v; want only the cursor set", out)
	}
	const id = 4343
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	out := sweep()
	st, _ := out["status"].(map[string]any)
	if st["listed"] != "1" || st["recorded"] != "1" || st["enabled"] == true {
		t.Fatalf("second sweep: %v; want the order listed and recorded, the periodic sweep off", out)
	}
	e.waitState(id, writtenBack)
	if l := e.ts.Ledger(); len(l.Orders) != 1 {
		t.Fatalf("supplier orders %d, want 1", len(l.Orders))
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.gateway.Addr+"/v1/stores/"+storeHash+"/orders:sweep", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sweep without the token: HTTP %d, want 401", resp.StatusCode)
	}
}
