package fulfill

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
)

// A worker skips an order this replica held back, with no etcd request,
// until its time comes or the breaker closes; a person's ProcessOrder is
// not affected (it does not ask). Orders whose time passed are forgotten.
func TestWorkersSkipHeldOrders(t *testing.T) {
	clock := testclock.New(time.Now())
	s := New(Config{Store: "abc", Breaker: 1, Now: clock.Now}, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k := order.Key{Store: "abc", ID: 1}
	if s.stillHeld(k) {
		t.Fatal("an order never held is skipped")
	}
	s.breaker.Record(order.Result{Outcome: order.Ambiguous}, false) // opens
	until := clock.Now().Add(BreakerCooldown)
	s.noteHeld(k, until)
	if !s.stillHeld(k) {
		t.Fatal("a held order is not skipped before its time")
	}
	clock.Advance(BreakerCooldown)
	if s.stillHeld(k) {
		t.Fatal("a held order is skipped once its time came")
	}
	if _, ok := s.held[k]; ok {
		t.Fatal("a held order whose time came is still remembered")
	}

	// The breaker closes (a probe answered clearly): no more skipping.
	s.noteHeld(k, clock.Now().Add(time.Minute))
	s.breaker.Record(order.Result{Outcome: order.Created}, false)
	if s.stillHeld(k) {
		t.Fatal("a held order is skipped after the breaker closed")
	}

	// Many orders held whose time passed (run by another replica, never
	// asked about again) are forgotten.
	for id := range uint64(heldSweepAt) {
		s.noteHeld(order.Key{Store: "abc", ID: 100 + id}, clock.Now())
	}
	s.noteHeld(k, clock.Now().Add(time.Minute))
	if len(s.held) != 1 {
		t.Fatalf("%d orders remembered, want 1", len(s.held))
	}
}
