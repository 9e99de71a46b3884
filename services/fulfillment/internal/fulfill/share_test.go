package fulfill

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
)

// Every replica computes the same owner for an order; the orders are
// spread evenly; and a replica that leaves moves only its own orders.
func TestQueueShareOwner(t *testing.T) {
	three := []string{"0000000000000a1f", "0000000000000a20", "7c3b00000000001e"}
	two := three[:2]
	const n = 6000
	count := map[string]int{}
	for id := range uint64(n) {
		k := order.Key{Store: "abc", ID: 100 + id}
		o := owner(k, three)
		if again := owner(k, append([]string(nil), three...)); again != o {
			t.Fatalf("order %v: owner %s, then %s", k, o, again)
		}
		count[o]++
		if o != three[2] && owner(k, two) != o {
			t.Fatalf("order %v moved from %s to %s when another replica left", k, o, owner(k, two))
		}
	}
	for _, p := range three {
		if c := count[p]; c < n/3*8/10 || c > n/3*12/10 {
			t.Errorf("replica %s owns %d of %d orders; want about a third: %v", p, c, n, count)
		}
	}
}

// The owner of an order must not change between builds: replicas of two
// builds, during a rolling upgrade, must agree.
func TestQueueShareOwnerIsStable(t *testing.T) {
	peers := []string{"0000000000000a1f", "0000000000000a20", "7c3b00000000001e"}
	var got []string
	for id := uint64(1); id <= 6; id++ {
		got = append(got, owner(order.Key{Store: "abc", ID: id}, peers)[12:])
	}
	if want := "0a20 0a1f 001e 001e 0a1f 0a1f"; strings.Join(got, " ") != want {
		t.Errorf("owners of orders 1 to 6: %q, want %q", strings.Join(got, " "), want)
	}
}

func peers(roles ...string) []Peer {
	var out []Peer
	for i, r := range roles {
		out = append(out, Peer{Name: string(rune('a' + i)), Role: r})
	}
	return out
}

// Alone or undivided, a replica takes every due order; of two, exactly
// one takes each at first sight, and the other takes it only once it has
// been left for a sweep interval and a half.
func TestTakesDue(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	a, b := &Service{cfg: Config{SweepInterval: time.Second}}, &Service{cfg: Config{SweepInterval: time.Second}}
	k := order.Key{Store: "abc", ID: 1}
	if !a.takesDue(k, now, nil) || !a.takesWritten(k) {
		t.Error("a replica that shares nothing must take every order")
	}
	a.share.Store(newQueueShare("a", peers("all")))
	if !a.takesDue(k, now, nil) {
		t.Error("the only replica must take every order")
	}
	a.share.Store(newQueueShare("a", peers("all", "all")))
	b.share.Store(newQueueShare("b", peers("all", "all")))
	var na int
	for id := range uint64(1000) {
		k := order.Key{Store: "abc", ID: id}
		ta, tb := a.takesDue(k, now, nil), b.takesDue(k, now, nil)
		if ta == tb {
			t.Fatalf("order %v: taken by a %v, by b %v; want exactly one", k, ta, tb)
		}
		if ta {
			na++
		}
		left := a
		if ta {
			left = b
		}
		if left.takesDue(k, now, map[order.Key]time.Time{k: now.Add(-time.Second)}) {
			t.Fatalf("order %v taken by the non-owner a second after it first left it", k)
		}
		if !left.takesDue(k, now, map[order.Key]time.Time{k: now.Add(-1500 * time.Millisecond)}) {
			t.Fatalf("order %v not taken by the non-owner 1.5 s after it first left it", k)
		}
	}
	if na < 400 || na > 600 {
		t.Errorf("a takes %d of 1000 orders; want about half", na)
	}
}

// Entries written due at once are divided among the replicas that watch
// the queue (ROLE=process) only: a ROLE=all replica, which does not
// watch, owns none of them.
func TestTakesWritten(t *testing.T) {
	mixed := peers("process", "all", "process")
	a, c := &Service{}, &Service{}
	a.share.Store(newQueueShare("a", mixed))
	c.share.Store(newQueueShare("c", mixed))
	for id := range uint64(200) {
		k := order.Key{Store: "abc", ID: id}
		if a.takesWritten(k) == c.takesWritten(k) {
			t.Fatalf("order %v: taken by a %v, by c %v; want exactly one of the two watchers", k, a.takesWritten(k), c.takesWritten(k))
		}
	}
	alone := &Service{}
	alone.share.Store(newQueueShare("a", peers("process", "all")))
	if !alone.takesWritten(order.Key{Store: "abc", ID: 1}) {
		t.Error("the only watcher must take every entry written due")
	}
}

// A replica whose TropShip breaker holds live orders takes nothing from a
// divided queue (the others take its share), but everything when alone.
func TestHoldingReplicaLeavesItsShare(t *testing.T) {
	now := time.Now()
	s := New(Config{Store: "abc", Mode: order.ModeLive, Breaker: 1, SweepInterval: time.Second}, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.breaker.Record(order.Result{Outcome: order.Ambiguous}, false)
	if !s.holdingLive() {
		t.Fatal("breaker not holding after an ambiguous answer")
	}
	k := order.Key{Store: "abc", ID: 1}
	s.share.Store(newQueueShare("a", peers("process")))
	if !s.takesDue(k, now, nil) || !s.takesWritten(k) {
		t.Error("a replica alone must take every order, held back or not")
	}
	s.share.Store(newQueueShare("a", peers("process", "process")))
	before, _ := s.BreakerState()
	for id := range uint64(50) {
		k := order.Key{Store: "abc", ID: id}
		if s.takesDue(k, now, map[order.Key]time.Time{k: now.Add(-time.Hour)}) || s.takesWritten(k) {
			t.Fatalf("order %v taken by a replica whose breaker holds", k)
		}
	}
	// Asking is not a held run: backorder_supplier_breaker_held_total
	// counts runs only.
	if after, _ := s.BreakerState(); after.Held != before.Held {
		t.Errorf("held runs went from %d to %d by asking whether to take orders", before.Held, after.Held)
	}
}

// dueStore answers Due with its entries, all due.
type dueStore struct {
	Store
	entries []DueEntry
}

func (d *dueStore) Due(context.Context, string, time.Time, int) ([]DueEntry, error) {
	return d.entries, nil
}

// drain returns the orders scheduled since the last drain.
func drain(s *Service) map[order.Key]bool {
	got := map[order.Key]bool{}
	for {
		select {
		case k := <-s.work:
			got[k] = true
			s.mu.Lock()
			delete(s.inflight, k)
			s.mu.Unlock()
		default:
			return got
		}
	}
}

// A replica whose breaker held orders back has left others' orders for
// its own reason, not their owners': when its breaker lets orders go, it
// takes its own share, and others' only once it has seen them left for a
// sweep interval and a half from then. (Before, each replica took the
// whole backlog at the end of its cool-down, and raced the others for
// every lock.)
func TestAHoldingReplicaDoesNotCountOthersOrdersAsLeft(t *testing.T) {
	clock := testclock.New(time.Now())
	st := &dueStore{}
	for id := range uint64(40) {
		st.entries = append(st.entries, DueEntry{Key: order.Key{Store: "abc", ID: id}, Rev: 1})
	}
	s := New(Config{Store: "abc", Mode: order.ModeLive, Breaker: 1, SweepInterval: time.Second, Now: clock.Now},
		st, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.share.Store(newQueueShare("a", peers("all", "all")))
	s.breaker.Record(order.Result{Outcome: order.Ambiguous}, false)
	ctx := context.Background()
	for range 5 {
		s.sweep(ctx)
		if got := drain(s); len(got) != 0 {
			t.Fatalf("a holding replica's sweep took %d orders", len(got))
		}
		clock.Advance(5 * time.Second)
	}
	// The cool-down is over: its own share at once, no other's.
	clock.Advance(BreakerCooldown - 25*time.Second)
	s.sweep(ctx)
	own := drain(s)
	for _, e := range st.entries {
		if mine := owner(e.Key, []string{"a", "b"}) == "a"; mine != own[e.Key] {
			t.Fatalf("order %v: taken %v, its own %v; want only its own share taken", e.Key, own[e.Key], mine)
		}
	}
	if len(own) == 0 {
		t.Fatal("took none of its share")
	}
	clock.Advance(time.Second)
	s.sweep(ctx)
	if got := drain(s); len(got) != len(own) {
		t.Fatalf("a second later: took %d orders, want its own %d again", len(got), len(own))
	}
	// Left for a sweep interval and a half since: the others' too.
	clock.Advance(time.Second)
	s.sweep(ctx)
	if got := drain(s); len(got) != len(st.entries) {
		t.Fatalf("1.5 intervals after the hold: took %d orders, want all %d", len(got), len(st.entries))
	}
}

// A replica whose breaker flaps (open, then closed for less than a sweep
// interval and a half, then open again) still takes the orders of an
// owner that never takes them (hung, or alive only by its lease), once
// they have been left longer than any hold lasts.
func TestAFlappingBreakerStillTakesAHungOwnersOrders(t *testing.T) {
	start := time.Now()
	clock := testclock.New(start)
	st := &dueStore{}
	for id := range uint64(40) {
		st.entries = append(st.entries, DueEntry{Key: order.Key{Store: "abc", ID: id}, Rev: 1})
	}
	s := New(Config{Store: "abc", Mode: order.ModeLive, Breaker: 1, SweepInterval: 10 * time.Second, Now: clock.Now},
		st, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.share.Store(newQueueShare("a", peers("all", "all")))
	s.breaker.Record(order.Result{Outcome: order.Ambiguous}, false)
	ctx := context.Background()
	bound := 15*time.Second + BreakerMaxCooldown
	for ; clock.Now().Sub(start) < 10*time.Minute; clock.Advance(10 * time.Second) {
		holding := s.holdingLive()
		s.sweep(ctx)
		got := drain(s)
		switch {
		case holding:
			if len(got) != 0 {
				t.Fatalf("at %v, holding: took %d orders", clock.Now().Sub(start), len(got))
			}
			continue
		case clock.Now().Sub(start) < bound:
			if len(got) == len(st.entries) {
				t.Fatalf("at %v: took every order, others' too, before they were left %v", clock.Now().Sub(start), bound)
			}
		default:
			if len(got) != len(st.entries) {
				t.Fatalf("at %v: took %d of %d orders; want the hung owner's too", clock.Now().Sub(start), len(got), len(st.entries))
			}
			return
		}
		// Closed for this one sweep: the probe fails, open again.
		s.breaker.Record(order.Result{Outcome: order.Ambiguous}, true)
	}
	t.Fatal("never took the hung owner's orders")
}
