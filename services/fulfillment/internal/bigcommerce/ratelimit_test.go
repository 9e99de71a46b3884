package bigcommerce

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// stampRequests makes fs note when each request comes, and answer it with
// the headers set sets (n counts the requests from 1). It returns a reader
// of the times noted.
func stampRequests(fs *fakeStore, set func(n int, h http.Header)) func() []time.Time {
	var mu sync.Mutex
	var times []time.Time
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		set(len(times), w.Header())
		return false
	}
	return func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times...)
	}
}

// fakeClock is the pacer's clock in tests that must not depend on speed.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func rateHeaders(left, resetMs int) http.Header {
	h := http.Header{}
	h.Set(headerRequestsLeft, strconv.Itoa(left))
	h.Set(headerResetMs, strconv.Itoa(resetMs))
	return h
}

// takeAll takes as many requests as go at the clock's time.
func takeAll(p *pacer, store string, now time.Time) (n int, after time.Time, why int) {
	for ; n < 1000; n++ {
		if after, _, why = p.take(store, now); why != notHeld {
			return n, after, why
		}
	}
	return n, after, why
}

// After a burst, the requests left are spread evenly over the rest of the
// window: 10 left in 1 s is one every 100 ms.
func TestPacerSpreadsTheQuotaAfterABurst(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(3, clk.now)
	p.observe("s", rateHeaders(10, 1000), time.Minute)
	n, after, why := takeAll(p, "s", clk.t)
	if n != 3 || why != heldToSpread {
		t.Fatalf("%d went at once (then %d); want the burst of 3, then held to spread", n, why)
	}
	if want := clk.t.Add(100 * time.Millisecond); !after.Equal(want) {
		t.Fatalf("the 4th may go at %v, want %v", after.Sub(clk.t), want.Sub(clk.t))
	}
	for i := range 5 {
		clk.add(100 * time.Millisecond)
		if n, _, _ := takeAll(p, "s", clk.t); n != 1 {
			t.Fatalf("step %d: %d went, want one every 100 ms", i, n)
		}
	}
	// Idle for a while (in the same window): the burst is available
	// again, not more.
	p.observe("s", rateHeaders(50, 10_000), time.Minute) // 200 ms apart
	clk.add(5 * time.Second)
	if n, _, _ := takeAll(p, "s", clk.t); n != 3 {
		t.Errorf("after an idle spell %d went at once, want the burst of 3", n)
	}
}

// No more go at once than the store has left.
func TestPacerBurstIsBoundByTheRequestsLeft(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(10, clk.now)
	p.observe("s", rateHeaders(3, 30_000), time.Minute)
	if n, _, _ := takeAll(p, "s", clk.t); n != 3 {
		t.Errorf("%d went at once with 3 left, want 3", n)
	}
}

// A request is never held past the reset, when the quota refills, even with
// no answer since to say so; and the first answer of the new window plans
// the spacing anew, waking whoever waits on the old one.
func TestPacerNeverHoldsPastTheReset(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	p := newPacer(1, clk.now)
	p.observe("s", rateHeaders(2, 30_000), time.Minute) // 15 s apart
	takeAll(p, "s", clk.t)
	clk.add(15 * time.Second)
	if n, _, _ := takeAll(p, "s", clk.t); n != 1 {
		t.Fatalf("%d went after 15 s, want 1", n)
	}
	p.observe("s", rateHeaders(1, 15_000), time.Minute) // 1 left, 15 s to the reset
	after, _, _ := p.take("s", clk.t)
	if want := t0.Add(30 * time.Second); after.After(want) {
		t.Fatalf("held until %v, past the reset at %v", after.Sub(t0), want.Sub(t0))
	}
	clk.t = t0.Add(30 * time.Second)
	if n, _, _ := takeAll(p, "s", clk.t); n != 1 {
		t.Fatalf("at the reset %d went, want 1 (the burst), the rest after its answer", n)
	}
	_, changed, why := p.take("s", clk.t)
	if why != heldToSpread {
		t.Fatalf("why = %d, want held to spread until the new window's first answer", why)
	}
	clk.add(100 * time.Millisecond)
	p.observe("s", rateHeaders(449, 29_900), time.Minute) // ~66.6 ms apart
	select {
	case <-changed:
	default:
		t.Fatal("the new window's spacing did not wake the waiter")
	}
	after, _, _ = p.take("s", clk.t)
	if d := after.Sub(clk.t); d > 67*time.Millisecond {
		t.Errorf("next request held %v in the new window, want at most one new spacing (67ms)", d)
	}
}

// Even a schedule that owes more than the window has left holds nothing past
// the reset.
func TestPacerScheduleEndsAtTheReset(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	p := newPacer(10, clk.now)
	p.observe("s", rateHeaders(10, 1000), time.Minute) // 100 ms apart
	if n, _, _ := takeAll(p, "s", clk.t); n != 10 {
		t.Fatalf("%d went, want the burst of 10", n)
	}
	// Others spent most of the rest: 5 left, 200 ms to the reset. The
	// schedule owes 10 spacings of 40 ms, 240 ms with the burst of 5.
	p.observe("s", rateHeaders(5, 200), time.Minute)
	after, _, _ := p.take("s", clk.t)
	if want := t0.Add(200 * time.Millisecond); !after.Equal(want) {
		t.Errorf("held until %v, want the reset at %v", after.Sub(t0), want.Sub(t0))
	}
}

// A spacing that changes re-plans what the schedule still owes: a waiter
// planned at 30 min goes within the new spacing.
func TestPacerReplansAtTheNewSpacing(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(1, clk.now)
	p.observe("s", rateHeaders(2, 3_600_000), 2*time.Hour) // 30 min apart
	takeAll(p, "s", clk.t)
	p.observe("s", rateHeaders(1000, 1000), 2*time.Hour) // 1 ms apart
	after, _, _ := p.take("s", clk.t)
	if d := after.Sub(clk.t); d > time.Millisecond {
		t.Errorf("held %v, want at most the new spacing of 1ms", d)
	}
}

// wait sleeps until the spacing lets the request go, wakes when an answer
// shortens it, and gives up at once when the caller's deadline comes first.
func TestPacerWait(t *testing.T) {
	p := newPacer(1, time.Now)
	p.observe("s", rateHeaders(2, 3_600_000), 2*time.Hour) // 30 min apart
	if why, err := p.wait(testCtx(t), "s"); err != nil || why != notHeld {
		t.Fatalf("first request: held %d, %v", why, err)
	}
	done := make(chan int)
	go func() {
		// No deadline: the wait must not give up before the wake-up.
		why, err := p.wait(t.Context(), "s")
		if err != nil {
			t.Error(err)
		}
		done <- why
	}()
	// Once it sleeps, shorten the spacing: without the wake-up it would
	// sleep 30 min, and the test would time out.
	for parked := false; !parked; {
		time.Sleep(time.Millisecond)
		p.mu.Lock()
		parked = p.stores["s"].changed != nil
		p.mu.Unlock()
	}
	p.observe("s", rateHeaders(1000, 1000), 2*time.Hour)
	if why := <-done; why != heldToSpread {
		t.Errorf("why = %d, want held to spread", why)
	}

	p = newPacer(1, time.Now)
	p.observe("s", rateHeaders(2, 3_600_000), 2*time.Hour)
	if _, err := p.wait(testCtx(t), "s"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), time.Second)
	defer cancel()
	_, err := p.wait(ctx, "s")
	var re *fulfill.RetryableError
	if !errors.As(err, &re) || re.RetryAfter < time.Minute {
		t.Fatalf("with a deadline before the spacing: %v, want *RetryableError with RetryAfter ~30 min", err)
	}
}

// Others spending the same quota (other replicas, other apps) leave fewer
// requests: the spacing widens without any coordination.
func TestPacerSpacingFollowsTheRequestsLeft(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(1, clk.now)
	p.observe("s", rateHeaders(100, 10_000), time.Minute)
	takeAll(p, "s", clk.t)
	after, _, _ := p.take("s", clk.t)
	if got := after.Sub(clk.t); got != 100*time.Millisecond {
		t.Fatalf("spacing %v, want 100ms (10 s / 100 left)", got)
	}
	clk.add(100 * time.Millisecond)
	p.observe("s", rateHeaders(20, 9_900), time.Minute) // others spent 79
	takeAll(p, "s", clk.t)
	after, _, _ = p.take("s", clk.t)
	if got := after.Sub(clk.t); got != 495*time.Millisecond {
		t.Errorf("spacing %v, want 495ms (9.9 s / 20 left)", got)
	}
}

// A new window voids the old schedule, and a waiting request is woken to go
// at once rather than sleeping out a spacing that no longer holds.
func TestPacerNewWindowWakesWaiters(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(1, clk.now)
	p.observe("s", rateHeaders(2, 1000), time.Minute) // one every 500 ms
	takeAll(p, "s", clk.t)
	_, changed, why := p.take("s", clk.t)
	if why != heldToSpread || changed == nil {
		t.Fatalf("why = %d, changed = %v; want held to spread, with a channel", why, changed)
	}
	clk.add(1000 * time.Millisecond)
	p.observe("s", rateHeaders(450, 30_000), time.Minute)
	select {
	case <-changed:
	default:
		t.Fatal("the waiter was not woken by the new window")
	}
	if n, _, _ := takeAll(p, "s", clk.t); n != 1 {
		t.Errorf("%d went in the new window at once, want the burst of 1", n)
	}
}

// With no request left, nothing goes before the reset, spreading or not;
// with spreading off, only that hold remains.
func TestPacerHoldsUntilTheReset(t *testing.T) {
	for _, burst := range []int{-1, 5} {
		clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
		p := newPacer(burst, clk.now)
		p.observe("s", rateHeaders(0, 2000), time.Minute)
		_, after, why := takeAll(p, "s", clk.t)
		if why != heldForReset || !after.Equal(clk.t.Add(2*time.Second)) {
			t.Errorf("burst %d: held %v for %d, want 2s for the reset", burst, after.Sub(clk.t), why)
		}
		clk.add(2 * time.Second)
		p.observe("s", rateHeaders(30, 30_000), time.Minute)
		n, _, _ := takeAll(p, "s", clk.t)
		if burst < 0 && n != 1000 {
			t.Errorf("spreading off: %d went at once, want no limit until none is left", n)
		}
		if burst > 0 && n != 5 {
			t.Errorf("burst %d: %d went at once, want 5", burst, n)
		}
		// Other stores are not held.
		if n, _, _ := takeAll(p, "other", clk.t); n != 1000 {
			t.Errorf("burst %d: another store was held after %d", burst, n)
		}
	}
}

// A server without rate-limit headers, or an unlimited quota, never holds a
// request back.
func TestPacerWithoutALimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := newPacer(1, clk.now)
	p.observe("s", http.Header{}, time.Minute)
	p.observe("t", rateHeaders(1<<31-1, 30_000), time.Minute)
	for _, s := range []string{"s", "t"} {
		if n, _, _ := takeAll(p, s, clk.t); n != 1000 {
			t.Errorf("store %s: held after %d requests", s, n)
		}
	}
}

// Through the client: with 4 requests left in 4 s and a burst of 1, the
// reads of one order are spread 1 s apart, not sent at once. (The spacing
// is wide so that a slow machine's round trips do not space them alone.)
func TestClientSpreadsRequestsOverTheWindow(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	stamps := stampRequests(fs, func(_ int, h http.Header) {
		h.Set(headerRequestsLeft, "4")
		h.Set(headerResetMs, "4000")
	})
	c := newClient(t, srv, func(c *Config) { c.QuotaBurst = 1 })
	start := time.Now()
	k := order.Key{Store: testStore, ID: 1}
	if _, err := readOrder(testCtx(t), c, k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SupplierReference(testCtx(t), k); err != nil {
		t.Fatal(err)
	}
	times := stamps()
	if len(times) != 4 {
		t.Fatalf("%d requests, want 4", len(times))
	}
	// The first answer sets the spacing; the second goes at once, the
	// third and fourth 1 s apart after it.
	if got := times[3].Sub(start); got < 2*time.Second {
		t.Errorf("the 4th request went %v after the first, want >= 2s", got)
	}
	// (At least one: a request that comes late enough is not held.)
	if s := c.Stats(); s.SpreadWaits < 1 || s.PacedWaits != 0 {
		t.Errorf("Stats = %+v, want spread waits, no reset waits", s)
	}
}

// The operator's view of the quota is the latest answer's, until its window
// is over.
func TestPacerState(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	p := newPacer(10, func() time.Time { return t0 })
	if st := p.state("s", t0); st != (QuotaState{Burst: 10}) {
		t.Errorf("before any answer: %+v", st)
	}
	p.observe("s", rateHeaders(450, 30_000), time.Minute)
	want := QuotaState{Left: 450, ResetsAt: t0.Add(30 * time.Second), Spacing: 30 * time.Second / 450, Burst: 10}
	if st := p.state("s", t0.Add(time.Second)); st != want {
		t.Errorf("in the window: %+v, want %+v", st, want)
	}
	p.observe("s", rateHeaders(0, 30_000), time.Minute)
	st := p.state("s", t0.Add(time.Second))
	if st.Left != 0 || !st.HeldUntil.Equal(t0.Add(30*time.Second)) || !st.ResetsAt.Equal(st.HeldUntil) || st.Spacing != 0 {
		t.Errorf("with none left: %+v, want held until the reset", st)
	}
	if st := p.state("s", t0.Add(31*time.Second)); st != (QuotaState{Burst: 10}) {
		t.Errorf("after the window: %+v, want nothing but the burst", st)
	}
	if st := newPacer(-1, time.Now).state("s", t0); st.Burst != 0 {
		t.Errorf("spreading off: burst %d, want 0", st.Burst)
	}
}

// The estimate of others' spending: requests left that fall faster than
// this client's own answers account for are others', and the spacing leaves
// them their share.
func TestPacerLeavesOthersTheirShare(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	p := newPacer(1, clk.now)
	p.observe("s", rateHeaders(450, 30_000), time.Minute)
	// In 1 s, 10 answers of ours, and others spent 5 more.
	for i := 1; i <= 10; i++ {
		clk.t = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		p.observe("s", rateHeaders(450-i-i/2, 30_000-100*i), time.Minute)
	}
	// 435 left in 29 s, others spending 5 a second, weighed into the
	// estimate (0 before) by 1-exp(-1 s/5 s): about 0.9 a second, so
	// about 409 for us, 71 ms apart.
	p.mu.Lock()
	got := p.stores["s"].interval
	p.mu.Unlock()
	others := (1 - math.Exp(-0.2)) * 5
	if want := time.Duration(float64(29*time.Second) / (435 - others*29)); got != want {
		t.Errorf("spacing %v, want %v (the even pace would be %v)", got, want, 29*time.Second/435)
	}
}

// Replicas and another app spend one quota: each replica estimates what
// the others spend, and together they leave the app its share to the end of
// each window rather than spend the quota before it; and when the app
// stops, the replicas take up what it left.
func TestPacersShareAQuota(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		appStops time.Duration // 0: never
	}{{2, 0}, {3, 0}, {4, 0}, {2, 45 * time.Second}} {
		t.Run(fmt.Sprintf("%d replicas, app stops at %v", tc.replicas, tc.appStops), func(t *testing.T) {
			asked, refused, ours := simulateQuota(tc.replicas, tc.appStops)
			t.Logf("asked %d refused %d ours %d", asked, refused, ours)
			if refused*50 > asked {
				t.Errorf("the app was refused %d of %d requests, want at most 2 %%", refused, asked)
			}
			if most := 4*450 - (asked - refused); ours*10 < most*8 {
				t.Errorf("the replicas spent %d, want at least 80 %% of the %d the app left", ours, most)
			}
		})
	}
}

// simulateQuota runs four 30 s windows of a 450-request quota, with an app
// asking 5 requests a second until appStops (0: throughout) and replicas
// that have more work than the quota allows: each sends whenever its pacer
// lets it, and reads the answer at once. It returns what the app asked and
// was refused, and what the replicas spent.
func simulateQuota(replicas int, appStops time.Duration) (asked, refused, ours int) {
	const (
		quota  = 450
		window = 30 * time.Second
		step   = 10 * time.Millisecond
	)
	t0 := time.Unix(1_700_000_000, 0)
	clk := &fakeClock{t: t0}
	var pacers []*pacer
	for range replicas {
		pacers = append(pacers, newPacer(10, clk.now))
	}
	used, windowStart := 0, t0
	for clk.t.Before(t0.Add(4 * window)) {
		if clk.t.Sub(windowStart) >= window {
			windowStart, used = clk.t, 0
		}
		if since := clk.t.Sub(t0); since%(200*time.Millisecond) == 0 && (appStops == 0 || since < appStops) {
			asked++
			if used < quota {
				used++
			} else {
				refused++
			}
		}
		for _, p := range pacers {
			for used < quota {
				if _, _, why := p.take("s", clk.t); why != notHeld {
					break
				}
				used++
				ours++
				p.observe("s", rateHeaders(quota-used, int((window-clk.t.Sub(windowStart))/time.Millisecond)), time.Minute)
			}
		}
		clk.add(step)
	}
	return asked, refused, ours
}
