package etcdstore

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// inStep reports whether the counts follow the watches (not the direct
// count Get falls back to), and up to which revision.
func (c *Counts) inStep() (bool, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchCtx == nil {
		return false, 0
	}
	return true, c.upTo()
}

// awaitInStep waits until the counts follow the watches past revision rev.
func awaitInStep(t *testing.T, c *Counts, rev int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, upTo := c.inStep(); ok && upTo > rev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the counts do not follow etcd past revision %d after 30 s", rev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkCounts asserts that Get, read at once after the last write, gives
// want (states not named are 0) from the watches, and the same as a direct
// count.
func checkCounts(t *testing.T, s *Store, c *Counts, want map[order.State]int64, wantQueued int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	by, queued, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.inStep(); !ok {
		t.Fatal("counts are not following the watches")
	}
	direct, directQueued, err := s.CountOrders(ctx, c.store)
	if err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(by, func(_ order.State, n int64) bool { return n == 0 })
	maps.DeleteFunc(direct, func(_ order.State, n int64) bool { return n == 0 })
	if !maps.Equal(by, want) || queued != wantQueued {
		t.Fatalf("counts %v, queued %d; want %v, queued %d", by, queued, want, wantQueued)
	}
	if !maps.Equal(by, direct) || queued != directQueued {
		t.Fatalf("watched counts %v, queued %d; counted directly %v, queued %d", by, queued, direct, directQueued)
	}
}

func newCountsStore(t *testing.T, cli *clientv3.Client) *Store {
	t.Helper()
	s, err := New(context.Background(), cli, Options{Prefix: "/t/", LockTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// followedCounts returns store abc's counts, following from the first Get
// on, which it makes. A read waits as long as it takes for the watches to
// catch up, however slow the machine: the tests' reads must come from them.
func followedCounts(t *testing.T, s *Store, log *slog.Logger) *Counts {
	t.Helper()
	c := s.OrderCounts("abc", log)
	c.followAbove, c.progressWait = -1, time.Hour
	t.Cleanup(c.Close)
	if _, _, err := c.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// saveAs moves an order's record to state st under its lock; done also
// takes its queue entry off.
func saveAs(t *testing.T, s *Store, k order.Key, st order.State, done bool) {
	t.Helper()
	ctx := context.Background()
	lk, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock(ctx)
	l, err := lk.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := l.Order
	if o == nil {
		o = order.New(k, time.Now())
	}
	o.State = st
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: done}); err != nil {
		t.Fatal(err)
	}
}

// The counts follow every change to the state index and the queue, and a
// read right after a write includes it: no polling, no lag.
func TestCountsFollowEveryChange(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newCountsStore(t, cli)
	now := time.Now()
	// Written before the counts start: found by their first count.
	s.RecordDelivery(ctx, order.Key{Store: "abc", ID: 1}, order.Event{Key: "e1"}, now, nil)
	saveAs(t, s, order.Key{Store: "abc", ID: 1}, order.Submitting, false)

	c := followedCounts(t, s, slog.New(slog.DiscardHandler))
	awaitInStep(t, c, 0)
	checkCounts(t, s, c, map[order.State]int64{order.Submitting: 1}, 1)

	for id := uint64(2); id <= 4; id++ {
		s.RecordDelivery(ctx, order.Key{Store: "abc", ID: id}, order.Event{Key: "e1"}, now, nil)
	}
	checkCounts(t, s, c, map[order.State]int64{order.Submitting: 1}, 4)

	saveAs(t, s, order.Key{Store: "abc", ID: 1}, order.Submitted, true)
	checkCounts(t, s, c, map[order.State]int64{order.Submitted: 1}, 3)

	saveAs(t, s, order.Key{Store: "abc", ID: 2}, order.Received, false)
	saveAs(t, s, order.Key{Store: "abc", ID: 2}, order.NeedsReview, true)
	saveAs(t, s, order.Key{Store: "abc", ID: 3}, order.RetryScheduled, false)
	checkCounts(t, s, c, map[order.State]int64{order.Submitted: 1, order.NeedsReview: 1, order.RetryScheduled: 1}, 2)

	// A put over an existing key (a queue entry's new due time, an index
	// key written again) counts nothing twice.
	s.RecordDelivery(ctx, order.Key{Store: "abc", ID: 3}, order.Event{Key: "e2"}, now, nil)
	if _, err := cli.Put(ctx, "/t/index/state/SUBMITTED/abc/1", ""); err != nil {
		t.Fatal(err)
	}
	// Another store's records, in the same etcd and prefix, are not ours.
	for _, k := range []string{"/t/index/state/SUBMITTED/other/1", "/t/queue/other/1", "/t/index/state/SUBMITTED/abcd/1"} {
		if _, err := cli.Put(ctx, k, ""); err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, s, c, map[order.State]int64{order.Submitted: 1, order.NeedsReview: 1, order.RetryScheduled: 1}, 2)

	// Nothing changed since the last read: the watches are moved forward
	// by a progress notification, not by a change.
	checkCounts(t, s, c, map[order.State]int64{order.Submitted: 1, order.NeedsReview: 1, order.RetryScheduled: 1}, 2)
}

// A watch that lags behind etcd's compaction (its member was away, its
// stream was slow) is refused: the counts are taken again and followed
// from there, and meanwhile Get counts directly.
func TestCountsAreTakenAgainAfterACompaction(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newCountsStore(t, cli)
	s.RecordDelivery(ctx, order.Key{Store: "abc", ID: 1}, order.Event{Key: "e1"}, time.Now(), nil)
	// Between the first count and the watches: changes, then a compaction
	// past the count's revision, so the watches start on history that is
	// gone.
	var compactedAt int64
	compacted := make(chan struct{})
	testHookAfterCount = func() {
		defer close(compacted)
		testHookAfterCount = nil
		var rev int64
		for _, k := range []string{"/t/queue/abc/2", "/t/queue/abc/3", "/t/index/state/FAILED/abc/2"} {
			r, err := cli.Put(ctx, k, "0")
			if err != nil {
				panic(err)
			}
			rev = r.Header.Revision
		}
		if _, err := cli.Delete(ctx, "/t/queue/abc/1"); err != nil {
			panic(err)
		}
		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			panic(err)
		}
		compactedAt = rev
	}
	t.Cleanup(func() { testHookAfterCount = nil })
	var logged bytes.Buffer
	c := followedCounts(t, s, slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil)))

	<-compacted
	// Whether or not the counts follow etcd again yet, Get is right.
	by, queued, err := c.Get(ctx)
	if err != nil || by[order.Failed] != 1 || queued != 2 {
		t.Fatalf("Get = %v, %d, %v; want 1 FAILED, 2 queued", by, queued, err)
	}
	awaitInStep(t, c, compactedAt)
	if !strings.Contains(logged.String(), "compacted") {
		t.Fatalf("log %q; want the compacted watch named", logged.String())
	}
	checkCounts(t, s, c, map[order.State]int64{order.Failed: 1}, 2)
	if _, err := cli.Put(ctx, "/t/queue/abc/4", "0"); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, c, map[order.State]int64{order.Failed: 1}, 3)
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// A store with few records is counted directly, and watched once a count
// finds more than followAbove keys.
func TestCountsAreFollowedOnceTheStoreIsLarge(t *testing.T) {
	ctx := context.Background()
	s := newCountsStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	c := s.OrderCounts("abc", slog.New(slog.DiscardHandler))
	c.followAbove, c.progressWait = 3, time.Hour
	t.Cleanup(c.Close)
	for id := uint64(1); id <= 4; id++ {
		s.RecordDelivery(ctx, order.Key{Store: "abc", ID: id}, order.Event{Key: "e1"}, time.Now(), nil)
		_, queued, err := c.Get(ctx)
		if err != nil || queued != int64(id) {
			t.Fatalf("Get with %d queued = %d, %v", id, queued, err)
		}
		if following := c.following; following != (id > 3) {
			t.Fatalf("with %d keys following = %v; want it past 3", id, following)
		}
	}
	awaitInStep(t, c, 0)
	saveAs(t, s, order.Key{Store: "abc", ID: 1}, order.Submitted, true)
	checkCounts(t, s, c, map[order.State]int64{order.Submitted: 1}, 3)
}

// Watches that stop delivering without an error (their member was cut off
// from the others and kept the stream) leave reads to count directly, and
// after a few such reads the follower counts and watches again.
func TestCountsWatchAgainWhenTheWatchesFallSilent(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newCountsStore(t, cli)
	var logged bytes.Buffer
	c := followedCounts(t, s, slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil)))
	awaitInStep(t, c, 0)

	// The watches will not catch up, however long a read waits: a short
	// wait keeps the test short.
	c.progressWait = 100 * time.Millisecond
	silent := make(chan struct{})
	var once sync.Once
	block := func() { <-silent }
	testHookApply.Store(&block)
	t.Cleanup(func() { once.Do(func() { close(silent) }); testHookApply.Store(nil) })
	s.RecordDelivery(ctx, order.Key{Store: "abc", ID: 1}, order.Event{Key: "e1"}, time.Now(), nil)
	for i := range stallsToRewatch {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, queued, err := c.Get(rctx)
		cancel()
		if err != nil || queued != 1 {
			t.Fatalf("read %d with the watches silent = %d queued, %v; want 1 (counted directly)", i+1, queued, err)
		}
	}
	if ok, _ := c.inStep(); ok {
		t.Fatalf("after %d reads the watches did not answer, the follower still uses them", stallsToRewatch)
	}
	once.Do(func() { close(silent) })
	awaitInStep(t, c, revision(t, cli))
	if !strings.Contains(logged.String(), "no answer from the watches") {
		t.Fatalf("log %q; want the silent watches named", logged.String())
	}
	saveAs(t, s, order.Key{Store: "abc", ID: 1}, order.NeedsReview, true)
	checkCounts(t, s, c, map[order.State]int64{order.NeedsReview: 1}, 0)
}

func revision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	r, err := cli.Get(context.Background(), "any")
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision - 1
}
