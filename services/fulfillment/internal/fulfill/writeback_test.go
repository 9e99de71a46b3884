package fulfill_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// fastRetry retries write-backs at once, three times.
var fastRetry = order.RetryPolicy{Base: 10 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 3}

// runWriteBack starts one replica with write-back on, on a fresh etcd, and
// delivers order id's created event to it.
func runWriteBack(t *testing.T, sf *storefront, sup fulfill.Supplier, retry order.RetryPolicy, id uint64) (*harness, order.Key) {
	t.Helper()
	st := newStore(t, etcdtest.Start(t))
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), WriteBack: true,
		Retry:         retry,
		SweepInterval: 20 * time.Millisecond, SweepGrace: 50 * time.Millisecond, Workers: 2,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	k := order.Key{Store: "abc", ID: id}
	if _, err := svc.Intake(context.Background(), delivery(id, "store/order/created", 0, "c")); err != nil {
		t.Fatal(err)
	}
	return &harness{sf: sf, svc: []*fulfill.Service{svc}}, k
}

// Step 9: a created order's id goes on the BigCommerce metafield, once,
// and later deliveries of the order write nothing more anywhere.
func TestWriteBackPutsTheSupplierIDOnTheOrder(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{31: 11}}
	sup := &supplier{live: map[string]int{}}
	h, k := runWriteBack(t, sf, sup, fastRetry, 31)
	ctx := context.Background()
	o := h.waitState(t, k, order.WrittenBack)
	ref, writes := sf.ref(31)
	if ref != o.OfflineOrderID || ref == "" || writes != 1 {
		t.Fatalf("metafield %q after %d writes; record id %q", ref, writes, o.OfflineOrderID)
	}
	if o.LastError != "" || o.WriteBackFailures != 0 {
		t.Errorf("written-back order carries %q / %d failures", o.LastError, o.WriteBackFailures)
	}
	for i, scope := range []string{"store/order/updated", "store/order/statusUpdated"} {
		if r, err := h.svc[0].Intake(ctx, delivery(31, scope, 11, string(rune('a'+i)))); err != nil || !r.Recorded {
			t.Fatalf("event of a written-back order: %+v %v, want recorded", r, err)
		}
		if o, err := h.svc[0].Get(ctx, k); err != nil || o.Pending {
			t.Fatalf("event of a written-back order queued work: %+v %v", o, err)
		}
	}
	if o, err := h.svc[0].Process(ctx, k, fulfill.ProcessOptions{Force: true}); err != nil || o.State != order.WrittenBack {
		t.Fatalf("forced run: %+v %v", o, err)
	}
	if _, writes := sf.ref(31); writes != 1 || sup.live["BC-abc-31"] != 1 {
		t.Fatalf("%d metafield writes and %v supplier orders, want 1 and 1", writes, sup.live)
	}
}

// A write-back that fails and may pass is tried again on its own, and the
// order is never sent again meanwhile.
func TestFailedWriteBackIsRetriedAndNeverResends(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{32: 11}}
	sf.failWrites(&fulfill.RetryableError{Err: errors.New("HTTP 503")})
	sup := &supplier{live: map[string]int{}}
	h, k := runWriteBack(t, sf, sup, order.RetryPolicy{Base: 50 * time.Millisecond, Max: 100 * time.Millisecond, MaxAttempts: 1000}, 32)
	o := h.waitFor(t, k, "a failed write-back recorded", func(o *order.Order) bool { return o.WriteBackFailures >= 1 })
	if o.State != order.Submitted || !o.Pending || !strings.Contains(o.LastError, "HTTP 503") {
		t.Fatalf("after a failed write-back: state %v pending %v error %q", o.State, o.Pending, o.LastError)
	}
	sf.failWrites(nil)
	o = h.waitState(t, k, order.WrittenBack)
	if ref, _ := sf.ref(32); ref != o.OfflineOrderID || sup.live["BC-abc-32"] != 1 {
		t.Fatalf("metafield %q, record %q, supplier orders %v", ref, o.OfflineOrderID, sup.live)
	}
}

// A write-back that cannot succeed (here: not retryable) stops at once; the
// order stays SUBMITTED, says what to do, and ProcessOrder writes it back
// once the cause is fixed, still without resending.
func TestWriteBackThatCannotSucceedWaitsForAPerson(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{33: 11}}
	sf.failWrites(errors.New("HTTP 403: the token may not write metafields"))
	sup := &supplier{live: map[string]int{}}
	h, k := runWriteBack(t, sf, sup, fastRetry, 33)
	ctx := context.Background()
	o := h.waitState(t, k, order.Submitted)
	if o.WriteBackFailures != 1 || !strings.Contains(o.ReviewReason, "ProcessOrder") || !strings.Contains(o.LastError, "403") {
		t.Fatalf("failures %d, last error %q, review reason %q", o.WriteBackFailures, o.LastError, o.ReviewReason)
	}
	// ProcessOrder gives the write-back a fresh budget of attempts.
	sf.failWrites(&fulfill.RetryableError{Err: errors.New("HTTP 503")})
	o, err := h.svc[0].Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.Submitted || o.WriteBackFailures != 1 || o.NextAttemptAt.IsZero() {
		t.Fatalf("ProcessOrder during an outage: %+v %v; want SUBMITTED, 1 failure, a retry scheduled", o, err)
	}
	sf.failWrites(nil)
	o, err = h.svc[0].Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.WrittenBack {
		t.Fatalf("ProcessOrder after the fix: %+v %v", o, err)
	}
	if ref, writes := sf.ref(33); ref != o.OfflineOrderID || writes < 3 || sup.live["BC-abc-33"] != 1 {
		t.Fatalf("metafield %q after %d writes, supplier orders %v", ref, writes, sup.live)
	}
}

// An order whose metafield already names the supplier's order is adopted
// as WRITTEN_BACK: no supplier call, no write.
func TestMetafieldReferenceIsAdoptedAsWrittenBack(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{34: 11}, refs: map[uint64]string{34: "TS-777"}}
	sup := &supplier{live: map[string]int{}}
	h, k := runWriteBack(t, sf, sup, fastRetry, 34)
	o := h.waitState(t, k, order.WrittenBack)
	if _, writes := sf.ref(34); o.OfflineOrderID != "TS-777" || writes != 0 || len(sup.live) != 0 {
		t.Fatalf("adopted %q with %d writes and supplier orders %v", o.OfflineOrderID, writes, sup.live)
	}
}

// ambiguous answers every live call with an unknown outcome.
type ambiguous struct{ supplier }

func (s *ambiguous) Submit(context.Context, order.Submission, bool) order.Result {
	return order.Result{Outcome: order.Ambiguous, Reason: "timeout"}
}

// The id a person found for a NEEDS_REVIEW order is written back too.
func TestResolvedIDIsWrittenBack(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{35: 11}}
	h, k := runWriteBack(t, sf, &ambiguous{}, fastRetry, 35)
	ctx := context.Background()
	h.waitState(t, k, order.NeedsReview)
	if _, err := h.svc[0].Act(ctx, k, fulfill.Action{Kind: order.ActionResolveFound, Actor: "alice", OfflineOrderID: "TS-4242"}); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, k, order.WrittenBack)
	if ref, writes := sf.ref(35); ref != "TS-4242" || writes != 1 {
		t.Fatalf("metafield %q after %d writes, want TS-4242 after 1", ref, writes)
	}
}

// A failed write-back keeps to its backoff: a run that comes early (the
// sweep saw the entry due while the attempt was under way) writes nothing.
func TestWriteBackRetryWaitsForItsBackoff(t *testing.T) {
	sf := &storefront{status: map[uint64]uint32{36: 11}, writeDelay: 200 * time.Millisecond}
	sf.failWrites(&fulfill.RetryableError{Err: errors.New("HTTP 503")})
	sup := &supplier{live: map[string]int{}}
	h, k := runWriteBack(t, sf, sup, order.RetryPolicy{Base: time.Hour, Max: time.Hour, MaxAttempts: 10}, 36)
	// The sweeps that found the entry due during the first attempt (200 ms)
	// queue runs that start once it has failed and stored its backoff; give
	// them a second, and none may write again.
	h.waitFor(t, k, "a failed write-back recorded", func(o *order.Order) bool { return o.WriteBackFailures >= 1 })
	time.Sleep(time.Second)
	o, err := h.svc[0].Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, writes := sf.ref(36); writes != 1 || o.WriteBackFailures != 1 || !o.Pending || o.NextAttemptAt.Before(time.Now().Add(20*time.Minute)) {
		t.Fatalf("%d write-backs, record %d failures, pending %v, next %v; want 1, 1, true, half an hour on", writes, o.WriteBackFailures, o.Pending, o.NextAttemptAt)
	}
}

// closingSupplier creates every live order, but first runs onCreate (an
// etcd that goes away between the supplier's answer and its storing).
type closingSupplier struct {
	supplier
	onCreate func()
}

func (s *closingSupplier) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	r := s.supplier.Submit(ctx, sub, validateOnly)
	if r.Outcome == order.Created {
		s.onCreate()
	}
	return r
}

// A created order whose id etcd cannot store: the id goes on the
// BigCommerce order, where the next holder finds it.
func TestCreatedIDGoesOnTheOrderWhenEtcdCannotStoreIt(t *testing.T) {
	ep := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := etcdstore.New(context.Background(), cli, etcdstore.Options{Prefix: "/t/", LockTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sf := &storefront{status: map[uint64]uint32{40: 11}}
	sup := &closingSupplier{supplier: supplier{live: map[string]int{}}, onCreate: func() { cli.Close() }}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), WriteBack: true, Retry: fastRetry,
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := svc.Process(context.Background(), order.Key{Store: "abc", ID: 40}, fulfill.ProcessOptions{Force: true}); err == nil {
		t.Fatal("Process stored a result on a closed etcd client")
	}
	if ref, _ := sf.ref(40); ref != "TS-BC-abc-40-1" || sup.live["BC-abc-40"] != 1 {
		t.Fatalf("metafield %q, supplier orders %v; want the created id on the order", ref, sup.live)
	}
}

// An order left SUBMITTING (its holder died, or could not store the
// answer) whose id is on the BigCommerce order is adopted: no lookup, no
// person, nothing sent again.
func TestSubmittingOrderWithTheIDOnTheOrderIsAdopted(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	st := newStore(t, ep)
	k := order.Key{Store: "abc", ID: 41}
	now := time.Now()
	o := order.New(k, now.Add(-time.Minute))
	if err := o.Transition(order.Submitting, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	o.Mode, o.Reference, o.Attempts, o.CallDeadline = order.ModeLive, "BC-abc-41", 1, now.Add(-30*time.Second)
	putRecord(t, st, o, fulfill.QueueOp{At: now})

	sf := &storefront{status: map[uint64]uint32{41: 11}, refs: map[uint64]string{41: "TS-41"}}
	sup := &supplier{live: map[string]int{}}
	// Lookup off: without the metafield this order would go to NEEDS_REVIEW.
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), WriteBack: true, Retry: fastRetry,
		SweepInterval: 20 * time.Millisecond, SweepGrace: 20 * time.Millisecond, Workers: 1,
	}, newStore(t, ep), sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	h := &harness{sf: sf, sup: sup, svc: []*fulfill.Service{svc}}
	got := h.waitState(t, k, order.WrittenBack)
	if got.OfflineOrderID != "TS-41" || len(sup.live) != 0 || sup.validations != 0 {
		t.Fatalf("record %+v, supplier orders %v; want TS-41 adopted and nothing sent", got, sup.live)
	}
}
