package fulfill_test

import (
	"context"
	"errors"
	"fmt"
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

// call is what the service does around one live call: Admit, then the
// call and Record, unless held.
func call(b *fulfill.Breaker, out order.Outcome) (probe, held bool) {
	probe, _, held = b.Admit()
	if !held {
		b.Record(order.Result{Outcome: out}, probe)
	}
	return probe, held
}

// spreadFrom reports whether t is in [from, from+10 s]: held orders' next
// runs are spread over up to 10 s after the probe may go.
func spreadFrom(t, from time.Time) bool {
	return !t.Before(from) && !t.After(from.Add(10*time.Second))
}

// The breaker opens after the set number of ambiguous live answers in a
// row, and not before: a clear answer in between starts the count again.
// While open, runs are held (Holding before reading anything, Admit
// before the intent) until the cool-down ends.
func TestBreakerOpensAfterAmbiguousAnswersInARow(t *testing.T) {
	A, C := order.Ambiguous, order.Created
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(3, clock.Now, discard())
	for i, out := range []order.Outcome{A, A, C, A, A} {
		if _, held := call(b, out); held {
			t.Fatalf("call %d held with the breaker closed", i)
		}
	}
	if st := b.State(); st.Open {
		t.Fatalf("after two, a clear answer, and two: %+v, want closed", st)
	}
	// NotSent says nothing: it neither counts nor resets.
	call(b, order.NotSent)
	call(b, A)
	st := b.State()
	if !st.Open || !st.Until.Equal(clock.Now().Add(fulfill.BreakerCooldown)) {
		t.Fatalf("after 3 ambiguous answers in a row: %+v, want open for %s", st, fulfill.BreakerCooldown)
	}
	h, held := b.Holding()
	if !held || !spreadFrom(h.Until, st.Until) || !strings.Contains(h.Reason, "held back") {
		t.Fatalf("Holding while open: %+v, %v; want held until about %v, saying why", h, held, st.Until)
	}
	probe, h, held := b.Admit()
	if probe || !held || !spreadFrom(h.Until, st.Until) {
		t.Fatalf("Admit while open: probe %v, %+v, held %v; want held", probe, h, held)
	}
	if st := b.State(); st.Held != 2 {
		t.Errorf("held %d, want 2", st.Held)
	}
}

// After the cool-down one live order goes through as a probe, and only
// one: an ambiguous probe opens the breaker for twice as long (up to the
// cap), a clear one closes it. A probe that ends with no answer (no call
// made, or a panic) gives its slot back.
func TestBreakerProbes(t *testing.T) {
	A, C := order.Ambiguous, order.Created
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(2, clock.Now, discard())
	call(b, A)
	call(b, A)
	cooldown := fulfill.BreakerCooldown
	for range 6 {
		clock.Advance(cooldown)
		if _, held := b.Holding(); held {
			t.Fatal("Holding once the cool-down is over: held, want the run to go on")
		}
		probe, held := call(b, A)
		if !probe || held {
			t.Fatalf("after %s: probe %v, held %v; want the probe", cooldown, probe, held)
		}
		cooldown = min(2*cooldown, fulfill.BreakerMaxCooldown)
		if st := b.State(); !st.Open || !st.Until.Equal(clock.Now().Add(cooldown)) {
			t.Fatalf("after a failed probe: %+v, want open for %s", st, cooldown)
		}
	}
	if cooldown != fulfill.BreakerMaxCooldown {
		t.Fatalf("cool-down %s after six failed probes, want the cap %s", cooldown, fulfill.BreakerMaxCooldown)
	}

	clock.Advance(cooldown)
	probe, _, held := b.Admit()
	if !probe || held {
		t.Fatal("no probe after the cool-down")
	}
	// While it is in flight, the others are held, their own backoff
	// deciding when they run again (zero Until).
	for range 3 {
		if h, held := b.Holding(); !held || !h.Until.IsZero() {
			t.Fatalf("Holding while the probe is in flight: %+v, %v; want held, no time", h, held)
		}
		if p, h, held := b.Admit(); p || !held || !h.Until.IsZero() {
			t.Fatalf("Admit while the probe is in flight: probe %v, %+v, %v; want held", p, h, held)
		}
	}
	// The probe ends with no answer: its slot is given back.
	b.Record(order.Result{}, true)
	if st := b.State(); !st.Open {
		t.Fatalf("after a probe with no answer: %+v, want still open", st)
	}
	probe, held = call(b, C)
	if !probe || held {
		t.Fatalf("the next run after a probe with no answer: probe %v, held %v; want the next probe", probe, held)
	}
	if st := b.State(); st.Open {
		t.Fatalf("after a clear probe: %+v, want closed", st)
	}
	// Closed, with the first cool-down again: two ambiguous answers open
	// it for BreakerCooldown, not the cap.
	call(b, A)
	call(b, A)
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
	svc, process := breakerService(t, clock, 2, sf, sup)
	for id := uint64(1); id <= 2; id++ {
		if o := process(id); o.State != order.NeedsReview {
			t.Fatalf("order %d: %v, want NEEDS_REVIEW", id, o.State)
		}
	}
	sf.mu.Lock()
	contents := sf.contents
	sf.mu.Unlock()
	until := clock.Now().Add(fulfill.BreakerCooldown)
	// A person's ProcessOrder of an order nobody announced stores nothing
	// while the breaker is open: it is told to try again.
	var re *fulfill.RetryableError
	if _, err := svc.Process(ctx, order.Key{Store: "abc", ID: 99}, fulfill.ProcessOptions{Force: true}); !errors.As(err, &re) || re.RetryAfter <= 0 {
		t.Fatalf("ProcessOrder of an unannounced order while open: %v, want a retryable error with a time", err)
	}
	if _, err := svc.Get(ctx, order.Key{Store: "abc", ID: 99}); !errors.Is(err, fulfill.ErrNotFound) {
		t.Fatalf("unannounced order after a held ProcessOrder: %v, want nothing stored", err)
	}
	for id := uint64(3); id <= 5; id++ {
		if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, fmt.Sprintf("h%d", id))); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(3); id <= 5; id++ {
		process(id)
		o, err := svc.Get(ctx, order.Key{Store: "abc", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		checkHeld(t, o, "held back", until)
	}
	checkNotReadNorSent(t, sf, contents, sup, 2)
	if st, on := svc.BreakerState(); !on || !st.Open || st.Held != 4 {
		t.Fatalf("breaker %+v (on %v), want open, 4 held (order 99 and 3 to 5)", st, on)
	}
	// TropShip recovers. Past the cool-down, order 3 is the probe; while
	// it is in flight, order 4's run is held (no read, no attempt), then
	// the probe is created and the others follow.
	sup.mu.Lock()
	sup.script, sup.live, sup.block = []order.Outcome{order.Created}, 0, make(chan struct{})
	sup.mu.Unlock()
	clock.Advance(fulfill.BreakerCooldown + 10*time.Second)
	probed := make(chan *order.Order)
	go func() {
		o, _ := svc.Process(ctx, order.Key{Store: "abc", ID: 3}, fulfill.ProcessOptions{Force: true})
		probed <- o
	}()
	for sup.calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	process(4)
	if o, err := svc.Get(ctx, order.Key{Store: "abc", ID: 4}); err != nil || o.State != order.Received || o.Attempts != 0 ||
		!strings.Contains(o.LastError, "while one is sent") {
		t.Fatalf("order 4 while the probe is in flight: %+v, %v; want RECEIVED, no attempt, held", o, err)
	}
	close(sup.block)
	if o := <-probed; o == nil || o.State != order.Submitted || o.Attempts != 1 {
		t.Fatalf("probe: %+v, want SUBMITTED at the first attempt", o)
	}
	for id := uint64(4); id <= 5; id++ {
		if o := process(id); o.State != order.Submitted || o.Attempts != 1 {
			t.Fatalf("order %d after TropShip recovered: %v (%s), %d attempts; want SUBMITTED at the first", id, o.State, o.LastError, o.Attempts)
		}
	}
	if st, _ := svc.BreakerState(); st.Open {
		t.Fatalf("breaker %+v after a created probe, want closed", st)
	}
}

// A 429 holds every live order back until its Retry-After (ThrottleWait
// when it names none), the held orders spread over up to 10 s after it;
// a shorter 429 never shortens the wait. It is a clear answer: it neither
// opens the breaker nor counts toward opening it.
func TestBreakerHoldsLiveOrdersThroughA429(t *testing.T) {
	A := order.Ambiguous
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(2, clock.Now, discard())
	call(b, A)
	probe, _, held := b.Admit()
	if probe || held {
		t.Fatal("closed breaker held a call")
	}
	b.Record(order.Result{Outcome: order.Throttled, RetryAfter: 30 * time.Second}, false)
	until := clock.Now().Add(30 * time.Second)
	st := b.State()
	if st.Open || !st.ThrottledUntil.Equal(until) {
		t.Fatalf("after a 429 with Retry-After 30 s: %+v; want closed, throttled until %v", st, until)
	}
	h, held := b.Holding()
	if !held || !spreadFrom(h.Until, until) || !strings.Contains(h.Reason, "429") {
		t.Fatalf("Holding after the 429: %+v, %v; want held until about %v, naming the 429", h, held, until)
	}
	if _, h, held := b.Admit(); !held || !spreadFrom(h.Until, until) {
		t.Fatalf("Admit after the 429: %+v, %v; want held", h, held)
	}
	if !b.HoldsNow() {
		t.Fatal("HoldsNow false while throttled")
	}
	// A bare 429 (ThrottleWait) does not shorten it.
	b.RecordPrecheck(order.Result{Outcome: order.Throttled})
	if st := b.State(); !st.ThrottledUntil.Equal(until) {
		t.Fatalf("after a shorter 429: throttled until %v, want still %v", st.ThrottledUntil, until)
	}
	clock.Advance(30 * time.Second)
	if _, held := b.Holding(); held || b.HoldsNow() {
		t.Fatal("held once the Retry-After has passed")
	}
	if st := b.State(); !st.ThrottledUntil.IsZero() || st.Held != 2 {
		t.Fatalf("after the wait: %+v; want not throttled, 2 held runs", st)
	}
	// The 429 reset the ambiguous count: one more does not open it.
	call(b, A)
	if st := b.State(); st.Open {
		t.Fatalf("one ambiguous answer after a 429 opened the breaker: %+v", st)
	}
	b.RecordPrecheck(order.Result{Outcome: order.Throttled})
	if h, held := b.Holding(); !held || !h.Until.After(clock.Now().Add(fulfill.ThrottleWait-time.Nanosecond)) ||
		h.Until.After(clock.Now().Add(fulfill.ThrottleWait+breakerSpreadMax)) {
		t.Fatalf("after a bare 429: %+v, %v; want held for %s", h, held, fulfill.ThrottleWait)
	}
}

const breakerSpreadMax = 10 * time.Second

// throttling answers every live call 429 with a Retry-After, and counts
// the calls.
type throttling struct {
	scripted
	retryAfter time.Duration
}

func (s *throttling) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	r := s.scripted.Submit(ctx, sub, validateOnly)
	if r.Outcome == order.Throttled {
		r.RetryAfter, r.Reason = s.retryAfter, "HTTP 429"
	}
	return r
}

// Through the service: TropShip answers the first live order 429. The
// orders after it are not sent, nor read from BigCommerce, until the
// Retry-After; they keep their state and count no attempt. Then all go.
func TestA429HoldsTheOtherOrdersBack(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(time.Now())
	sup := &throttling{scripted: scripted{script: []order.Outcome{order.Throttled, order.Created}}, retryAfter: time.Minute}
	sf := &storefront{status: map[uint64]uint32{1: 11, 2: 11, 3: 11}}
	svc, _ := breakerService(t, clock, 5, sf, sup)
	for id := uint64(1); id <= 3; id++ {
		if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, fmt.Sprintf("h%d", id))); err != nil {
			t.Fatal(err)
		}
	}
	run := func(id uint64) *order.Order {
		t.Helper()
		if _, err := svc.Process(ctx, order.Key{Store: "abc", ID: id}, fulfill.ProcessOptions{}); err != nil {
			t.Fatalf("order %d: %v", id, err)
		}
		o, err := svc.Get(ctx, order.Key{Store: "abc", ID: id})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := run(1); o.State != order.RetryScheduled || o.Attempts != 1 {
		t.Fatalf("order 1, answered 429: %v, %d attempts; want RETRY_SCHEDULED after its one attempt", o.State, o.Attempts)
	}
	sf.mu.Lock()
	contents := sf.contents
	sf.mu.Unlock()
	until := clock.Now().Add(time.Minute)
	for id := uint64(2); id <= 3; id++ {
		checkHeld(t, run(id), "429", until)
	}
	checkNotReadNorSent(t, sf, contents, &sup.scripted, 1)
	clock.Advance(time.Minute + breakerSpreadMax)
	for id := uint64(1); id <= 3; id++ {
		if o := run(id); o.State != order.Submitted {
			t.Fatalf("order %d after the wait: %v (%s); want SUBMITTED", id, o.State, o.LastError)
		}
	}
	if n := sup.calls(); n != 4 {
		t.Fatalf("%d live calls, want 4 (the 429, then one each)", n)
	}
}

// misdirected answers its NotSent live calls as TropShip answers a wrong
// orders path: a 404 about the settings.
type misdirected struct{ scripted }

func (s *misdirected) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	r := s.scripted.Submit(ctx, sub, validateOnly)
	if r.Outcome == order.NotSent {
		r.Settings, r.Reason = true, "HTTP 404 (Not Found), nothing created: no details given; check TROPSHIP_BASE_URL and TROPSHIP_ORDERS_PATH"
	}
	return r
}

// A live order refused for the settings (a wrong orders path) opens the
// breaker at once: the other orders are held, spending no attempt and no
// BigCommerce request, rather than each meeting the same 404 until it
// FAILED. Probes find when TropShip takes orders again.
func TestASettingsRefusalHoldsTheOtherOrdersBack(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(time.Now())
	sup := &misdirected{scripted{script: []order.Outcome{order.NotSent}}}
	sf := &storefront{status: map[uint64]uint32{1: 11, 2: 11, 3: 11}}
	svc, process := breakerService(t, clock, 5, sf, sup)
	for id := uint64(1); id <= 3; id++ {
		if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, fmt.Sprintf("h%d", id))); err != nil {
			t.Fatal(err)
		}
	}
	if o := process(1); o.State != order.RetryScheduled || o.Attempts != 1 || !strings.Contains(o.LastError, "TROPSHIP_ORDERS_PATH") {
		t.Fatalf("order 1, answered 404: %v, %d attempts, %q; want RETRY_SCHEDULED naming the settings", o.State, o.Attempts, o.LastError)
	}
	st, _ := svc.BreakerState()
	if !st.Open || !st.Until.Equal(clock.Now().Add(fulfill.BreakerCooldown)) {
		t.Fatalf("breaker after one refusal of the settings: %+v; want open for %s", st, fulfill.BreakerCooldown)
	}
	for id := uint64(2); id <= 3; id++ {
		if o := process(id); o.State != order.Received || o.Attempts != 0 || !strings.Contains(o.LastError, "where or as whom") ||
			!strings.Contains(o.LastError, "TROPSHIP_ORDERS_PATH") {
			t.Fatalf("order %d while open: %v, %d attempts, %q; want RECEIVED, no attempt, held saying why", id, o.State, o.Attempts, o.LastError)
		}
	}
	// A probe still refused keeps it open twice as long.
	clock.Advance(fulfill.BreakerCooldown + breakerSpreadMax)
	if o := process(2); o.State != order.RetryScheduled || o.Attempts != 1 {
		t.Fatalf("the probe: %v, %d attempts; want RETRY_SCHEDULED after one attempt", o.State, o.Attempts)
	}
	if st, _ := svc.BreakerState(); !st.Open || !st.Until.Equal(clock.Now().Add(2*fulfill.BreakerCooldown)) {
		t.Fatalf("breaker after a refused probe: %+v; want open for %s", st, 2*fulfill.BreakerCooldown)
	}
	// The account is fixed at TropShip: the next probe is created, and
	// the rest follow.
	sup.mu.Lock()
	sup.script, sup.live = []order.Outcome{order.Created}, 0
	sup.mu.Unlock()
	clock.Advance(2*fulfill.BreakerCooldown + breakerSpreadMax)
	for id := uint64(1); id <= 3; id++ {
		if o := process(id); o.State != order.Submitted {
			t.Fatalf("order %d once TropShip takes orders: %v (%s); want SUBMITTED", id, o.State, o.LastError)
		}
	}
	if n := sup.calls(); n != 3 {
		t.Fatalf("%d live calls after the fix, want 3", n)
	}
}

// A live order's pre-check counts too: its 429 or refusal of the settings
// holds live orders back; anything else it says does not.
func TestBreakerCountsAPrecheckThatSpeaksOfTropShip(t *testing.T) {
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(1, clock.Now, discard())
	b.RecordPrecheck(order.Result{Outcome: order.NotSent, Reason: "connection refused"})
	b.RecordPrecheck(order.Result{Outcome: order.Refused, Reason: "no stock"})
	if b.HoldsNow() {
		t.Fatal("held after a pre-check that was not sent and one refused: neither speaks of TropShip's state")
	}
	b.RecordPrecheck(order.Result{Outcome: order.NotSent, Settings: true, Reason: "HTTP 403"})
	if st := b.State(); !st.Open {
		t.Fatalf("after a pre-check refused for the settings: %+v, want open", st)
	}
	if h, held := b.Holding(); !held || !strings.Contains(h.Reason, "HTTP 403") {
		t.Fatalf("Holding: %+v, %v; want held naming the 403", h, held)
	}
}

// A 429's wait holds live orders back whether the breaker is open or
// not: an open breaker's probe does not go before it, and a breaker that
// opens during it does not let one through when its own cool-down ends.
func TestA429OutlastsAnOpenBreaker(t *testing.T) {
	clock := testclock.New(time.Now())
	b := fulfill.NewBreaker(1, clock.Now, discard())
	settings := order.Result{Outcome: order.NotSent, Settings: true, Reason: "HTTP 404"}
	b.Record(settings, false)
	b.RecordPrecheck(order.Result{Outcome: order.Throttled, RetryAfter: time.Hour})
	clock.Advance(fulfill.BreakerCooldown + time.Second)
	if probe, h, held := b.Admit(); probe || !held || !spreadFrom(h.Until, clock.Now().Add(time.Hour-fulfill.BreakerCooldown-time.Second)) {
		t.Fatalf("Admit past the cool-down inside a 429's hour: probe %v, %+v, held %v; want held until the hour", probe, h, held)
	}
	if b.OpenNow() {
		t.Fatal("OpenNow past the cool-down with no probe in flight")
	}
	if !b.HoldsNow() {
		t.Fatal("HoldsNow false inside the 429's wait")
	}
	// Opening during the wait: the wait still ends last.
	c := fulfill.NewBreaker(1, clock.Now, discard())
	c.Record(order.Result{Outcome: order.Throttled, RetryAfter: time.Hour}, false)
	c.Record(settings, false)
	clock.Advance(fulfill.BreakerCooldown + breakerSpreadMax)
	if _, _, held := c.Admit(); !held {
		t.Fatal("a probe went inside the 429's wait")
	}
	clock.Advance(time.Hour)
	if probe, _, held := c.Admit(); !probe || held {
		t.Fatalf("after the wait: probe %v, held %v; want the probe", probe, held)
	}
}

// precheckMisdirected answers every validate-only pre-check 404, as
// TropShip answers a wrong orders path.
type precheckMisdirected struct{ scripted }

func (s *precheckMisdirected) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	if validateOnly {
		s.mu.Lock()
		s.validations++
		s.mu.Unlock()
		return order.Result{Outcome: order.NotSent, Settings: true, Reason: "HTTP 404 (Not Found); check TROPSHIP_ORDERS_PATH"}
	}
	return s.scripted.Submit(ctx, sub, validateOnly)
}

// With TROPSHIP_VALIDATE_FIRST, the pre-check meets the wrong settings
// first: it opens the breaker, and once the cool-down has passed, the next
// pre-check is the probe. Refused, it keeps the breaker open twice as long,
// so the orders after it are held again, spending no attempt.
func TestAPrecheckRefusedForTheSettingsKeepsOrdersHeld(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(time.Now())
	sup := &precheckMisdirected{scripted{script: []order.Outcome{order.Created}}}
	sf := &storefront{status: map[uint64]uint32{1: 11, 2: 11, 3: 11}}
	svc, process := breakerService(t, clock, 5, sf, sup, func(c *fulfill.Config) { c.ValidateFirst = true })
	for id := uint64(1); id <= 3; id++ {
		if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, fmt.Sprintf("h%d", id))); err != nil {
			t.Fatal(err)
		}
	}
	if o := process(1); o.State != order.RetryScheduled || o.Attempts != 1 {
		t.Fatalf("order 1, pre-check answered 404: %v, %d attempts; want RETRY_SCHEDULED", o.State, o.Attempts)
	}
	if o := process(2); o.State != order.Received || o.Attempts != 0 {
		t.Fatalf("order 2 while open: %v, %d attempts; want held", o.State, o.Attempts)
	}
	clock.Advance(fulfill.BreakerCooldown + breakerSpreadMax)
	if o := process(2); o.Attempts != 1 {
		t.Fatalf("order 2, the probe: %v, %d attempts; want one attempt", o.State, o.Attempts)
	}
	if st, _ := svc.BreakerState(); !st.Open || !st.Until.Equal(clock.Now().Add(2*fulfill.BreakerCooldown)) {
		t.Fatalf("breaker after a refused pre-check as the probe: %+v; want open for %s", st, 2*fulfill.BreakerCooldown)
	}
	if o := process(3); o.State != order.Received || o.Attempts != 0 {
		t.Fatalf("order 3 after the refused probe: %v, %d attempts; want held", o.State, o.Attempts)
	}
	if n := sup.calls(); n != 0 {
		t.Fatalf("%d live calls, want none", n)
	}
}

// breakerService returns a live service on an etcd of its own, on clock,
// with one-second retries and a breaker that opens after after ambiguous
// answers; process runs an order as a person's ProcessOrder does.
func breakerService(t *testing.T, clock *testclock.Clock, after int, sf fulfill.Storefront, sup fulfill.Supplier,
	opts ...func(*fulfill.Config)) (*fulfill.Service, func(id uint64) *order.Order) {
	cfg := fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), Breaker: after,
		Retry:         order.RetryPolicy{Base: time.Second, Max: time.Second},
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1, Now: clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc := fulfill.New(cfg, newStore(t, etcdtest.Start(t)), sf, sup, discard())
	return svc, func(id uint64) *order.Order {
		t.Helper()
		o, err := svc.Process(context.Background(), order.Key{Store: "abc", ID: id}, fulfill.ProcessOptions{Force: true})
		if err != nil {
			t.Fatalf("order %d: %v", id, err)
		}
		return o
	}
}

// checkHeld fails unless o was held back: RECEIVED, no attempt counted,
// still queued, its last_error saying why, due at about until.
func checkHeld(t *testing.T, o *order.Order, why string, until time.Time) {
	t.Helper()
	if o.State != order.Received || o.Attempts != 0 || !o.Pending || !strings.Contains(o.LastError, why) || !spreadFrom(o.NextAttemptAt, until) {
		t.Fatalf("order %v: %v, %d attempts, pending %v, %q, next %v; want RECEIVED, no attempt, queued, saying %q, due at about %v",
			o.Key, o.State, o.Attempts, o.Pending, o.LastError, o.NextAttemptAt, why, until)
	}
}

// checkNotReadNorSent fails unless the held orders' lines were not read
// from BigCommerce (sf's Contents calls are still contents) and the
// supplier had only calls live calls.
func checkNotReadNorSent(t *testing.T, sf *storefront, contents int, sup *scripted, calls int) {
	t.Helper()
	sf.mu.Lock()
	if sf.contents != contents {
		t.Errorf("held orders' lines and addresses read from BigCommerce %d times, want none", sf.contents-contents)
	}
	sf.mu.Unlock()
	if n := sup.calls(); n != calls {
		t.Fatalf("%d live calls, want %d: none while held", n, calls)
	}
}
