package bigcommerce

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

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
	// Idle for a while: the burst is available again, not more.
	clk.add(time.Second)
	p.observe("s", rateHeaders(10, 1000), time.Minute)
	if n, _, _ := takeAll(p, "s", clk.t); n != 3 {
		t.Errorf("after an idle spell %d went at once, want the burst of 3", n)
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
		p.observe("s", rateHeaders(3, 30_000), time.Minute)
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

// Through the client: with 4 requests left in 400 ms and a burst of 1, the
// reads of one order are spread 100 ms apart, not sent at once.
func TestClientSpreadsRequestsOverTheWindow(t *testing.T) {
	fs, srv := newFakeStore(t)
	fs.addOrder(1, 11, 1)
	var mu sync.Mutex
	var times []time.Time
	fs.fault = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		w.Header().Set(headerRequestsLeft, "4")
		w.Header().Set(headerResetMs, "400")
		return false
	}
	c := newClient(t, srv, func(c *Config) { c.QuotaBurst = 1 })
	start := time.Now()
	k := order.Key{Store: testStore, ID: 1}
	if _, err := readOrder(testCtx(t), c, k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SupplierReference(testCtx(t), k); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 4 {
		t.Fatalf("%d requests, want 4", len(times))
	}
	// The first answer sets the spacing; the second goes at once, the
	// third and fourth 100 ms apart after it.
	if got := times[3].Sub(start); got < 200*time.Millisecond {
		t.Errorf("the 4th request went %v after the first, want >= 200ms", got)
	}
	if s := c.Stats(); s.SpreadWaits != 2 || s.PacedWaits != 0 {
		t.Errorf("Stats = %+v, want 2 spread waits, no reset waits", s)
	}
}
