package fulfill_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// lister is an in-memory Orders API list: the orders it holds, what it was
// asked, and a failure to return.
type lister struct {
	mu     sync.Mutex
	orders []order.Modified
	asked  []time.Time // the since of every call
	fail   error
}

func (l *lister) ModifiedOrders(_ context.Context, store string, status uint32, since time.Time) ([]order.Modified, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, since)
	if l.fail != nil {
		return nil, l.fail
	}
	var out []order.Modified
	for _, m := range l.orders {
		if m.StatusID == status && !m.DateModified.Before(since) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *lister) calls() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.asked...)
}

func (l *lister) set(f func(l *lister)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

// sweepService is a live-mode Service with an Orders API lister, its clock
// set by the test, running its workers (but no periodic orders sweep).
func sweepService(t *testing.T, ep string, sf *storefront, sup *supplier, l *lister, now *testclock.Clock) *fulfill.Service {
	t.Helper()
	st := newStore(t, ep)
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: 50 * time.Millisecond, SweepGrace: time.Millisecond, Workers: 2,
		Lister: l, Now: now.Now,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

// An order whose webhooks never came is found by the Orders API sweep and
// sent once; the same change seen again is not recorded twice, and an order
// the supplier already has is not queued again.
func TestOrdersSweepRecoversAnOrderWithoutWebhooks(t *testing.T) {
	ctx := context.Background()
	now := testclock.New(time.Now())
	sf := &storefront{status: map[uint64]uint32{21: 11, 22: 11}}
	sup := &supplier{live: map[string]int{}}
	l := &lister{}
	svc := sweepService(t, etcdtest.Start(t), sf, sup, l, now)
	h := &harness{svc: []*fulfill.Service{svc}}

	// An order modified before the first sweep is left to its webhooks,
	// even within the overlap.
	l.set(func(l *lister) {
		l.orders = []order.Modified{{ID: 22, StatusID: 11, DateModified: now.Now().Add(-time.Minute)}}
	})
	rep, err := svc.SweepOrders(ctx, 0)
	if err != nil || !rep.First || len(l.calls()) != 0 {
		t.Fatalf("first sweep: %+v, %v, %d list calls; want only the cursor set", rep, err, len(l.calls()))
	}

	now.Advance(time.Minute)
	l.set(func(l *lister) {
		l.orders = append(l.orders, order.Modified{ID: 21, StatusID: 11, DateModified: now.Now()})
	})
	rep, err = svc.SweepOrders(ctx, 0)
	if err != nil || rep.State.Listed != 1 || rep.State.Recorded != 1 {
		t.Fatalf("second sweep: %+v, %v; want order 21 listed and recorded", rep, err)
	}
	o := h.waitState(t, order.Key{Store: "abc", ID: 21}, order.Submitted)
	if len(o.Events) != 1 || o.Events[0].Scope != fulfill.ScopeOrdersSweep {
		t.Errorf("events %+v, want one sweep event", o.Events)
	}

	now.Advance(time.Minute) // the overlap lists the same change again
	rep, err = svc.SweepOrders(ctx, 0)
	if asked := l.calls(); err == nil && len(asked) == 2 && !asked[1].Equal(now.Now().Add(-2*time.Minute)) {
		t.Errorf("third sweep listed since %v, want the first sweep's time (its cursor less 10 min is earlier)", asked[1])
	}
	if err != nil || rep.State.Listed != 1 || rep.State.Recorded != 0 {
		t.Fatalf("third sweep: %+v, %v; want the same change listed, not recorded", rep, err)
	}
	now.Advance(time.Minute) // a new change of a SUBMITTED order: recorded, not sent
	l.set(func(l *lister) { l.orders[1].DateModified = now.Now() })
	if rep, err = svc.SweepOrders(ctx, 0); err != nil || rep.State.Recorded != 1 {
		t.Fatalf("fourth sweep: %+v, %v", rep, err)
	}
	h.waitState(t, order.Key{Store: "abc", ID: 21}, order.Submitted)
	if got, _ := svc.Get(ctx, order.Key{Store: "abc", ID: 22}); got != nil {
		t.Errorf("order 22, modified before the first sweep, was recorded: %+v", got)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.live["BC-abc-21"] != 1 || len(sup.live) != 1 {
		t.Fatalf("supplier orders %v, want exactly one for order 21", sup.live)
	}
}

// Replicas share one sweep per interval, and a failed listing keeps the
// cursor, so that the next sweep lists the same span again.
func TestOrdersSweepOncePerIntervalAndKeepsItsCursorOnFailure(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	now := testclock.New(time.Now())
	sf := &storefront{status: map[uint64]uint32{}}
	l := &lister{}
	a := sweepService(t, ep, sf, &supplier{live: map[string]int{}}, l, now)
	b := sweepService(t, ep, sf, &supplier{live: map[string]int{}}, l, now)
	if rep, err := a.SweepOrders(ctx, time.Hour); err != nil || !rep.First {
		t.Fatalf("first sweep: %+v, %v", rep, err)
	}
	cursor := now.Now()
	if rep, err := b.SweepOrders(ctx, time.Hour); err != nil || !rep.Skipped {
		t.Fatalf("another replica within the interval: %+v, %v; want skipped", rep, err)
	}

	now.Advance(2 * time.Hour)
	l.set(func(l *lister) { l.fail = errors.New("HTTP 500") })
	rep, err := b.SweepOrders(ctx, time.Hour)
	if err == nil || rep.State.LastError == "" || !rep.State.Cursor.Equal(cursor) {
		t.Fatalf("failed sweep: %+v, %v; want an error, the cursor kept", rep, err)
	}
	now.Advance(2 * time.Hour)
	l.set(func(l *lister) { l.fail = nil })
	if rep, err = a.SweepOrders(ctx, time.Hour); err != nil || rep.State.LastError != "" {
		t.Fatalf("sweep after the failure: %+v, %v", rep, err)
	}
	asked := l.calls()
	if len(asked) != 2 || !asked[0].Equal(asked[1]) {
		t.Fatalf("list calls since %v; want two, from the same cursor", asked)
	}
	if !asked[1].Equal(cursor) {
		t.Errorf("listed since %v, want the first sweep's time %v (the overlap never reaches before it)", asked[1], cursor)
	}
	last := now.Now()
	now.Advance(2 * time.Hour)
	if _, err = b.SweepOrders(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if asked = l.calls(); len(asked) != 3 || !asked[2].Equal(last.Add(-10*time.Minute)) {
		t.Errorf("list calls since %v; want the last one from the last sweep's time less 10 min of overlap", asked)
	}
}
