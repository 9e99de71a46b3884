package fulfill_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// scripted answers each live call with the next outcome of its script
// (the last one for ever after), and counts the calls that reached it.
type scripted struct {
	mu          sync.Mutex
	script      []order.Outcome
	live        int
	validations int
	lookups     int
	// block, when set, holds each live call until it is closed.
	block chan struct{}
}

func (s *scripted) Submit(_ context.Context, _ order.Submission, validateOnly bool) order.Result {
	s.mu.Lock()
	if validateOnly {
		s.validations++
		s.mu.Unlock()
		return order.Result{Outcome: order.Valid}
	}
	out := s.script[min(s.live, len(s.script)-1)]
	s.live++
	block := s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	r := order.Result{Outcome: out, Reason: "HTTP 502"}
	if out == order.Created {
		r.OfflineOrderID, r.Reason = "TS-1", ""
	}
	return r
}

func (s *scripted) Lookup(context.Context, string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	return "", false, nil
}

func (s *scripted) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

var sub = order.Submission{Reference: "BC-abc-1"}

func live(b *fulfill.Breaker) order.Result { return b.Submit(context.Background(), sub, false) }

// The breaker opens after the set number of ambiguous live answers in a
// row, and not before: a clear answer in between starts the count again.
// While open, live orders are not sent (NotSent, due when a probe may go),
// and validate-only calls and lookups still are.
func TestBreakerOpensAfterAmbiguousAnswersInARow(t *testing.T) {
	A, C := order.Ambiguous, order.Created
	sup := &scripted{script: []order.Outcome{A, A, C, A, A, A, C}}
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(sup, 3, clock.Now, discard())

	for i := range 6 {
		if r := live(b); r.Outcome != sup.script[i] {
			t.Fatalf("call %d: %v, want the supplier's %v", i, r.Outcome, sup.script[i])
		}
	}
	// Two, a clear answer, then three: open now.
	st := b.State()
	if !st.Open || !st.Until.Equal(clock.Now().Add(fulfill.BreakerCooldown)) {
		t.Fatalf("after 3 ambiguous answers in a row: %+v, want open for %s", st, fulfill.BreakerCooldown)
	}
	r := live(b)
	if r.Outcome != order.NotSent || r.RetryAfter != fulfill.BreakerCooldown || !strings.Contains(r.Reason, "held back") {
		t.Fatalf("a live order while open: %+v, want NotSent due in %s, saying why", r, fulfill.BreakerCooldown)
	}
	if sup.calls() != 6 {
		t.Fatalf("the supplier saw %d live calls, want 6 (none while open)", sup.calls())
	}
	if r := b.Submit(context.Background(), sub, true); r.Outcome != order.Valid {
		t.Errorf("validate-only while open: %v, want it sent", r.Outcome)
	}
	if _, _, err := b.Lookup(context.Background(), "BC-abc-1"); err != nil || sup.lookups != 1 {
		t.Errorf("lookup while open: %v, %d lookups; want it sent", err, sup.lookups)
	}
	if st := b.State(); st.Held != 1 {
		t.Errorf("held %d, want 1", st.Held)
	}
}

// After the cool-down one live order goes through as a probe, and only
// one, however many are due: an ambiguous probe opens the breaker for
// twice as long (up to the cap), a clear one closes it.
func TestBreakerProbes(t *testing.T) {
	A, C := order.Ambiguous, order.Created
	sup := &scripted{script: []order.Outcome{A, A}}
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(sup, 2, clock.Now, discard())
	live(b)
	live(b)
	cooldown := fulfill.BreakerCooldown
	for range 6 {
		// Each failed probe doubles the cool-down, up to the cap.
		clock.Advance(cooldown)
		if r := live(b); r.Outcome != A {
			t.Fatalf("probe after %s: %v, want it sent (and ambiguous)", cooldown, r.Outcome)
		}
		cooldown = min(2*cooldown, fulfill.BreakerMaxCooldown)
		if st := b.State(); !st.Open || !st.Until.Equal(clock.Now().Add(cooldown)) {
			t.Fatalf("after a failed probe: %+v, want open for %s", st, cooldown)
		}
	}
	if cooldown != fulfill.BreakerMaxCooldown {
		t.Fatalf("cool-down %s after six failed probes, want the cap %s", cooldown, fulfill.BreakerMaxCooldown)
	}

	// One probe in flight: the others are held meanwhile.
	clock.Advance(cooldown)
	sup.mu.Lock()
	sup.script, sup.block = []order.Outcome{C}, make(chan struct{})
	sup.live = 0
	sup.mu.Unlock()
	probe := make(chan order.Result)
	go func() { probe <- live(b) }()
	for sup.calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		// Due again after the order's own backoff, not a whole cool-down:
		// the probe's answer likely comes first.
		if r := live(b); r.Outcome != order.NotSent || r.RetryAfter != 0 {
			t.Fatalf("while the probe is in flight: %v after %s, want NotSent, its backoff deciding", r.Outcome, r.RetryAfter)
		}
	}
	close(sup.block)
	if r := <-probe; r.Outcome != C {
		t.Fatalf("probe: %v", r.Outcome)
	}
	if st := b.State(); st.Open {
		t.Fatalf("after a clear probe: %+v, want closed", st)
	}
	if r := live(b); r.Outcome != C || sup.calls() != 2 {
		t.Fatalf("after closing: %v, %d calls; want sent", r.Outcome, sup.calls())
	}
	// Closed again, with the first cool-down: two more ambiguous answers
	// open it for BreakerCooldown, not the cap.
	sup.mu.Lock()
	sup.script, sup.block = []order.Outcome{A}, nil
	sup.mu.Unlock()
	live(b)
	live(b)
	if st := b.State(); !st.Open || !st.Until.Equal(clock.Now().Add(fulfill.BreakerCooldown)) {
		t.Fatalf("reopened: %+v, want open for %s", st, fulfill.BreakerCooldown)
	}
}

// Through the service, with the supplier answering every live order 502:
// the first orders wait for a person (NEEDS_REVIEW: unknown whether the
// supplier has them), and once the breaker opens, the rest are not sent:
// their runs stop before reading BigCommerce (the store's quota goes only
// to orders that can be sent), they stay queued saying why, no attempt
// counted, and are sent once TropShip answers clearly again.
func TestBreakerHoldsOrdersBackInsteadOfReview(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(time.Now())
	sup := &scripted{script: []order.Outcome{order.Ambiguous}}
	sf := &storefront{status: map[uint64]uint32{}}
	for id := uint64(1); id <= 5; id++ {
		sf.status[id] = 11
	}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), Breaker: 2,
		Retry:         order.RetryPolicy{Base: time.Second, Max: time.Second},
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1, Now: clock.Now,
	}, newStore(t, etcdtest.Start(t)), sf, sup, discard())
	process := func(id uint64) *order.Order {
		t.Helper()
		o, err := svc.Process(ctx, order.Key{Store: "abc", ID: id}, fulfill.ProcessOptions{Force: true})
		if err != nil {
			t.Fatalf("order %d: %v", id, err)
		}
		return o
	}
	for id := uint64(1); id <= 2; id++ {
		if o := process(id); o.State != order.NeedsReview {
			t.Fatalf("order %d: %v, want NEEDS_REVIEW", id, o.State)
		}
	}
	sf.mu.Lock()
	contents := sf.contents
	sf.mu.Unlock()
	until := clock.Now().Add(fulfill.BreakerCooldown)
	for id := uint64(3); id <= 5; id++ {
		process(id)
		o, err := svc.Get(ctx, order.Key{Store: "abc", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if o.State != order.Received || o.Attempts != 0 || !o.Pending || !strings.Contains(o.LastError, "held back") || !o.NextAttemptAt.Equal(until) {
			t.Fatalf("order %d: %v, %d attempts, pending %v, %q, next %v; want RECEIVED, no attempt, queued, held back, due at %v",
				id, o.State, o.Attempts, o.Pending, o.LastError, o.NextAttemptAt, until)
		}
	}
	sf.mu.Lock()
	if sf.contents != contents {
		t.Errorf("held orders' lines and addresses read from BigCommerce %d times, want none", sf.contents-contents)
	}
	sf.mu.Unlock()
	if n := sup.calls(); n != 2 {
		t.Fatalf("%d live calls, want 2 (none while open)", n)
	}
	if st, on := svc.BreakerState(); !on || !st.Open || st.Held != 3 {
		t.Fatalf("breaker %+v (on %v), want open, 3 held", st, on)
	}
	// TropShip recovers: the probe is created, and the others follow.
	sup.mu.Lock()
	sup.script, sup.live = []order.Outcome{order.Created}, 0
	sup.mu.Unlock()
	clock.Advance(fulfill.BreakerCooldown)
	for id := uint64(3); id <= 5; id++ {
		if o := process(id); o.State != order.Submitted || o.Attempts != 1 {
			t.Fatalf("order %d after TropShip recovered: %v (%s), %d attempts; want SUBMITTED at the first", id, o.State, o.LastError, o.Attempts)
		}
	}
	if st, _ := svc.BreakerState(); st.Open {
		t.Fatalf("breaker %+v after a created probe, want closed", st)
	}
}

// flaky answers live calls with outcome, or panics.
type flaky struct {
	mu      sync.Mutex
	outcome order.Outcome
	panics  bool
}

func (f *flaky) set(o order.Outcome, panics bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcome, f.panics = o, panics
}

func (f *flaky) Submit(context.Context, order.Submission, bool) order.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panics {
		panic("boom")
	}
	return order.Result{Outcome: f.outcome, OfflineOrderID: "TS-1"}
}

func (f *flaky) Lookup(context.Context, string) (string, bool, error) { return "", false, nil }

// A probe whose call never returns an answer (it panicked) gives its slot
// back: the breaker stays open, and the next due order is the next probe.
func TestBreakerProbeThatPanicsGivesItsSlotBack(t *testing.T) {
	clock := testclock.New(time.Now())
	sup := &flaky{outcome: order.Ambiguous}
	b := fulfill.NewBreaker(sup, 1, clock.Now, discard())
	live(b) // opens
	clock.Advance(fulfill.BreakerCooldown)
	sup.set(order.Ambiguous, true)
	func() {
		defer func() { _ = recover() }()
		live(b)
	}()
	if st := b.State(); !st.Open {
		t.Fatalf("after a probe that panicked: %+v, want still open", st)
	}
	sup.set(order.Created, false)
	if r := live(b); r.Outcome != order.Created {
		t.Fatalf("the next order after the panicked probe: %v, want it sent as the next probe", r.Outcome)
	}
	if st := b.State(); st.Open {
		t.Fatalf("after a clear probe: %+v, want closed", st)
	}
}
