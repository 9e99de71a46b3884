package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// newBareEnv starts what newEnv starts except the fulfillment replicas and
// the gateway: the simulators and etcd. The test starts the replicas it
// needs (e.g. a failpoint build) and then the gateway. With tap set, every
// request to the TropShip simulator passes through it.
func newBareEnv(t *testing.T, o options, tap *supplierTap) *env {
	t.Helper()
	e := &env{t: t, prefix: "/" + strings.ReplaceAll(t.Name(), "/", "_") + "/", opts: o}
	e.bc = bcsim.New(bcsim.Options{Tokens: map[string]string{storeHash: bcToken}})
	bcs := httptest.NewServer(e.bc)
	t.Cleanup(bcs.Close)
	o.tropship.ClientID, o.tropship.ClientSecret = tsClientID, tsSecret
	e.ts = tropsim.New(o.tropship)
	var h http.Handler = e.ts
	if tap != nil {
		h = tap.wrap(h)
	}
	tss := httptest.NewServer(h)
	t.Cleanup(tss.Close)
	t.Cleanup(e.ts.Close)
	e.bcURL, e.tsURL = bcs.URL, tss.URL
	e.etcd = etcdtest.Start(t)
	return e
}

// gatewayTo (re)starts the gateway with only the given replicas as its
// targets. e.replicas keeps every replica started, dead or alive, so that
// e.logs() still shows what a crashed one said.
func (e *env) gatewayTo(live ...*stack.Proc) {
	e.t.Helper()
	if e.gateway != nil {
		e.gateway.Stop()
	}
	all := e.replicas
	e.replicas = live
	defer func() { e.replicas = all }()
	e.startGateway()
}

// replaceReplica starts a normal (release build) replica, once the one
// before it crashed, points e.client and a new gateway at it alone, and
// returns it.
func (e *env) replaceReplica(mode string) *stack.Proc {
	e.t.Helper()
	e.client = nil // startReplica dials the first replica it starts
	p := e.startReplica(mode)
	e.gatewayTo(p)
	return p
}

// waitExit waits for p to end (it is meant to crash at a failpoint).
func (e *env) waitExit(p *stack.Proc) {
	e.t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(2 * time.Minute):
		e.t.Fatalf("%s did not crash at its failpoint\n%s", p.Name, e.logs())
	}
}

// checkSupplier asserts the invariant on the TropShip ledger for one order:
// wantOrders live orders for its reference (never more than one), and the
// record holds the offline_order_id the supplier created when it says it
// has one.
func (e *env) checkSupplier(id uint64, o *backorderv1.Order, wantOrders int) tropsim.Ledger {
	e.t.Helper()
	l := e.ts.Ledger()
	ref := fmt.Sprintf("BC-%s-%d", storeHash, id)
	if got := l.References[ref]; got != wantOrders || l.ExtraOrders != 0 || len(l.Orders) != wantOrders {
		e.t.Fatalf("supplier has %d live orders for %s (%d in all, %d extra); want %d\n%s",
			got, ref, len(l.Orders), l.ExtraOrders, wantOrders, e.logs())
	}
	if o.GetReference() != ref {
		e.t.Fatalf("record's reference %q, want %q", o.GetReference(), ref)
	}
	if st := o.GetState(); st == backorderv1.OrderState_ORDER_STATE_SUBMITTED || st == writtenBack {
		if wantOrders != 1 {
			e.t.Fatalf("record %v (%q) but the supplier has %d orders", st, o.GetOfflineOrderId(), wantOrders)
		}
		if st == writtenBack {
			e.checkWrittenBack(o)
		}
		if want := l.OrdersFor(ref)[0].OfflineOrderID; o.GetOfflineOrderId() != want {
			e.t.Fatalf("record holds offline_order_id %q, the supplier created %q", o.GetOfflineOrderId(), want)
		}
	}
	return l
}

type crashCase struct {
	point string
	// Final state and live supplier orders, with lookup off and on.
	off, on   backorderv1.OrderState
	offN, onN int
}

var crashCases = []crashCase{
	// The event is recorded, the answer never sent: BigCommerce retries;
	// the record is queued and the new replica submits it.
	{point: "after-intake", off: writtenBack, on: writtenBack, offN: 1, onN: 1},
	// The dead holder's lock frees with its lease; nothing was written.
	{point: "after-lock", off: writtenBack, on: writtenBack, offN: 1, onN: 1},
	// The intent is written, the supplier never called. Without lookup
	// nobody can tell this from a crash after the call: a person decides.
	// With lookup, the supplier says it has nothing and the order is sent.
	{point: "after-intent", off: needsReview, on: writtenBack, offN: 0, onN: 1},
	// The supplier created the order; its id was never stored. Without
	// lookup a person decides; with it the id is found: never resent.
	{point: "after-supplier-created", off: needsReview, on: writtenBack, offN: 1, onN: 1},
	// The id is stored; the write-back (step 9) and the unlock are lost.
	// The next holder writes it back, and sends nothing.
	{point: "after-store", off: writtenBack, on: writtenBack, offN: 1, onN: 1},
}

const needsReview = backorderv1.OrderState_ORDER_STATE_NEEDS_REVIEW

func lookupEnv(on bool) map[string]string {
	if !on {
		return map[string]string{"TROPSHIP_LOOKUP": "false"}
	}
	return map[string]string{
		"TROPSHIP_LOOKUP":        "true",
		"TROPSHIP_LOOKUP_SETTLE": "1s",
		"RETRY_BASE":             "500ms", // a lookup that finds nothing reschedules the send
	}
}

func TestCrashAtEachStepLookupOff(t *testing.T) { testCrashAtEachStep(t, false) }

func TestCrashAtEachStepLookupOn(t *testing.T) { testCrashAtEachStep(t, true) }

// testCrashAtEachStep SIGKILLs a replica (a failpoint build) at each step of
// one order's flow, starts a normal replica on the same etcd, redelivers the
// event as BigCommerce would, and checks where the order ends and what the
// supplier has.
func testCrashAtEachStep(t *testing.T, lookup bool) {
	if bins.FulfillmentFailpoints == "" {
		t.Skip("no failpoint build of fulfillment")
	}
	for i, c := range crashCases {
		want, wantN := c.off, c.offN
		if lookup {
			want, wantN = c.on, c.onN
		}
		t.Run(c.point, func(t *testing.T) {
			e := newBareEnv(t, options{mode: "live", env: lookupEnv(lookup)}, nil)
			id := uint64(600 + i)
			e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
			fp := e.startReplicaWith("live", bins.FulfillmentFailpoints, map[string]string{"FAILPOINTS": c.point})
			e.gatewayTo(fp)

			ev := webhook.Created(storeHash, storeID, id)
			status, err := e.sender().Send(context.Background(), ev)
			e.waitExit(fp)
			if !strings.Contains(fp.Output(), "failpoint "+c.point+": SIGKILL") {
				t.Fatalf("%s ended but not at failpoint %s\n%s", fp.Name, c.point, e.logs())
			}
			if err != nil || status/100 != 2 {
				// The crash came before the answer: BigCommerce retries below.
				t.Logf("first delivery: status %d, err %v (the replica crashed before answering)", status, err)
			}

			e.replaceReplica("live")
			// BigCommerce's retry (or, where the first one was answered, a
			// duplicate delivery): either way it must be acknowledged and
			// must not make a second order.
			e.sendAll([]webhook.Event{ev}, 1)

			o := e.waitState(id, want)
			e.checkSupplier(id, o, wantN)
			switch want {
			case needsReview:
				if o.GetOfflineOrderId() != "" || !strings.Contains(o.GetReviewReason(), o.GetReference()) {
					t.Fatalf("NEEDS_REVIEW record: offline id %q, review reason %q (want none, and the reference named)",
						o.GetOfflineOrderId(), o.GetReviewReason())
				}
			case writtenBack:
				if o.GetOfflineOrderId() == "" {
					t.Fatalf("SUBMITTED without an offline_order_id: %v", o)
				}
			}
			// A further delivery after the final state changes nothing.
			e.sendAll([]webhook.Event{webhook.Updated(storeHash, storeID, id)}, 1)
			o2 := e.waitState(id, want)
			e.checkSupplier(id, o2, wantN)
			if o2.GetOfflineOrderId() != o.GetOfflineOrderId() {
				t.Fatalf("offline_order_id changed from %q to %q", o.GetOfflineOrderId(), o2.GetOfflineOrderId())
			}
		})
	}
}

// supplierTap sits in front of the TropShip simulator and tells a test when
// a replica's requests have arrived, so that it can pause the replica at a
// known step.
type supplierTap struct {
	// hold is the request held (before the simulator sees it) until
	// release is called.
	hold     tapHold
	released chan struct{}
	release  func()

	mu         sync.Mutex
	tokens     int
	posts      int           // live order submissions received in full
	tokenAsked chan struct{} // closed at the first token request
	posted     chan struct{} // closed at the first live submission
}

// tapHold is the request a supplierTap holds.
type tapHold int

const (
	holdNothing    tapHold = iota
	holdFirstToken         // the first token request
	holdFirstPost          // the first live order submission, received in full
)

func newSupplierTap(hold tapHold) *supplierTap {
	released := make(chan struct{})
	return &supplierTap{
		hold: hold, released: released, release: sync.OnceFunc(func() { close(released) }),
		tokenAsked: make(chan struct{}), posted: make(chan struct{}),
	}
}

// wait holds r until release, or until its client goes away. It reads r's
// body first: only then does the server watch the connection (and end r's
// context if the client goes).
func (tp *supplierTap) wait(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	select {
	case <-tp.released:
	case <-r.Context().Done():
	}
}

func (tp *supplierTap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/oauth/token"):
			tp.mu.Lock()
			tp.tokens++
			first := tp.tokens == 1
			tp.mu.Unlock()
			if first {
				close(tp.tokenAsked)
				if tp.hold == holdFirstToken {
					tp.wait(r)
				}
			}
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/offline-orders") &&
			r.URL.Query().Get("validate_only") != "true":
			// The whole request is in: from now on the replica has nothing
			// left to send for it.
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			tp.mu.Lock()
			tp.posts++
			first := tp.posts == 1
			tp.mu.Unlock()
			if first {
				close(tp.posted)
				if tp.hold == holdFirstPost {
					tp.wait(r)
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (tp *supplierTap) livePosts() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.posts
}

func waitFor(t *testing.T, e *env, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s never happened\n%s", what, e.logs())
	}
}

// Where the holder is paused.
const (
	// pausedInCall: its live call is at the supplier, which creates the
	// order while the holder is paused.
	pausedInCall = "in-call"
	// pausedBeforeCall: its intent is written, its live call not yet sent
	// (it waits for a token).
	pausedBeforeCall = "before-call"
)

func TestLockLossPausedInCallLookupOff(t *testing.T)     { testLockLoss(t, pausedInCall, false) }
func TestLockLossPausedInCallLookupOn(t *testing.T)      { testLockLoss(t, pausedInCall, true) }
func TestLockLossPausedBeforeCallLookupOff(t *testing.T) { testLockLoss(t, pausedBeforeCall, false) }
func TestLockLossPausedBeforeCallLookupOn(t *testing.T)  { testLockLoss(t, pausedBeforeCall, true) }

// testLockLoss pauses (SIGSTOP) replica A while it holds an order, for longer
// than the lock's lease (LOCK_TTL 5s), so that replica B takes the order;
// then resumes A (SIGCONT). The supplier has one live order at most, the
// record B left stands, and A's writes are refused.
func testLockLoss(t *testing.T, where string, lookup bool) {
	// In the call, A's live submission is held before the supplier sees
	// it until A is paused; then the supplier creates the order at once,
	// long before A's lease can have expired, so that B's lookup finds it.
	// Before the call, A's token is held back until A is paused while it
	// waits for it.
	hold := holdFirstPost
	if where == pausedBeforeCall {
		hold = holdFirstToken
	}
	tap := newSupplierTap(hold)
	e := newBareEnv(t, options{mode: "live", env: lookupEnv(lookup)}, tap)
	const id = 700
	ref := fmt.Sprintf("BC-%s-%d", storeHash, id)
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))

	a := e.startReplica("live")
	t.Cleanup(func() { a.Resume() }) // runs before the harness's Stop
	t.Cleanup(tap.release)           // and before the simulator's server closes
	e.gatewayTo(a)
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)

	switch where {
	case pausedInCall:
		waitFor(t, e, tap.posted, "A's live call")
		if err := a.Pause(); err != nil {
			t.Fatal(err)
		}
		if n := len(e.ts.Ledger().Orders); n != 0 {
			t.Fatalf("the supplier created an order before A was paused (%d orders)", n)
		}
		tap.release() // the supplier creates it while A is paused
	case pausedBeforeCall:
		waitFor(t, e, tap.tokenAsked, "A's token request")
		r, err := e.client.GetOrder(context.Background(), &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
		if err != nil || r.GetOrder().GetState() != backorderv1.OrderState_ORDER_STATE_SUBMITTING {
			t.Fatalf("A asked for a token with the order %v (err %v); want its intent SUBMITTING", r.GetOrder(), err)
		}
		if err := a.Pause(); err != nil {
			t.Fatal(err)
		}
		if n := tap.livePosts(); n != 0 {
			t.Fatalf("A sent its live call before it was paused (%d)", n)
		}
		tap.release() // A gets its token once it runs again
	}

	// B takes the order once A's lease has expired: it finds a live intent
	// whose outcome it cannot know.
	e.client = nil
	b := e.startReplica("live")
	e.gatewayTo(b)
	want, wantOrders := needsReview, 0
	switch {
	case where == pausedInCall && !lookup:
		wantOrders = 1 // A's call, whose answer A never stored
	case where == pausedInCall && lookup:
		want, wantOrders = writtenBack, 1 // found by reference
	case where == pausedBeforeCall && lookup:
		want, wantOrders = writtenBack, 1 // not found, so B sent it
	}
	o := e.waitState(id, want)
	if where == pausedInCall {
		// A's call, made while it held the lock, created the order.
		deadline := time.Now().Add(2 * time.Minute)
		for e.ts.Ledger().References[ref] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("A's call never created the order\n%s", e.logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.checkSupplier(id, o, wantOrders)
	if want == needsReview && o.GetOfflineOrderId() != "" {
		t.Fatalf("NEEDS_REVIEW with offline id %q", o.GetOfflineOrderId())
	}
	postsBefore := tap.livePosts()

	// A wakes up with a lock it lost (and, in the call, the supplier's
	// answer in hand).
	before := a.Output()
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := strings.TrimPrefix(a.Output(), before)
		if strings.Contains(out, "write fenced") || strings.Contains(out, "lock session lost") {
			t.Logf("A after resuming:\n%s", tail(out, 2000))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never reported its lost lock after resuming\n%s", e.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let A run a few sweeps (SWEEP_INTERVAL 200ms): whatever it does, the
	// record B left and the supplier's ledger must not change.
	time.Sleep(time.Second)
	select {
	case <-a.Exited():
		t.Fatalf("A exited after resuming: %v\n%s", a.Err(), e.logs())
	default:
	}
	if n := tap.livePosts(); n != postsBefore {
		t.Errorf("A sent %d live call(s) to the supplier after it lost its lock (README: \"if the lock was lost in between, the call is not made\")\n%s",
			n-postsBefore, e.logs())
	}
	r, err := e.client.GetOrder(context.Background(), &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.GetOrder(), o) {
		t.Fatalf("A changed the record after losing its lock:\nbefore %v\nafter  %v\n%s", o, r.GetOrder(), e.logs())
	}
	e.checkSupplier(id, r.GetOrder(), wantOrders)
}
