package e2e_test

import (
	"context"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// An operator can see why orders wait for BigCommerce: GetServiceStatus
// reports the store's API quota as the replica last saw it, and the
// backlog. With the quota spent, the next order waits for the reset, and
// nothing is asked of BigCommerce before it. (The Orders API sweep is off:
// it would spend the quota too.)
func TestStatusShowsTheStoresQuota(t *testing.T) {
	t.Run("spent", func(t *testing.T) {
		// 4 requests per 30 s: one order takes 3 (the order with its lines
		// and address, metafield read and write), the next one's first
		// read the last.
		e := newEnv(t, options{replicas: 1, mode: "live", bigcommerce: bcsim.Options{Quota: 4},
			env: map[string]string{"BIGCOMMERCE_QUOTA_BURST": "off", "ORDERS_SWEEP_INTERVAL": "off"}})
		const first, second = 8301, 8302
		for _, id := range []uint64{first, second} {
			e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
		}
		e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, first)}, 1)
		e.waitState(first, writtenBack)
		q := serviceStatus(t, e).GetBigcommerceQuota()
		if q.RequestsLeft == nil || q.GetRequestsLeft() != 1 || q.GetResetsAt() == nil || q.GetHeldUntil() != nil || q.SpacingMs != nil || q.GetBurst() != 0 {
			t.Fatalf("after one order: %v; want 1 left, a reset time, no hold, no spacing, burst 0 (off)", q)
		}

		e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, second)}, 1)
		var st *backorderv1.GetServiceStatusResponse
		for deadline := time.Now().Add(time.Minute); ; {
			st = serviceStatus(t, e)
			if st.GetBigcommerceQuota().GetHeldUntil() != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		q = st.GetBigcommerceQuota()
		if q.RequestsLeft == nil || q.GetRequestsLeft() != 0 || q.GetHeldUntil() == nil ||
			!q.GetHeldUntil().AsTime().Equal(q.GetResetsAt().AsTime()) {
			t.Fatalf("with the quota spent: %v; want 0 left (shown), held until the reset", q)
		}
		if st.QueuedOrders == nil || st.GetQueuedOrders() != 1 {
			t.Errorf("queued_orders = %d, want 1 (the second order, waiting)", st.GetQueuedOrders())
		}
		if s := e.bc.Stats(); s.RateLimited != 0 || s.Total != 4 {
			t.Errorf("BigCommerce answered %d requests, %d of them 429; want 4, none (the client waits for the reset)", s.Total, s.RateLimited)
		}
	})
	t.Run("spread", func(t *testing.T) {
		e := newEnv(t, options{replicas: 1, mode: "live", bigcommerce: bcsim.Options{Quota: 1000},
			env: map[string]string{"ORDERS_SWEEP_INTERVAL": "off"}})
		const id = 8303
		e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
		e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
		e.waitState(id, writtenBack)
		st := serviceStatus(t, e)
		q := st.GetBigcommerceQuota()
		if q.GetRequestsLeft() != 997 || q.GetBurst() != 10 || q.SpacingMs == nil {
			t.Fatalf("after one order: %v; want 997 left, a spacing, burst 10", q)
		}
		// The 997 are spread over what was left of the 30 s window at the
		// latest answer: at least what is left now, at most 30 s.
		spread := time.Duration(q.GetSpacingMs()*997) * time.Millisecond
		if left := time.Until(q.GetResetsAt().AsTime()); spread < left-997*time.Millisecond || spread > 30*time.Second {
			t.Errorf("spacing %d ms × 997 = %v, want from %v (to the reset, less the milliseconds cut) to 30s", q.GetSpacingMs(), spread, left)
		}
		if st.QueuedOrders == nil || st.GetQueuedOrders() != 0 {
			t.Errorf("queued_orders = %d, want 0", st.GetQueuedOrders())
		}
	})
}

func serviceStatus(t *testing.T, e *env) *backorderv1.GetServiceStatusResponse {
	t.Helper()
	st, err := e.client.GetServiceStatus(context.Background(), &backorderv1.GetServiceStatusRequest{})
	if err != nil {
		t.Fatalf("GetServiceStatus: %v", err)
	}
	return st
}
