package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// Step 9 against BigCommerce's metafield API: writes that fail with a 5xx
// are retried on their own; a 403 (a token that may not write metafields)
// stops the retries and says so; ProcessOrder writes the id back once the
// cause is fixed. The supplier gets each order once throughout.
func TestWriteBackFailuresNeverResend(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live", env: map[string]string{
		"RETRY_BASE": "50ms", "RETRY_MAX": "200ms", "RETRY_MAX_ATTEMPTS": "20",
	}})
	ctx := context.Background()

	// Three failed writes, then BigCommerce answers again.
	const flaky = 8101
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(flaky, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	e.bc.SetFaults(bcsim.Faults{Count: 3, Status: http.StatusServiceUnavailable, WritesOnly: true})
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, flaky)}, 1)
	o := e.waitState(flaky, writtenBack)
	e.checkWrittenBack(o)
	if st := e.bc.Stats(); st.Faulted != 3 || st.MetafieldsPost != 4 {
		t.Errorf("BigCommerce saw %d metafield writes, %d failed; want 4 and 3", st.MetafieldsPost, st.Faulted)
	}

	// Every write refused: the order stays SUBMITTED and says why.
	const refused = 8102
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(refused, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	e.bc.SetFaults(bcsim.Faults{Rate: 1, Status: http.StatusForbidden, WritesOnly: true})
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, refused)}, 1)
	o = e.waitState(refused, backorderv1.OrderState_ORDER_STATE_SUBMITTED)
	if o.GetOfflineOrderId() == "" || o.GetWriteBackFailures() != 1 || !strings.Contains(o.GetLastError(), "403") || !strings.Contains(o.GetReviewReason(), "ProcessOrder") {
		t.Fatalf("refused write-back: %v; want SUBMITTED with the id, an error naming 403 and a review reason naming ProcessOrder", o)
	}
	if mf := e.bc.Metafields(storeHash, refused); len(mf) != 0 {
		t.Fatalf("metafields %v after refused writes", mf)
	}
	// Nothing more happens on its own, whatever BigCommerce sends.
	e.sendAll([]webhook.Event{webhook.Updated(storeHash, storeID, refused)}, 1)
	time.Sleep(500 * time.Millisecond)
	if r, err := e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: refused}); err != nil ||
		r.GetOrder().GetState() != backorderv1.OrderState_ORDER_STATE_SUBMITTED || r.GetOrder().GetPending() {
		t.Fatalf("after a further event: %v %v", r.GetOrder(), err)
	}

	// The token is fixed; the operator asks for the order to be processed.
	e.bc.SetFaults(bcsim.Faults{})
	r, err := e.client.ProcessOrder(ctx, &backorderv1.ProcessOrderRequest{StoreHash: storeHash, OrderId: refused})
	if err != nil || r.GetOrder().GetState() != writtenBack {
		t.Fatalf("ProcessOrder after the fix: %v %v", r.GetOrder(), err)
	}
	e.checkWrittenBack(r.GetOrder())
	if st, err := e.client.GetServiceStatus(ctx, &backorderv1.GetServiceStatusRequest{}); err != nil || !st.GetWriteBack() {
		t.Fatalf("GetServiceStatus: write_back %v (%v), want true", st.GetWriteBack(), err)
	}
	l := e.ts.Ledger()
	checkNoDuplicates(t, l)
	if len(l.Orders) != 2 {
		t.Fatalf("supplier has %d live orders, want 2", len(l.Orders))
	}
}

// With BIGCOMMERCE_WRITE_BACK=false an order ends SUBMITTED and nothing is
// written to BigCommerce.
func TestWriteBackOff(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live", env: map[string]string{"BIGCOMMERCE_WRITE_BACK": "false"}})
	const id = 8103
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
	o := e.waitState(id, backorderv1.OrderState_ORDER_STATE_SUBMITTED)
	if st := e.bc.Stats(); o.GetOfflineOrderId() == "" || st.MetafieldsPost+st.MetafieldsPut+st.PutOrder != 0 {
		t.Fatalf("record %v; BigCommerce writes %+v; want the id stored and no write", o, st)
	}
	st, err := e.client.GetServiceStatus(context.Background(), &backorderv1.GetServiceStatusRequest{})
	if err != nil || st.GetWriteBack() {
		t.Fatalf("GetServiceStatus: write_back %v (%v), want false", st.GetWriteBack(), err)
	}
}
