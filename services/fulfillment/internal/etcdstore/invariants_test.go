package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// A delivery that reaches several replicas at the same moment is recorded
// once: the read before the transaction only saves a write, and it is the
// transaction's compare on the delivery key that lets exactly one caller
// record it. Two "recorded" answers would queue the order twice and count
// one event as two.
func TestSimultaneousDeliveriesOfOneEventAreRecordedOnce(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	// Replicas: stores of their own, each on its own client.
	stores := make([]*etcdstore.Store, 4)
	for i := range stores {
		stores[i] = newStore(t, etcdtest.Client(t, ep))
	}
	const orders, callers = 50, 16
	for id := uint64(1); id <= orders; id++ {
		k := order.Key{Store: "s", ID: id}
		e := ev("same")
		var recorded atomic.Int32
		var ready, wg sync.WaitGroup
		start := make(chan struct{})
		for i := range callers {
			ready.Add(1)
			wg.Go(func() {
				ready.Done()
				<-start
				rec, _, err := stores[i%len(stores)].RecordDelivery(ctx, k, e, time.Now(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if rec {
					recorded.Add(1)
				}
			})
		}
		ready.Wait()
		close(start) // every caller goes at once
		wg.Wait()
		if n := recorded.Load(); n != 1 {
			t.Fatalf("order %d: %d of %d simultaneous callers were told the one event was recorded, want exactly 1", id, n, callers)
		}
		r, err := cli.Get(ctx, fmt.Sprintf("/t/deliveries/s/%d/same", id))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) != 1 || r.Kvs[0].Version != 1 {
			t.Fatalf("order %d: delivery key %v; want it written once (version 1)", id, r.Kvs)
		}
	}
}

// Fencing: Check asks etcd whether this holder still owns the order's
// mutex key, not only whether its session lives. A holder whose key is gone
// (deleted, or its lease lost and the key taken by another) is fenced, so
// a live supplier call guarded by Check is not sent.
func TestCheckFencesAHolderWhoseMutexKeyIsGone(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Client(t, etcdtest.Start(t))
	s := newStore(t, cli)
	k := order.Key{Store: "s", ID: 1}
	lk, err := s.Lock(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock(ctx)
	if err := lk.Check(ctx); err != nil {
		t.Fatalf("Check while the lock is held: %v", err)
	}
	r, err := cli.Delete(ctx, "/t/locks/s/1/", clientv3.WithPrefix())
	if err != nil || r.Deleted != 1 {
		t.Fatalf("delete the mutex key: %v deleted, %v; want 1", r, err)
	}
	select {
	case <-lk.Done():
		t.Fatal("the session ended: this test is about a live session that lost its key")
	default:
	}
	if err := lk.Check(ctx); !errors.Is(err, fulfill.ErrFenced) {
		t.Fatalf("Check after the mutex key was deleted = %v, want ErrFenced", err)
	}
}

// Two people resolving two orders with the same supplier id at the same
// time both find it free; only the first save stores it. The second is
// refused, naming the order that took it, and stores nothing: otherwise
// two orders would share one supplier order and one of them would never
// be sent.
func TestClaimedSupplierIDIsStoredOnlyOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	a, b := order.Key{Store: "abc", ID: 1}, order.Key{Store: "abc", ID: 2}
	hold := func(k order.Key) (fulfill.Locked, *order.Order) {
		t.Helper()
		lk, _ := lockLoaded(t, s, k)
		o := order.New(k, time.Now())
		o.State = order.NeedsReview
		return lk, o
	}
	la, oa := hold(a)
	lb, ob := hold(b)
	for _, lk := range []fulfill.Locked{la, lb} {
		if owner, taken, err := lk.ClaimSupplierID(ctx, "TS-1"); err != nil || taken {
			t.Fatalf("claim: %v %v %v; want free", owner, taken, err)
		}
	}
	ob.State, ob.OfflineOrderID = order.Submitted, "TS-1"
	if err := lb.SaveAndUnlock(ctx, ob, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatalf("first save: %v", err)
	}
	oa.State, oa.OfflineOrderID = order.Submitted, "TS-1"
	err := la.Save(ctx, oa, fulfill.QueueOp{Done: true})
	if !errors.Is(err, fulfill.ErrSupplierIDInUse) || !strings.Contains(err.Error(), "abc/2") {
		t.Fatalf("second save: %v; want ErrSupplierIDInUse naming abc/2", err)
	}
	if got, err := s.Get(ctx, a); !errors.Is(err, fulfill.ErrNotFound) {
		t.Fatalf("order 1 after the refused save: %+v, %v; want nothing stored", got, err)
	}
	if owner, found, err := s.SupplierOrderOf(ctx, "abc", "TS-1"); err != nil || !found || owner != b {
		t.Fatalf("index of TS-1: %v %v %v; want order 2", owner, found, err)
	}
	// Asked again, the claim names the owner; and the lock still holds,
	// so a save of something else goes through.
	if owner, taken, err := la.ClaimSupplierID(ctx, "TS-1"); err != nil || !taken || owner != b {
		t.Fatalf("claim after: %v %v %v; want taken by order 2", owner, taken, err)
	}
	oa.OfflineOrderID, oa.State = "", order.NeedsReview
	if err := la.Save(ctx, oa, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatalf("save without the id: %v", err)
	}
	// An id the order itself holds is its own: claimed and saved again.
	if err := lb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	lb2, loaded := lockLoaded(t, s, b)
	if owner, taken, err := lb2.ClaimSupplierID(ctx, "TS-1"); err != nil || taken {
		t.Fatalf("own id: %v %v %v; want free", owner, taken, err)
	}
	if err := lb2.Save(ctx, loaded.Order, fulfill.QueueOp{Done: true}); err != nil {
		t.Fatalf("save of its own id: %v", err)
	}
}

// The supplier-id index names the first order saved with an id. A worker's
// save of another order with the same id (found by a lookup or on a
// metafield) stores that order's record but does not move the index, so
// ResolveOrder's check keeps refusing the id for other orders.
func TestSupplierIDIndexIsNeverMoved(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, etcdtest.Client(t, etcdtest.Start(t)))
	a, b := order.Key{Store: "abc", ID: 1}, order.Key{Store: "abc", ID: 2}
	for _, k := range []order.Key{a, b, a} {
		lk, _ := lockLoaded(t, s, k)
		o := order.New(k, time.Now())
		o.State, o.OfflineOrderID = order.Submitted, "TS-1"
		if err := lk.SaveAndUnlock(ctx, o, fulfill.QueueOp{Done: true}); err != nil {
			t.Fatalf("save %s: %v", k, err)
		}
		_ = lk.Unlock(ctx)
		if owner, found, err := s.SupplierOrderOf(ctx, "abc", "TS-1"); err != nil || !found || owner != a {
			t.Fatalf("after saving %s: index names %v (%v, %v); want %s", k, owner, found, err, a)
		}
	}
	if got, err := s.Get(ctx, b); err != nil || got.OfflineOrderID != "TS-1" {
		t.Fatalf("order 2: %+v, %v; want its record stored with TS-1", got, err)
	}
}
