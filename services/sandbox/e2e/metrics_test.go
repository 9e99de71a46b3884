package e2e_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// The fulfillment service's /metrics (METRICS_ADDR) tells an operator what
// happened: deliveries by result, supplier calls by outcome, BigCommerce
// requests, and the orders in each state, read from etcd.
func TestFulfillmentMetrics(t *testing.T) {
	e := newBareEnv(t, options{mode: "live"}, nil)
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	e.startReplicaWith("live", bins.Fulfillment, map[string]string{"METRICS_ADDR": addr})
	e.startGateway()
	const id = 6060
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	ev := webhook.Created(storeHash, storeID, id)
	e.sendAll([]webhook.Event{ev, ev, ev}, 1)
	e.waitState(id, writtenBack)

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range []string{
		`backorder_webhook_deliveries_total{result="recorded"} 1`,
		`backorder_webhook_deliveries_total{result="duplicate"} 2`,
		`backorder_supplier_submissions_total{mode="live",outcome="created"} 1`,
		`backorder_bigcommerce_requests_total 3`, // the order with its lines, the metafield, the write-back
		`backorder_bigcommerce_side_loaded_total 1`,
		`backorder_bigcommerce_read_apart_total 0`,
		`backorder_write_backs_total{result="written"} 1`,
		`backorder_store_up 1`,
		`backorder_orders{state="WRITTEN_BACK"} 1`,
		`backorder_orders{state="NEEDS_REVIEW"} 0`,
		`backorder_orders_queued 0`,
	} {
		if !strings.Contains(string(b), "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}
