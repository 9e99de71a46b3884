package fulfill_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// discard is a logger that writes nothing.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// within waits for ch, failing the test after a generous guard time.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("after 30 s still waiting for %s", what)
	}
}

// Step 7: the intent (SUBMITTING, live, the deterministic reference, the
// call's deadline, and queued) is stored before the supplier is called, so
// that whoever holds the order next knows an attempt may have been made,
// even when this process dies during the call.
func TestIntentIsStoredBeforeTheSupplierIsCalled(t *testing.T) {
	sup := &held{supplier: supplier{live: map[string]int{}}, entered: make(chan struct{}), release: make(chan struct{})}
	svc, _, _ := runService(t, &storefront{status: map[uint64]uint32{21: 11}}, sup)
	ctx := context.Background()
	k := order.Key{Store: "abc", ID: 21}
	if _, err := svc.Intake(ctx, delivery(21, "store/order/created", 0, "h21")); err != nil {
		t.Fatal(err)
	}
	within(t, sup.entered, "the live call")
	o, err := svc.Get(ctx, k) // read while the supplier has the call
	close(sup.release)
	if err != nil {
		t.Fatal(err)
	}
	if o.State != order.Submitting || o.Mode != order.ModeLive || o.Reference != "BC-abc-21" || o.Attempts != 1 ||
		!o.Pending || o.CallDeadline.IsZero() || !o.CallDeadline.After(o.UpdatedAt) {
		t.Fatalf("record during the live call: state %v mode %v reference %q attempts %d pending %v call deadline %v (updated %v); "+
			"want SUBMITTING, live, BC-abc-21, 1, queued, and a deadline after the intent",
			o.State, o.Mode, o.Reference, o.Attempts, o.Pending, o.CallDeadline, o.UpdatedAt)
	}
	h := &harness{svc: []*fulfill.Service{svc}}
	h.waitState(t, k, order.Submitted)
}

// guardedHeld is a supplier whose live calls wait until released and then,
// as the TropShip client does right before a request that can create an
// order leaves, run the context's send guard: the order is created only
// when the guard passes; otherwise nothing is sent.
type guardedHeld struct {
	mu               sync.Mutex
	live             map[string]int
	refused, lookups int
	entered, release chan struct{}
}

func (s *guardedHeld) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	if validateOnly {
		return order.Result{Outcome: order.Valid}
	}
	close(s.entered)
	select {
	case <-s.release:
	case <-ctx.Done():
		return order.Result{Outcome: order.NotSent, Reason: "nothing sent: " + ctx.Err().Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fulfill.CheckSendGuard(ctx); err != nil {
		s.refused++
		return order.Result{Outcome: order.NotSent, Reason: "nothing sent: refused before sending: " + err.Error()}
	}
	s.live[sub.Reference]++
	return order.Result{Outcome: order.Created, OfflineOrderID: "TS-" + sub.Reference}
}

func (s *guardedHeld) Lookup(context.Context, string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	return "", false, errors.New("no lookup in this test")
}

// Fencing: a holder that lost its mutex while its live call waited (for a
// token, or paused), though its session lives on, does not send. The flow
// guards every live call with the lock, asked of etcd right before the
// request leaves; a holder that is not asked might send an order that the
// mutex's next holder sends too.
func TestLiveCallIsNotSentByAHolderThatLostItsMutex(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	sup := &guardedHeld{live: map[string]int{}, entered: make(chan struct{}), release: make(chan struct{})}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, newStore(t, ep), &storefront{status: map[uint64]uint32{22: 11}}, sup, discard())
	k := order.Key{Store: "abc", ID: 22}
	done := make(chan error, 1)
	go func() {
		_, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
		done <- err
	}()
	within(t, sup.entered, "the live call")
	// The holder's mutex key goes while the call waits; its session lives.
	r, err := cli.Delete(ctx, "/t/locks/abc/22/", clientv3.WithPrefix())
	close(sup.release)
	if err != nil || r.Deleted != 1 {
		t.Fatalf("delete the order's mutex key: %v deleted, %v; want 1", r, err)
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end 30 s after its call was released")
	}
	sup.mu.Lock()
	live, refused := sup.live["BC-abc-22"], sup.refused
	sup.mu.Unlock()
	if live != 0 || refused != 1 {
		t.Fatalf("a holder without its mutex sent the order: %d live orders, %d calls refused by the guard; want 0 and 1", live, refused)
	}
	if !errors.Is(runErr, fulfill.ErrFenced) && !errors.Is(runErr, fulfill.ErrLockLost) {
		t.Errorf("run that lost its mutex returned %v, want ErrFenced or ErrLockLost", runErr)
	}
	if o, err := svc.Get(ctx, k); err != nil || o.State == order.Submitted || o.OfflineOrderID != "" {
		t.Fatalf("after the fenced run the order is %+v (err %v); want not SUBMITTED", o, err)
	}
}

// stuckWrites is a storefront whose metafield writes, while stuck, never
// answer until their caller gives up; unstuck, it writes like storefront.
type stuckWrites struct {
	storefront
	stuck   atomic.Bool
	once    sync.Once
	entered chan struct{}
}

func (s *stuckWrites) SetSupplierReference(ctx context.Context, k order.Key, id string) error {
	if !s.stuck.Load() {
		return s.storefront.SetSupplierReference(ctx, k, id)
	}
	s.once.Do(func() { close(s.entered) })
	<-ctx.Done()
	return &fulfill.RetryableError{Err: ctx.Err()}
}

// Step 9 follows step 8 with the order still queued: a write-back cut off
// (the caller went away, a shutdown) leaves the order SUBMITTED and
// queued, and a later run writes the id back without sending anything.
// Taken off the queue, the id would never reach the BigCommerce order.
func TestWriteBackCutOffLeavesTheOrderQueued(t *testing.T) {
	st := newStore(t, etcdtest.Start(t))
	sf := &stuckWrites{storefront: storefront{status: map[uint64]uint32{23: 11}}, entered: make(chan struct{})}
	sf.stuck.Store(true)
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), WriteBack: true,
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, sf, sup, discard())
	k := order.Key{Store: "abc", ID: 23}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
	}()
	within(t, sf.entered, "the write-back")
	cancel() // the caller goes away during the write-back
	within(t, done, "the run to end after its caller went away")

	bg := context.Background()
	o, err := svc.Get(bg, k)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := sf.ref(23)
	if o.State != order.Submitted || o.OfflineOrderID != "TS-BC-abc-23-1" || !o.Pending || ref != "" {
		t.Fatalf("after a cut-off write-back: state %v id %q pending %v metafield %q; want SUBMITTED with its id, still queued, metafield not written",
			o.State, o.OfflineOrderID, o.Pending, ref)
	}
	// The queued work (as a sweep would find it) writes the id back.
	sf.stuck.Store(false)
	if o, err = svc.Process(bg, k, fulfill.ProcessOptions{NoWait: true}); err != nil || o == nil || o.State != order.WrittenBack {
		t.Fatalf("queued run after the cut-off write-back: %+v, %v; want WRITTEN_BACK", o, err)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if ref, _ := sf.ref(23); ref != "TS-BC-abc-23-1" || sup.live["BC-abc-23"] != 1 {
		t.Fatalf("metafield %q, supplier orders %v; want the id written back and one live order", ref, sup.live)
	}
}

// Ambiguity is never guessed away: an order left SUBMITTING by a holder
// that was interrupted is not looked up, let alone resent, before that
// holder's call deadline has passed (plus the settle delay), since until
// then the holder may still be sending it and a lookup could say "not
// there" just before the supplier creates it. That holds too when the
// record still carries the due time of an earlier failure (a retry's
// backoff, a BigCommerce read), which is long past.
func TestInterruptedLiveCallIsNotLookedUpBeforeItsDeadline(t *testing.T) {
	t.Run("fresh record", func(t *testing.T) { interruptedLiveCall(t, false) })
	t.Run("after an earlier failure", func(t *testing.T) { interruptedLiveCall(t, true) })
}

func interruptedLiveCall(t *testing.T, staleDue bool) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	clock := testclock.New(time.Now())
	start := clock.Now()
	k := order.Key{Store: "abc", ID: 24}
	// The record a holder leaves when interrupted during its live call.
	st := newStore(t, ep)
	o := order.New(k, start)
	if err := o.Transition(order.Submitting, start); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(30 * time.Second)
	o.Mode, o.Reference, o.Attempts, o.CallDeadline = order.ModeLive, "BC-abc-24", 1, deadline
	if staleDue {
		o.NextAttemptAt = start.Add(-time.Minute)
	}
	putRecord(t, st, o, fulfill.QueueOp{At: start})

	sup := &noLookup{}
	sf := &storefront{status: map[uint64]uint32{24: 11}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		Retry:         order.RetryPolicy{LookupSettle: time.Second},
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1, Now: clock.Now,
	}, newStore(t, ep), sf, sup, discard())
	// Past the settle delay counted from the intent, not from the deadline.
	clock.Advance(2 * time.Second)
	if _, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	sup.mu.Lock()
	calls, lookups := sup.calls, sup.lookups
	sup.mu.Unlock()
	if calls != 0 || lookups != 0 {
		t.Fatalf("before the holder's call deadline: %d live calls and %d lookups, want none", calls, lookups)
	}
	// Nor is BigCommerce asked anything meanwhile: the metafield is read
	// when the lookup is due (an event of the order costs no quota).
	sf.mu.Lock()
	refReads := sf.refReads
	sf.mu.Unlock()
	if refReads != 0 {
		t.Fatalf("before the holder's call deadline: %d metafield reads, want none", refReads)
	}
	got, err := svc.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != order.Submitting || !got.Pending || got.NextAttemptAt.Before(deadline.Add(time.Second)) {
		t.Fatalf("record %v, pending %v, next attempt %v; want SUBMITTING, queued, next attempt no sooner than %v (deadline + settle)",
			got.State, got.Pending, got.NextAttemptAt, deadline.Add(time.Second))
	}
	// Once the deadline and the settle delay have passed, it is looked up
	// (and, with no lookup to answer, held for a person): still not resent.
	clock.Advance(30 * time.Second)
	if got, err = svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err != nil || got.State != order.NeedsReview {
		t.Fatalf("after the deadline: %+v, %v; want NEEDS_REVIEW", got, err)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.calls != 0 || sup.lookups != 1 {
		t.Fatalf("after the deadline: %d live calls and %d lookups, want 0 and 1", sup.calls, sup.lookups)
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.refReads != 1 {
		t.Fatalf("after the deadline: %d metafield reads, want 1 (before the lookup)", sf.refReads)
	}
}

// countingStorefront counts its order reads.
type countingStorefront struct {
	storefront
	reads int
}

func (s *countingStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.storefront.Order(ctx, k)
}

// An order waiting for a person (NEEDS_REVIEW: unknown whether the
// supplier created it) is never sent again by a new webhook event: the
// event is remembered, and the work it queued is taken off the queue with
// no BigCommerce read and no supplier call.
func TestNewEventOfAnOrderInReviewSendsNothing(t *testing.T) {
	ctx := context.Background()
	sf := &countingStorefront{storefront: storefront{status: map[uint64]uint32{25: 11}}}
	sup := &noLookup{}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, newStore(t, etcdtest.Start(t)), sf, sup, discard())
	k := order.Key{Store: "abc", ID: 25}
	if _, err := svc.Intake(ctx, delivery(25, "store/order/created", 0, "c")); err != nil {
		t.Fatal(err)
	}
	// Queued work, as a worker or a sweep runs it: an ambiguous live answer
	// with lookup off holds the order for a person.
	if o, err := svc.Process(ctx, k, fulfill.ProcessOptions{NoWait: true}); err != nil || o == nil || o.State != order.NeedsReview {
		t.Fatalf("first run: %+v, %v; want NEEDS_REVIEW", o, err)
	}
	if r, err := svc.Intake(ctx, delivery(25, "store/order/updated", 0, "u")); err != nil || !r.Recorded {
		t.Fatalf("new event: %+v, %v; want recorded", r, err)
	}
	if o, err := svc.Get(ctx, k); err != nil || !o.Pending {
		t.Fatalf("after the new event: %+v, %v; want work queued", o, err)
	}
	o, err := svc.Process(ctx, k, fulfill.ProcessOptions{NoWait: true})
	if err != nil || o == nil || o.State != order.NeedsReview {
		t.Fatalf("run of the new event: %+v, %v; want no error and NEEDS_REVIEW", o, err)
	}
	if o, err := svc.Get(ctx, k); err != nil || o.State != order.NeedsReview || o.Pending || len(o.Events) != 2 {
		t.Fatalf("after the run: %+v, %v; want NEEDS_REVIEW, not queued, both events", o, err)
	}
	sf.mu.Lock()
	reads, contents, refReads := sf.reads, sf.contents, sf.refReads
	sf.mu.Unlock()
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if reads != 1 || contents != 1 || refReads != 1 || sup.calls != 1 || sup.lookups != 0 {
		t.Fatalf("%d BigCommerce order reads, %d of lines and addresses, %d of the metafield, %d live calls, %d lookups; want 1, 1, 1, 1, 0 (nothing after the first run)",
			reads, contents, refReads, sup.calls, sup.lookups)
	}
}
