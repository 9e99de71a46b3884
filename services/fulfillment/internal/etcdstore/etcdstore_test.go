package etcdstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

func newStore(t testing.TB, cli *clientv3.Client) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(context.Background(), cli, etcdstore.Options{Prefix: "/t/", LockTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// revision is etcd's current revision: unchanged means nothing was written.
func revision(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	r, err := cli.Get(context.Background(), "any")
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// revokeAllLeases ends every lease, as when processes pause past their TTL.
func revokeAllLeases(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	leases, err := cli.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		if _, err := cli.Revoke(context.Background(), l.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// lockLoaded takes an order's lock (failing within 10 s rather than
// hanging) and loads it; the lock is released when the test ends.
func lockLoaded(t *testing.T, s *etcdstore.Store, k order.Key) (fulfill.Locked, fulfill.Loaded) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lk, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Unlock(context.Background()) })
	loaded, err := lk.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return lk, loaded
}

func ev(key string) order.Event {
	return order.Event{Key: key, Scope: "store/order/created", ReceivedAt: time.Now()}
}

func TestRecordDeliveryIsOnceAndQueues(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "abc", ID: 7}
	for i, want := range []bool{true, false, false} {
		got, queued, err := s.RecordDelivery(ctx, k, ev("h1"), time.Now(), order.SupplierHolds)
		if err != nil || got != want || queued != want {
			t.Fatalf("delivery %d: recorded=%v err=%v, want %v", i, got, err, want)
		}
	}
	if got, _, _ := s.RecordDelivery(ctx, k, ev("h2"), time.Now(), nil); !got {
		t.Fatal("a different event must be recorded")
	}
	r, err := cli.Get(ctx, "/t/deliveries/abc/7/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 2 {
		t.Fatalf("deliveries stored: %v %v, want 2", r.Count, err)
	}
	if r, _ := cli.Get(ctx, "/t/deliveries/abc/7/h1"); r.Kvs[0].Lease == 0 {
		t.Fatal("a delivery must live on a lease, so dedupe keys expire")
	}
	due, err := s.Due(ctx, "abc", time.Now(), 10)
	if err != nil || len(due) != 1 || due[0].Key != k || due[0].Rev == 0 {
		t.Fatalf("due = %v %v, want [%v]", due, err, k)
	}
	o, err := s.Get(ctx, k)
	if err != nil || o.State != order.Received || len(o.Events) != 2 || !o.Pending {
		t.Fatalf("get before processing = %+v, %v", o, err)
	}
	if _, err := s.Get(ctx, order.Key{Store: "abc", ID: 8}); !errors.Is(err, fulfill.ErrNotFound) {
		t.Fatalf("unknown order: %v, want ErrNotFound", err)
	}
}

// A delivery seen before writes nothing; an event of an order the supplier
// has is remembered but queues no work.
func TestRecordDeliveryFastPaths(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "abc", ID: 9}
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("a"), time.Now(), order.SupplierHolds); err != nil || !rec || !queued {
		t.Fatalf("first delivery: recorded=%v queued=%v err=%v", rec, queued, err)
	}
	lk, _ := lockLoaded(t, s, k)
	o := order.New(k, time.Now())
	o.State, o.OfflineOrderID = order.Submitted, "TS-1"
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatal(err)
	}
	lk.Unlock(ctx)

	before := revision(t, cli)
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("a"), time.Now(), order.SupplierHolds); err != nil || rec || queued {
		t.Fatalf("duplicate: recorded=%v queued=%v err=%v", rec, queued, err)
	}
	if after := revision(t, cli); after != before {
		t.Fatalf("a duplicate wrote to etcd: revision %d -> %d", before, after)
	}
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("b"), time.Now(), order.SupplierHolds); err != nil || !rec || queued {
		t.Fatalf("new event of a SUBMITTED order: recorded=%v queued=%v err=%v, want recorded and not queued", rec, queued, err)
	}
	if due, _ := s.Due(ctx, "abc", time.Now(), 10); len(due) != 0 {
		t.Fatalf("queue = %v, want empty", due)
	}
	if got, _ := s.Get(ctx, k); len(got.Events) != 2 || got.State != order.Submitted {
		t.Fatalf("record = %+v, want SUBMITTED with both events", got)
	}
}

func TestDueSkipsFutureWork(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	now := time.Now()
	s.RecordDelivery(ctx, order.Key{Store: "s", ID: 1}, ev("a"), now.Add(-time.Second), nil)
	s.RecordDelivery(ctx, order.Key{Store: "s", ID: 2}, ev("b"), now.Add(time.Hour), nil)
	// Other stores sharing the etcd, one whose hash starts with this one's.
	s.RecordDelivery(ctx, order.Key{Store: "other", ID: 3}, ev("c"), now.Add(-time.Second), nil)
	s.RecordDelivery(ctx, order.Key{Store: "s2", ID: 4}, ev("d"), now.Add(-time.Second), nil)
	due, err := s.Due(ctx, "s", now, 10)
	if err != nil || len(due) != 1 || due[0].Key != (order.Key{Store: "s", ID: 1}) {
		t.Fatalf("due = %v %v, want only order 1 of store s", due, err)
	}
}

// A new event never makes an order due sooner than it was (a backoff, a
// lookup's wait, the breaker's hold): it is remembered, not queued for a
// run now. Its entry still changes revision, so a run that loaded the entry
// before the event cannot take the order off the queue and lose it.
func TestRecordDeliveryKeepsALaterDueTime(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	now := time.Now()
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("e1"), now, nil); err != nil || !rec || !queued {
		t.Fatalf("first event: recorded=%v queued=%v err=%v", rec, queued, err)
	}
	// A run holds the order and puts it off for an hour.
	lk, _ := lockLoaded(t, s, k)
	later := now.Add(time.Hour)
	if err := lk.SaveAndUnlock(ctx, order.New(k, now), fulfill.QueueOp{At: later}); err != nil {
		t.Fatal(err)
	}
	lk.Unlock(ctx)
	dueAt := func() string {
		t.Helper()
		r, err := cli.Get(ctx, "/t/queue/s/1")
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("queue entry: %v %v", r, err)
		}
		return string(r.Kvs[0].Value)
	}
	want := dueAt()

	// A run that loaded the entry is still going when the next event comes.
	lk, loaded := lockLoaded(t, s, k)
	if !loaded.Queued {
		t.Fatal("load: not queued")
	}
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("e2"), now.Add(time.Second), nil); err != nil || !rec || queued {
		t.Fatalf("event of an order due later: recorded=%v queued=%v err=%v; want recorded, not queued", rec, queued, err)
	}
	if got := dueAt(); got != want {
		t.Fatalf("due time moved from %s to %s", want, got)
	}
	if due, _ := s.Due(ctx, "s", now.Add(time.Minute), 10); len(due) != 0 {
		t.Fatalf("due within the hour: %v, want none", due)
	}
	// The run ends (an operator's ProcessOrder found the order not payable,
	// say): the event it did not see is looked at now, not in an hour.
	if err := lk.SaveAndUnlock(ctx, order.New(k, now), fulfill.QueueOp{Done: true, At: now}); err != nil {
		t.Fatal(err)
	}
	lk.Unlock(ctx)
	if due, _ := s.Due(ctx, "s", now, 10); len(due) != 1 {
		t.Fatalf("after the run's Done: due now = %v; the newer event's entry must survive, due at once", due)
	}
	want = dueAt()

	// An entry due sooner than the event's time is moved to it, as before,
	// and the event queues work.
	if rec, queued, err := s.RecordDelivery(ctx, k, ev("e3"), now.Add(time.Minute), nil); err != nil || !rec || !queued {
		t.Fatalf("event due after the entry: recorded=%v queued=%v err=%v", rec, queued, err)
	}
	if got := dueAt(); got <= want {
		t.Fatalf("due %s, want after %s", got, want)
	}
}

func TestSaveIsFencedByRecordRevision(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	lk, _ := lockLoaded(t, s, k)
	// Someone writes the record behind the holder's back.
	if _, err := cli.Put(ctx, "/t/orders/s/1", `{"state":4}`); err != nil {
		t.Fatal(err)
	}
	err := lk.Save(ctx, order.New(k, time.Now()), fulfill.QueueOp{})
	if !errors.Is(err, fulfill.ErrFenced) {
		t.Fatalf("save after a foreign write = %v, want ErrFenced", err)
	}
}

func TestSaveIsFencedWhenTheLeaseIsGone(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	a := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	la, err := a.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := la.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// A's lease ends (as when its process pauses past the TTL): its lock
	// key disappears and B takes the order.
	revokeAllLeases(t, cli) // A's and B's sessions alike
	b2 := newStore(t, cli)
	lb, err := b2.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Unlock(ctx)
	if _, err := lb.Load(ctx); err != nil {
		t.Fatal(err)
	}
	err = la.Save(ctx, order.New(k, time.Now()), fulfill.QueueOp{})
	if !errors.Is(err, fulfill.ErrFenced) && !errors.Is(err, fulfill.ErrLockLost) {
		t.Fatalf("stale holder's save = %v, want ErrFenced or ErrLockLost", err)
	}
	if err := lb.Save(ctx, order.New(k, time.Now()), fulfill.QueueOp{}); err != nil {
		t.Fatalf("new holder's save: %v", err)
	}
}

func TestQueueDoneKeepsAnEventThatArrivedMeanwhile(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	k := order.Key{Store: "s", ID: 1}
	s.RecordDelivery(ctx, k, ev("e1"), time.Now(), nil)
	lk, _ := s.Lock(ctx, k)
	defer lk.Unlock(ctx)
	l, _ := lk.Load(ctx)
	if !l.Queued || len(l.Events) != 1 {
		t.Fatalf("load = %+v", l)
	}
	s.RecordDelivery(ctx, k, ev("e2"), time.Now(), nil) // arrives mid-processing
	o := order.New(k, time.Now())
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "s", time.Now(), 10); len(due) != 1 {
		t.Fatal("the queue entry of a newer event must survive Done")
	}
	// The next run sees it. Another event comes, and the run reads the
	// order back (as after a write whose answer was lost): that does not
	// count the event as seen.
	lk.Unlock(ctx)
	lk, _ = s.Lock(ctx, k)
	defer lk.Unlock(ctx)
	l, _ = lk.Load(ctx)
	s.RecordDelivery(ctx, k, ev("e3"), time.Now(), nil)
	if _, err := lk.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "s", time.Now(), 10); len(due) != 1 {
		t.Fatal("the queue entry of an event that came before a second Load must survive Done")
	}
	// A run that sees every event takes the order off the queue.
	lk.Unlock(ctx)
	lk, _ = s.Lock(ctx, k)
	defer lk.Unlock(ctx)
	l, _ = lk.Load(ctx)
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "s", time.Now(), 10); len(due) != 0 {
		t.Fatalf("queue after Done = %v, want empty", due)
	}
}

// An event recorded after Load and before the run's intent (which
// reschedules the entry, and so hides the event's own revision) still keeps
// the order queued when the run ends with Done.
func TestQueueDoneKeepsAnEventThatArrivedBeforeTheIntent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	k := order.Key{Store: "s", ID: 1}
	now := time.Now()
	s.RecordDelivery(ctx, k, ev("e1"), now, nil)
	lk, _ := lockLoaded(t, s, k)
	s.RecordDelivery(ctx, k, ev("e2"), now.Add(time.Second), nil) // arrives mid-run
	o := order.New(k, now)
	if err := lk.Save(ctx, o, fulfill.QueueOp{At: now.Add(10 * time.Second)}); err != nil { // the intent
		t.Fatal(err)
	}
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true, At: now}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "s", now, 10); len(due) != 1 {
		t.Fatalf("queue after Done = %v; the event that came before the intent must keep the order queued, due now", due)
	}
	// A run with no event meanwhile takes it off the queue, intent or not.
	lk.Unlock(ctx)
	lk, _ = lockLoaded(t, s, k)
	if err := lk.Save(ctx, o, fulfill.QueueOp{At: now.Add(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := lk.Save(ctx, o, fulfill.QueueOp{Done: true, At: now}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(ctx, "s", now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("queue after an undisturbed run's Done = %v, want empty", due)
	}
}

func TestListByStateAndPages(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	now := time.Now()
	for i := 1; i <= 7; i++ {
		k := order.Key{Store: "s", ID: uint64(i)}
		lk, err := s.Lock(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		lk.Load(ctx)
		o := order.New(k, now)
		if err := lk.Save(ctx, o, fulfill.QueueOp{}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // even orders move on: the index must follow
			o.IneligibleReason = "test"
			o.Transition(order.Ineligible, now)
			if err := lk.Save(ctx, o, fulfill.QueueOp{}); err != nil {
				t.Fatal(err)
			}
		}
		lk.Unlock(ctx)
	}
	count := func(f fulfill.ListFilter) (n int, pages int) {
		for {
			os, next, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			n, pages = n+len(os), pages+1
			for _, o := range os {
				if f.State != order.StateUnspecified && o.State != f.State {
					t.Fatalf("listed %v in %v", o.State, f.State)
				}
				if f.Pending && !o.Pending {
					t.Fatalf("listed %v, not pending, as pending", o.Key)
				}
			}
			if next == "" {
				return n, pages
			}
			f.PageToken = next
		}
	}
	// Queued for work: an order with a record, one whose event is
	// recorded but not yet processed (no record), another store's.
	for _, k := range []order.Key{{Store: "s", ID: 1}, {Store: "s", ID: 8}, {Store: "t", ID: 1}} {
		if _, _, err := s.RecordDelivery(ctx, k, ev("p"), now, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		f     fulfill.ListFilter
		n     int
		pages int
	}{
		{fulfill.ListFilter{Pending: true, PageSize: 2}, 3, 2},
		{fulfill.ListFilter{Pending: true, Store: "s"}, 2, 1},
		{fulfill.ListFilter{Pending: true, Store: "s", State: order.Received}, 2, 1},
		{fulfill.ListFilter{Pending: true, State: order.Ineligible}, 0, 1},
		{fulfill.ListFilter{PageSize: 3}, 7, 3},
		{fulfill.ListFilter{State: order.Ineligible, PageSize: 2}, 3, 2},
		{fulfill.ListFilter{State: order.Received, Store: "s", PageSize: 10}, 4, 1},
		{fulfill.ListFilter{Store: "other"}, 0, 1},
	} {
		if n, p := count(c.f); n != c.n || p != c.pages {
			t.Errorf("%+v: %d orders in %d pages, want %d in %d", c.f, n, p, c.n, c.pages)
		}
	}
	if _, _, err := s.List(ctx, fulfill.ListFilter{PageToken: "!!"}); !errors.Is(err, fulfill.ErrBadPageToken) {
		t.Fatalf("bad token: %v", err)
	}
}

// A concurrency.Mutex of one session does not exclude another goroutine of
// the same process (they share the key): the store must.
func TestLockExcludesGoroutinesOfOneProcess(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	k := order.Key{Store: "s", ID: 1}
	first, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan fulfill.Locked)
	go func() {
		l, err := s.Lock(ctx, k)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("a second goroutine took a lock that is held")
	case <-time.After(200 * time.Millisecond):
	}
	first.Unlock(ctx)
	second := <-got
	second.Unlock(ctx)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	held, _ := s.Lock(ctx, k)
	defer held.Unlock(ctx)
	if _, err := s.Lock(cctx, k); err == nil {
		t.Fatal("Lock with a cancelled context must fail while the lock is held")
	}
}

// After its lease is lost, the store starts a new session by itself: the
// process goes on working without a restart.
func TestLockSessionIsRenewedAfterLeaseLoss(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	old, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	old.Load(ctx)
	revokeAllLeases(t, cli)
	<-old.Done() // the keep-alive notices the lease is gone
	if err := old.Save(ctx, order.New(k, time.Now()), fulfill.QueueOp{}); err == nil {
		t.Fatal("a save under a lost session succeeded")
	}
	old.Unlock(ctx)
	lk, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatalf("lock after renewal: %v", err)
	}
	defer lk.Unlock(ctx)
	lk.Load(ctx)
	if err := lk.Save(ctx, order.New(k, time.Now()), fulfill.QueueOp{}); err != nil {
		t.Fatalf("save under the new session: %v", err)
	}
}

// TryLock never waits: an order held in this process or another is
// reported as ErrLocked at once.
func TestTryLock(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	a, b := newStore(t, cli), newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	held, err := a.TryLock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.TryLock(ctx, k); !errors.Is(err, fulfill.ErrLocked) {
		t.Fatalf("same process: %v, want ErrLocked", err)
	}
	if _, err := b.TryLock(ctx, k); !errors.Is(err, fulfill.ErrLocked) {
		t.Fatalf("other process: %v, want ErrLocked", err)
	}
	held.Unlock(ctx)
	lk, err := b.TryLock(ctx, k)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	lk.Unlock(ctx)
}

// SaveAndUnlock writes and releases in one transaction: another process's
// waiting Lock goes on, and the later Unlock writes nothing.
func TestSaveAndUnlockReleasesInTheSameWrite(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	a, b := newStore(t, cli), newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	la, err := a.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := la.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		lb, err := b.Lock(ctx, k)
		if err == nil {
			err = lb.Unlock(ctx)
		}
		got <- err
	}()
	o := order.New(k, time.Now())
	o.State = order.Ineligible
	if err := la.SaveAndUnlock(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the other process's Lock after SaveAndUnlock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("10 s after SaveAndUnlock the other process's Lock still waits: the write did not release the mutex key")
	}
	before := revision(t, cli)
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if revision(t, cli) != before {
		t.Fatal("Unlock after SaveAndUnlock wrote to etcd")
	}
	if rec, err := a.Get(ctx, k); err != nil || rec.State != order.Ineligible {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	// The process-local lock is free again too.
	if l, err := a.TryLock(ctx, k); err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	} else {
		l.Unlock(ctx)
	}
}

// The deliveries' shared lease can end (revoked, or expired while etcd was
// away): the next delivery takes a new lease and is recorded.
func TestRecordDeliveryAfterTheSharedLeaseEnded(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	if rec, _, err := s.RecordDelivery(ctx, k, ev("a"), time.Now(), nil); err != nil || !rec {
		t.Fatalf("first delivery: %v %v", rec, err)
	}
	revokeAllLeases(t, cli)
	if rec, _, err := s.RecordDelivery(ctx, k, ev("b"), time.Now(), nil); err != nil || !rec {
		t.Fatalf("delivery after the lease ended: recorded=%v err=%v", rec, err)
	}
	if r, _ := cli.Get(ctx, "/t/deliveries/s/1/b"); len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
		t.Fatalf("the new delivery must be stored on a (new) lease: %v", r.Kvs)
	}
}

// A shutdown signal ends the context the store was opened with; the lock
// session must outlive it, so that a run in flight keeps its lock until it
// has stored the supplier's answer. Only Close ends the session.
func TestSessionOutlivesItsContextUntilClose(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t))
	ctx, signal := context.WithCancel(context.Background())
	s, err := etcdstore.New(ctx, cli, etcdstore.Options{Prefix: "/t/", LockTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	k := order.Key{Store: "abc", ID: 9}
	lk, err := s.Lock(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	signal()
	// The session's keep-alive would stop at once if it ran on ctx; a
	// fenced write proves the lock is still owned after the signal.
	select {
	case <-lk.Done():
		t.Fatal("the lock was lost when the store's context ended")
	case <-time.After(200 * time.Millisecond):
	}
	if err := lk.Check(context.Background()); err != nil {
		t.Fatalf("Check after the signal: %v", err)
	}
	if err := lk.Save(context.Background(), order.New(k, time.Now()), fulfill.QueueOp{Done: true}); err != nil {
		t.Fatalf("fenced save after the signal: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lk.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the lock session")
	}
}

// One process at a time holds a store's orders sweep; what it finishes with
// is what the next holder reads; a holder whose lease ended stores nothing.
func TestSweepClaimIsExclusiveAndFenced(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	a, b := newStore(t, cli), newStore(t, etcdtest.Client(t, ep))
	wa, err := a.BeginSweep(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.BeginSweep(ctx, "abc"); !errors.Is(err, fulfill.ErrLocked) {
		t.Fatalf("second claim: %v, want ErrLocked", err)
	}
	if _, err := a.BeginSweep(ctx, "abc"); !errors.Is(err, fulfill.ErrLocked) {
		t.Fatalf("second claim in the same process: %v, want ErrLocked", err)
	}
	cursor := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	if err := wa.Finish(ctx, fulfill.SweepState{Cursor: cursor, LastRun: cursor, Listed: 3}); err != nil {
		t.Fatal(err)
	}
	wb, err := b.BeginSweep(ctx, "abc")
	if err != nil {
		t.Fatalf("claim after Finish: %v", err)
	}
	if st := wb.State(); !st.Cursor.Equal(cursor) || st.Listed != 3 {
		t.Fatalf("state read %+v, want the one finished", st)
	}
	revokeAllLeases(t, cli)
	if err := wb.Finish(ctx, fulfill.SweepState{Cursor: cursor.Add(time.Hour)}); !errors.Is(err, fulfill.ErrFenced) {
		t.Fatalf("Finish after the lease ended: %v, want ErrFenced", err)
	}
	// The revoked session is replaced once the process notices its end.
	var wc fulfill.Sweep
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if wc, err = a.BeginSweep(ctx, "abc"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no claim after the lease ended: %v", err)
		}
	}
	defer wc.Release(ctx)
	if st := wc.State(); !st.Cursor.Equal(cursor) {
		t.Fatalf("a fenced Finish stored %+v", st)
	}
}

// CountOrders counts one store's records: deployments of other stores may
// share the etcd and the prefix.
func TestCountOrdersIsPerStore(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	for _, k := range []string{
		"/t/index/state/SUBMITTED/abc/1", "/t/index/state/SUBMITTED/abc/2", "/t/index/state/NEEDS_REVIEW/abc/3",
		"/t/index/state/NEEDS_REVIEW/other/9", "/t/queue/abc/3", "/t/queue/other/9", "/t/queue/other/10",
	} {
		if _, err := cli.Put(ctx, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	by, queued, err := s.CountOrders(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if by[order.Submitted] != 2 || by[order.NeedsReview] != 1 || by[order.Failed] != 0 || queued != 1 {
		t.Fatalf("counts %v, queued %d; want 2 SUBMITTED, 1 NEEDS_REVIEW, 1 queued, none of the other store's", by, queued)
	}
}

// An order whose events were recorded and whose dedupe keys have expired
// (72 h) before it was processed has only its queue entry left: it is
// still shown, as received and pending, and listed as pending.
func TestQueuedOrderWithoutRecordOrDeliveriesIsShown(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 5}
	if _, err := cli.Put(ctx, "/t/queue/s/5", "0"); err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(ctx, k)
	if err != nil || o.State != order.Received || !o.Pending {
		t.Fatalf("Get = %+v, %v; want RECEIVED and pending", o, err)
	}
	got, _, err := s.List(ctx, fulfill.ListFilter{Pending: true})
	if err != nil || len(got) != 1 || got[0].Key != k {
		t.Fatalf("pending list = %v, %v; want order 5", got, err)
	}
	if _, err := s.Get(ctx, order.Key{Store: "s", ID: 6}); !errors.Is(err, fulfill.ErrNotFound) {
		t.Fatalf("an order with nothing stored: %v, want ErrNotFound", err)
	}
}

// Closing the store with etcd gone gives up on revoking the lock lease after
// LOCK_TTL (the lease lapses by itself then), not after etcd's default of a
// minute, which outlasts a shutdown's grace period and gets the process
// killed.
func TestCloseWithEtcdGoneIsBoundedByTheLockTTL(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	s, err := etcdstore.New(context.Background(), c.Client(), etcdstore.Options{Prefix: "/t/", LockTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Close() }()
	defer func() { t.Logf("Close took %v", time.Since(start)) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close with etcd stopped still waiting after 30 s; LOCK_TTL is 1 s")
	}
}
