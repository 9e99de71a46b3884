package fulfill_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/testclock"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// storefront is an in-memory BigCommerce with settable statuses, and
// metafields that hold the supplier's id.
type storefront struct {
	mu     sync.Mutex
	status map[uint64]uint32
	refs   map[uint64]string // the metafield of each order
	writes int               // SetSupplierReference calls
	// contents and refReads count Contents and SupplierReference calls.
	contents, refReads int
	// writeErr, when set, is what SetSupplierReference answers.
	writeErr error
	// writeDelay is how long each SetSupplierReference takes.
	writeDelay time.Duration
	// sideLoad: Order brings the lines and addresses, as BigCommerce does
	// with include=consignments.line_items.
	sideLoad bool
}

func (s *storefront) failWrites(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = err
}

func (s *storefront) ref(id uint64) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refs[id], s.writes
}

func (s *storefront) set(id uint64, st uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[id] = st
}

func (s *storefront) Order(_ context.Context, k order.Key) (order.StorefrontOrder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[k.ID]
	if !ok {
		return order.StorefrontOrder{}, fulfill.ErrOrderNotFound
	}
	o := order.StorefrontOrder{ID: k.ID, StatusID: st}
	if s.sideLoad {
		o.Lines, o.Shipping = orderContents()
		o.ContentsRead = true
	}
	return o, nil
}

func (s *storefront) Contents(_ context.Context, k order.Key) ([]order.Line, []order.Address, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contents++
	if _, ok := s.status[k.ID]; !ok {
		return nil, nil, errors.New("no such order: Contents of an order Order did not find")
	}
	lines, shipping := orderContents()
	return lines, shipping, nil
}

// orderContents is every order's lines and shipping address.
func orderContents() ([]order.Line, []order.Address) {
	return []order.Line{{SKU: "APP449", Quantity: 2}},
		[]order.Address{{FirstName: "Jo", LastName: "Bloggs", Street1: "1 High St", City: "Leeds", Zip: "LS1 1AA", CountryISO2: "GB"}}
}

func (s *storefront) SupplierReference(_ context.Context, k order.Key) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refReads++
	return s.refs[k.ID], nil
}

func (s *storefront) SetSupplierReference(_ context.Context, k order.Key, id string) error {
	time.Sleep(s.writeDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.writeErr != nil {
		return s.writeErr
	}
	if s.refs == nil {
		s.refs = map[uint64]string{}
	}
	s.refs[k.ID] = id
	return nil
}

// supplier counts live orders per reference, like the simulator's ledger.
type supplier struct {
	mu          sync.Mutex
	live        map[string]int
	validations int
}

func (s *supplier) Submit(_ context.Context, sub order.Submission, validateOnly bool) order.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if validateOnly {
		s.validations++
		return order.Result{Outcome: order.Valid}
	}
	s.live[sub.Reference]++
	return order.Result{Outcome: order.Created, OfflineOrderID: fmt.Sprintf("TS-%s-%d", sub.Reference, s.live[sub.Reference])}
}

func (s *supplier) Lookup(_ context.Context, ref string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.live[ref]; n > 0 {
		return fmt.Sprintf("TS-%s-%d", ref, n), true, nil
	}
	return "", false, nil
}

type harness struct {
	sf  *storefront
	sup *supplier
	svc []*fulfill.Service
}

// start runs replicas Services on a fresh etcd; opts change their Config.
func start(t testing.TB, replicas int, mode order.Mode, opts ...func(*fulfill.Config)) *harness {
	t.Helper()
	ep := etcdtest.Start(t)
	h := &harness{sf: &storefront{status: map[uint64]uint32{}}, sup: &supplier{live: map[string]int{}}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range replicas {
		st, err := etcdstore.New(ctx, etcdtest.Client(t, ep), etcdstore.Options{Prefix: "/t/", LockTTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cfg := fulfill.Config{
			Store: "abc", Mode: mode, Policy: order.DefaultPolicy(),
			SweepInterval: 50 * time.Millisecond, SweepGrace: 100 * time.Millisecond, Workers: 4,
		}
		for _, o := range opts {
			o(&cfg)
		}
		svc := fulfill.New(cfg, st, h.sf, h.sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
		h.svc = append(h.svc, svc)
		wg.Go(func() { svc.Run(ctx) })
	}
	return h
}

// putRecord stores o as its order's record, under the order's lock, with
// q applied to the queue: what an earlier holder would have left.
func putRecord(t testing.TB, st *etcdstore.Store, o *order.Order, q fulfill.QueueOp) {
	t.Helper()
	ctx := context.Background()
	lk, err := st.Lock(ctx, o.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock(ctx)
	if _, err := lk.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lk.SaveAndUnlock(ctx, o, q); err != nil {
		t.Fatal(err)
	}
}

// newStore opens a store on the etcd at ep, closed with the test.
func newStore(t testing.TB, ep string) *etcdstore.Store {
	t.Helper()
	st, err := etcdstore.New(context.Background(), etcdtest.Client(t, ep), etcdstore.Options{Prefix: "/t/", LockTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (h *harness) waitState(t testing.TB, k order.Key, want order.State) *order.Order {
	t.Helper()
	return h.waitFor(t, k, fmt.Sprintf("%v and nothing pending", want), func(o *order.Order) bool {
		return o.State == want && !o.Pending
	})
}

// waitFor polls the order's record until ok holds, for up to a minute.
func (h *harness) waitFor(t testing.TB, k order.Key, want string, ok func(*order.Order) bool) *order.Order {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		o, err := h.svc[0].Get(context.Background(), k)
		if err == nil && ok(o) {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %v: %+v (err %v); want %s", k, o, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func delivery(id uint64, scope string, status uint32, hash string) fulfill.Delivery {
	return fulfill.Delivery{Scope: scope, Producer: "stores/abc", OrderID: id, NewStatusID: status, Hash: hash}
}

func TestOneOrderManyDeliveriesThreeReplicasOneSupplierOrder(t *testing.T) {
	h := start(t, 3, order.ModeLive)
	h.sf.set(250, 11)
	events := []fulfill.Delivery{
		delivery(250, "store/order/created", 0, "c"),
		delivery(250, "store/order/statusUpdated", 11, "s"),
		delivery(250, "store/order/updated", 0, "u"),
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			d := events[i%len(events)]
			if _, err := h.svc[i%3].Intake(context.Background(), d); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	o := h.waitState(t, order.Key{Store: "abc", ID: 250}, order.Submitted)
	if h.sup.live["BC-abc-250"] != 1 || o.OfflineOrderID != "TS-BC-abc-250-1" {
		t.Fatalf("supplier orders %v, record id %q; want exactly one", h.sup.live, o.OfflineOrderID)
	}
	if len(o.Events) != 3 {
		t.Fatalf("events on record = %d, want the 3 distinct ones", len(o.Events))
	}
}

func TestManyOrdersNoDuplicates(t *testing.T) {
	h := start(t, 3, order.ModeLive)
	const n = 100
	var ds []fulfill.Delivery
	for id := uint64(1); id <= n; id++ {
		h.sf.set(id, 11)
		for j := range 1 + rand.IntN(5) {
			ds = append(ds, delivery(id, "store/order/created", 0, fmt.Sprintf("h%d-%d", id, j%2)))
		}
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() { h.svc[i%3].Intake(context.Background(), d) })
	}
	wg.Wait()
	for id := uint64(1); id <= n; id++ {
		h.waitState(t, order.Key{Store: "abc", ID: id}, order.Submitted)
	}
	for ref, c := range h.sup.live {
		if c != 1 {
			t.Errorf("%s: %d supplier orders", ref, c)
		}
	}
	if len(h.sup.live) != n {
		t.Fatalf("%d supplier orders, want %d", len(h.sup.live), n)
	}
}

func TestAwaitingPaymentThenStatusUpdated(t *testing.T) {
	h := start(t, 1, order.ModeLive)
	k := order.Key{Store: "abc", ID: 9}
	h.sf.set(9, 7)
	h.svc[0].Intake(context.Background(), delivery(9, "store/order/created", 0, "c"))
	o := h.waitState(t, k, order.Ineligible)
	if o.IneligibleReason == "" || h.sup.live["BC-abc-9"] != 0 {
		t.Fatalf("ineligible order %+v, supplier %v", o, h.sup.live)
	}
	h.sf.set(9, 11)
	h.svc[0].Intake(context.Background(), delivery(9, "store/order/statusUpdated", 11, "s"))
	h.svc[0].Intake(context.Background(), delivery(9, "store/order/statusUpdated", 11, "s"))
	o = h.waitState(t, k, order.Submitted)
	if h.sup.live["BC-abc-9"] != 1 {
		t.Fatalf("supplier orders %v, want one", h.sup.live)
	}
	if o.IneligibleReason != "" {
		t.Fatalf("submitted order still says it is ineligible: %q", o.IneligibleReason)
	}
}

// partlyDownStorefront has its orders in status 11 but answers a 500 for
// one part of them: "order", "contents" (lines and addresses) or
// "metafield".
type partlyDownStorefront struct {
	storefront
	down string
}

var errHTTP500 = &fulfill.RetryableError{Err: errors.New("HTTP 500")}

func (s *partlyDownStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	if s.down == "order" {
		return order.StorefrontOrder{}, errHTTP500
	}
	return order.StorefrontOrder{ID: k.ID, StatusID: 11}, nil
}

func (s *partlyDownStorefront) Contents(ctx context.Context, k order.Key) ([]order.Line, []order.Address, error) {
	if s.down == "contents" {
		return nil, nil, errHTTP500
	}
	s.set(k.ID, 11)
	return s.storefront.Contents(ctx, k)
}

func (s *partlyDownStorefront) SupplierReference(ctx context.Context, k order.Key) (string, error) {
	if s.down == "metafield" {
		return "", errHTTP500
	}
	return s.storefront.SupplierReference(ctx, k)
}

// An order BigCommerce cannot give us, whichever part of it fails, stays
// queued and says when it is read again, and why; nothing is sent.
func TestStorefrontFailureSaysWhenTheOrderIsReadAgain(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t)
	for i, part := range []string{"order", "contents", "metafield"} {
		id := uint64(5 + i) // one etcd for all
		t.Run(part, func(t *testing.T) {
			st := newStore(t, cli)
			sup := &supplier{live: map[string]int{}}
			svc := fulfill.New(fulfill.Config{
				Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
				StorefrontRetry: 30 * time.Second, SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
			}, st, &partlyDownStorefront{storefront: storefront{status: map[uint64]uint32{}}, down: part}, sup, discard())
			k := order.Key{Store: "abc", ID: id}
			// An order nobody announced: the error, and nothing stored.
			if _, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "HTTP 500") {
				t.Fatalf("run of an unannounced order against a failing BigCommerce: %v; want its error", err)
			}
			if o, err := svc.Get(ctx, k); !errors.Is(err, fulfill.ErrNotFound) {
				t.Fatalf("unannounced order after the failure: %+v, %v; want nothing stored", o, err)
			}
			// An announced one stays queued.
			if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, "c")); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			o, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
			if err == nil || o.State != order.Received {
				t.Fatalf("run against a failing BigCommerce: %+v, %v; want an error and RECEIVED", o, err)
			}
			got, err := svc.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Pending || !strings.Contains(got.LastError, "HTTP 500") ||
				got.NextAttemptAt.Before(before.Add(30*time.Second)) || got.NextAttemptAt.After(time.Now().Add(30*time.Second)) {
				t.Fatalf("stored %+v; want pending, the error, and next_attempt_at 30 s on", got)
			}
			if len(sup.live) != 0 {
				t.Fatalf("supplier orders %v", sup.live)
			}
		})
	}
}

func TestValidateModeCreatesNothing(t *testing.T) {
	h := start(t, 1, order.ModeValidate)
	k := order.Key{Store: "abc", ID: 5}
	h.sf.set(5, 11)
	h.svc[0].Intake(context.Background(), delivery(5, "store/order/created", 0, "c"))
	h.waitState(t, k, order.Validated)
	if len(h.sup.live) != 0 || h.sup.validations != 1 {
		t.Fatalf("validate mode: live %v validations %d", h.sup.live, h.sup.validations)
	}
	// A forced validate-only run never creates, whatever the mode.
	o, err := h.svc[0].Process(context.Background(), k, fulfill.ProcessOptions{Force: true, ValidateOnly: true})
	if err != nil || o.State != order.Validated || len(h.sup.live) != 0 {
		t.Fatalf("validate-only: %+v %v %v", o, err, h.sup.live)
	}
}

func TestIntakeRejectsWhatCannotBeAnOrder(t *testing.T) {
	h := start(t, 1, order.ModeLive)
	ctx := context.Background()
	if r, err := h.svc[0].Intake(ctx, delivery(1, "store/order/message/created", 0, "m")); err != nil || !r.Ignored {
		t.Fatalf("message scope: %+v %v, want ignored", r, err)
	}
	if _, err := h.svc[0].Intake(ctx, delivery(0, "store/order/created", 0, "x")); err == nil {
		t.Fatal("order id 0 accepted")
	}
	d := delivery(1, "store/order/created", 0, "x")
	d.Producer = "stores/other"
	if _, err := h.svc[0].Intake(ctx, d); err == nil {
		t.Fatal("a delivery for another store was accepted")
	}
}

// Concurrent ProcessOrder calls in one process (one etcd session) must not
// both submit.
func TestConcurrentForcedProcessInOneReplica(t *testing.T) {
	h := start(t, 1, order.ModeLive)
	h.sf.set(12, 11)
	k := order.Key{Store: "abc", ID: 12}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := h.svc[0].Process(context.Background(), k, fulfill.ProcessOptions{Force: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if h.sup.live["BC-abc-12"] != 1 {
		t.Fatalf("supplier orders %v, want exactly one", h.sup.live)
	}
}

// refuseFirst refuses each reference's first live submission, then creates.
type refuseFirst struct{ supplier }

func (s *refuseFirst) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	s.mu.Lock()
	first := s.validations == 0 && !validateOnly
	if first {
		s.validations++ // marks the refusal
	}
	s.mu.Unlock()
	if first {
		return order.Result{Outcome: order.Refused, Reason: "unknown product code"}
	}
	return s.supplier.Submit(ctx, sub, validateOnly)
}

// An operator's retry is processed at once by this replica's workers, not
// only by a later sweep: with sweeps an hour apart, the order still reaches
// the supplier.
func TestRetryIsProcessedWithoutWaitingForASweep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := etcdstore.New(ctx, etcdtest.Client(t, etcdtest.Start(t)), etcdstore.Options{Prefix: "/t/", LockTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sf := &storefront{status: map[uint64]uint32{7: 11}}
	sup := &refuseFirst{supplier{live: map[string]int{}}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 2,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { svc.Run(ctx) })

	k := order.Key{Store: "abc", ID: 7}
	o, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.Rejected {
		t.Fatalf("first run: %+v, %v; want REJECTED", o, err)
	}
	// ProcessOrder does not resend a REJECTED order, and says what does.
	o, err = svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if !errors.Is(err, order.ErrInvalidTransition) || !strings.Contains(err.Error(), "RetryOrder") || o.State != order.Rejected {
		t.Fatalf("ProcessOrder on a REJECTED order: %+v, %v; want refused, naming RetryOrder", o, err)
	}
	if _, err := svc.Act(ctx, k, fulfill.Action{Kind: order.ActionRetry, Actor: "ops@example.com"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := svc.Get(ctx, k)
		if err == nil && o.State == order.Submitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the retry the order is %+v (err %v); want SUBMITTED without a sweep", o, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := sup.live["BC-abc-7"]; n != 1 {
		t.Fatalf("supplier has %d live orders for the order, want 1", n)
	}
}

// held is a supplier whose live calls wait until released; it remembers
// whether a call's context was cut off.
type held struct {
	supplier
	entered  chan struct{}
	release  chan struct{}
	cutShort bool
}

func (s *held) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	close(s.entered)
	select {
	case <-s.release:
	case <-ctx.Done():
		s.mu.Lock()
		s.cutShort = true
		s.mu.Unlock()
		return order.Result{Outcome: order.Ambiguous, Reason: "cut off: " + ctx.Err().Error()}
	}
	return s.supplier.Submit(ctx, sub, validateOnly)
}

// blockingStorefront never answers until its caller gives up.
type blockingStorefront struct {
	storefront
	entered chan struct{}
}

func (s *blockingStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	close(s.entered)
	<-ctx.Done()
	return order.StorefrontOrder{}, &fulfill.RetryableError{Err: ctx.Err()}
}

func runService(t *testing.T, sf fulfill.Storefront, sup fulfill.Supplier) (svc *fulfill.Service, shutdown func(), stopped <-chan struct{}) {
	t.Helper()
	st := newStore(t, etcdtest.Start(t))
	svc = fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 2,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc, cancel, done
}

// A shutdown (SIGTERM in the service) while a live call is in flight lets
// the call finish and stores its answer before Run returns: cutting it off
// would leave an order the supplier may have created, charged, and
// unknown here.
func TestShutdownLetsALiveCallInFlightFinish(t *testing.T) {
	sup := &held{supplier: supplier{live: map[string]int{}}, entered: make(chan struct{}), release: make(chan struct{})}
	svc, shutdown, stopped := runService(t, &storefront{status: map[uint64]uint32{8: 11}}, sup)
	k := order.Key{Store: "abc", ID: 8}
	if _, err := svc.Intake(context.Background(), delivery(8, "store/order/created", 0, "h8")); err != nil {
		t.Fatal(err)
	}
	<-sup.entered
	shutdown()
	svc.Stop() // as the service does at SIGTERM
	select {
	case <-stopped:
		t.Fatal("Run returned while a live call was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(sup.release)
	<-stopped
	if sup.cutShort {
		t.Fatal("the live call's context was cut off by the shutdown")
	}
	o, err := svc.Get(context.Background(), k)
	if err != nil || o.State != order.Submitted || o.OfflineOrderID == "" {
		t.Fatalf("after shutdown the order is %+v (err %v); want SUBMITTED with its id", o, err)
	}
}

// Work not yet committed to a supplier call stops at once on shutdown and
// stays queued for the next start.
func TestShutdownStopsWorkBeforeTheIntent(t *testing.T) {
	sf := &blockingStorefront{entered: make(chan struct{})}
	sup := &supplier{live: map[string]int{}}
	svc, shutdown, stopped := runService(t, sf, sup)
	k := order.Key{Store: "abc", ID: 9}
	if _, err := svc.Intake(context.Background(), delivery(9, "store/order/created", 0, "h9")); err != nil {
		t.Fatal(err)
	}
	<-sf.entered
	shutdown()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return on shutdown while reading BigCommerce")
	}
	o, err := svc.Get(context.Background(), k)
	if err != nil || !o.Pending || o.State == order.Submitting {
		t.Fatalf("after shutdown the order is %+v (err %v); want still queued, no intent", o, err)
	}
	if len(sup.live) != 0 {
		t.Fatalf("supplier got %v", sup.live)
	}
}

// noLookup answers every live call ambiguously and has no lookup: it counts
// the calls of each kind.
type noLookup struct {
	mu             sync.Mutex
	calls, lookups int
}

func (s *noLookup) Submit(context.Context, order.Submission, bool) order.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return order.Result{Outcome: order.Ambiguous, Reason: "HTTP 502"}
}

func (s *noLookup) Lookup(context.Context, string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	return "", false, errors.New("tropship: lookup: HTTP 404: the supplier offers no lookup")
}

// With TROPSHIP_LOOKUP on but a supplier that cannot look references up, an
// ambiguous order goes to a person once the lookup fails; it is neither
// resent nor looked up for ever.
func TestLookupThatCannotAnswerHoldsForReview(t *testing.T) {
	st := newStore(t, etcdtest.Start(t))
	sup := &noLookup{}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		Retry:         order.RetryPolicy{LookupSettle: time.Millisecond, Base: time.Millisecond},
		SweepInterval: 20 * time.Millisecond, SweepGrace: time.Millisecond, Workers: 2,
	}, st, &storefront{status: map[uint64]uint32{5: 11}}, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	k := order.Key{Store: "abc", ID: 5}
	if _, err := svc.Intake(ctx, delivery(5, "store/order/created", 0, "h5")); err != nil {
		t.Fatal(err)
	}
	h := &harness{svc: []*fulfill.Service{svc}}
	o := h.waitState(t, k, order.NeedsReview)
	if !strings.Contains(o.ReviewReason, "cannot answer") || !strings.Contains(o.ReviewReason, o.Reference) {
		t.Errorf("review reason %q", o.ReviewReason)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.calls != 1 || sup.lookups != 1 {
		t.Fatalf("supplier saw %d live calls and %d lookups, want 1 and 1", sup.calls, sup.lookups)
	}
}

// throttledLookup answers every lookup 429 with a Retry-After of an hour.
type throttledLookup struct{ supplier }

func (s *throttledLookup) Lookup(context.Context, string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.validations++ // counts lookups here
	return "", false, &fulfill.RetryableError{Err: errors.New("tropship: lookup: HTTP 429"), RetryAfter: time.Hour}
}

// A lookup the supplier throttles with a Retry-After is asked again no
// sooner than that (not after the retry policy's shorter backoff), and the
// order stays SUBMITTING: the outcome is still unknown, nothing is resent.
func TestThrottledLookupWaitsForRetryAfter(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	k := order.Key{Store: "abc", ID: 9}
	past := time.Now().Add(-time.Minute)
	o := order.New(k, past)
	o.State, o.Mode, o.Attempts, o.Reference, o.CallDeadline = order.Submitting, order.ModeLive, 1, order.Reference(k), past
	putRecord(t, st, o, fulfill.QueueOp{At: past})
	sup := &throttledLookup{supplier{live: map[string]int{}}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		Retry:         order.RetryPolicy{LookupSettle: time.Millisecond, Base: time.Second, Max: time.Second},
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, &storefront{status: map[uint64]uint32{9: 11}}, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	before := time.Now()
	got, err := svc.Process(ctx, k, fulfill.ProcessOptions{})
	if err != nil || got.State != order.Submitting || got.LookupFailures != 1 {
		t.Fatalf("run: %+v, %v; want SUBMITTING after one failed lookup", got, err)
	}
	if sup.validations != 1 || len(sup.live) != 0 {
		t.Fatalf("supplier saw %d lookups and live orders %v; want 1 lookup, nothing sent", sup.validations, sup.live)
	}
	if got.NextAttemptAt.Before(before.Add(time.Hour)) {
		t.Fatalf("next lookup at %v; want no sooner than the Retry-After, %v", got.NextAttemptAt, before.Add(time.Hour))
	}
	if soon, err := st.Due(ctx, "abc", before.Add(time.Minute), 10); err != nil || len(soon) != 0 {
		t.Fatalf("due within the backoff: %v, %v; want nothing before the Retry-After", soon, err)
	}
	if later, err := st.Due(ctx, "abc", before.Add(time.Hour+time.Minute), 10); err != nil || len(later) != 1 {
		t.Fatalf("due after the Retry-After: %v, %v; want the order", later, err)
	}
}

// flakyCheck throttles the first validate-only call, passes the others, and
// creates live orders like supplier.
type flakyCheck struct {
	supplier
	checks int
}

func (s *flakyCheck) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	if validateOnly {
		s.mu.Lock()
		s.checks++
		first := s.checks == 1
		s.mu.Unlock()
		if first {
			return order.Result{Outcome: order.Throttled, Reason: "HTTP 429"}
		}
		return order.Result{Outcome: order.Valid}
	}
	return s.supplier.Submit(ctx, sub, false)
}

// With TROPSHIP_VALIDATE_FIRST, a pre-check that did not pass (throttled
// here) never falls through to the live call: the order is retried, and
// goes live only after a pre-check that passed.
func TestValidateFirstGoesLiveOnlyAfterAPassedCheck(t *testing.T) {
	st := newStore(t, etcdtest.Start(t))
	sup := &flakyCheck{supplier: supplier{live: map[string]int{}}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, ValidateFirst: true, Policy: order.DefaultPolicy(),
		Retry:         order.RetryPolicy{Base: time.Millisecond, Max: time.Millisecond},
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, &storefront{status: map[uint64]uint32{6: 11}}, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	k := order.Key{Store: "abc", ID: 6}
	o, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.RetryScheduled {
		t.Fatalf("after a throttled pre-check: %+v, %v; want RETRY_SCHEDULED", o, err)
	}
	if n := sup.live["BC-abc-6"]; n != 0 {
		t.Fatalf("a live order was created after a pre-check that did not pass (%d)", n)
	}
	o, err = svc.Process(ctx, k, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.Submitted || sup.live["BC-abc-6"] != 1 {
		t.Fatalf("after a passed pre-check: %+v, %v, live %v; want SUBMITTED and one live order", o, err, sup.live)
	}
}

// noMetafields is a storefront whose metafields endpoint answers 404.
type noMetafields struct{ storefront }

func (s *noMetafields) SupplierReference(context.Context, order.Key) (string, error) {
	return "", fmt.Errorf("bigcommerce: GET /v3/orders/7/metafields: HTTP 404: %w", fulfill.ErrOrderNotFound)
}

// A 404 on the metafields of an order that was just read means it has no
// reference: the order goes on to the supplier instead of waiting for ever.
func TestMetafields404MeansNoReference(t *testing.T) {
	st := newStore(t, etcdtest.Start(t))
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), Workers: 1},
		st, &noMetafields{storefront{status: map[uint64]uint32{7: 11}}}, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o, err := svc.Process(context.Background(), order.Key{Store: "abc", ID: 7}, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.Submitted || sup.live["BC-abc-7"] != 1 {
		t.Fatalf("got %+v, %v, live %v; want SUBMITTED with one live order", o, err, sup.live)
	}
}

// slowStorefront takes two minutes of the test clock to read an order.
type slowStorefront struct {
	storefront
	clock *testclock.Clock
}

func (s *slowStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	s.clock.Advance(2 * time.Minute)
	return s.storefront.Order(ctx, k)
}

// Reads before the intent that take longer than the supplier timeout (a
// BigCommerce rate-limit wait, many pages) do not eat into the call's
// deadline: it counts from the intent.
func TestSlowReadsBeforeTheIntentStillSend(t *testing.T) {
	st := newStore(t, etcdtest.Start(t))
	// The clock starts 90 s behind the real one: a deadline counted from
	// the lock (before the reads) would already have passed.
	now := testclock.New(time.Now().Add(-90 * time.Second))
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), Workers: 1,
		SupplierTimeout: time.Minute, Now: now.Now,
	}, st, &slowStorefront{storefront{status: map[uint64]uint32{31: 11}}, now}, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o, err := svc.Process(context.Background(), order.Key{Store: "abc", ID: 31}, fulfill.ProcessOptions{Force: true})
	if err != nil || o.State != order.Submitted || sup.live["BC-abc-31"] != 1 {
		t.Fatalf("got %+v, %v, live %v; want SUBMITTED with one live order", o, err, sup.live)
	}
}

// At shutdown (Stop), an operator's ProcessOrder that has not yet committed
// to a supplier call stops at once, whatever its caller's deadline; it
// would otherwise start a live call the shutdown has no time for.
func TestStopInterruptsAnOperatorRunBeforeItsIntent(t *testing.T) {
	sf := &blockingStorefront{entered: make(chan struct{})}
	sup := &supplier{live: map[string]int{}}
	svc, _, _ := runService(t, sf, sup)
	k := order.Key{Store: "abc", ID: 12}
	done := make(chan error, 1)
	go func() {
		_, err := svc.Process(context.Background(), k, fulfill.ProcessOptions{Force: true})
		done <- err
	}()
	<-sf.entered
	svc.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the interrupted run reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not interrupt the run")
	}
	if o, err := svc.Get(context.Background(), k); err == nil && o.State == order.Submitting {
		t.Fatalf("an intent was written: %+v", o)
	}
	if _, err := svc.Process(context.Background(), k, fulfill.ProcessOptions{Force: true}); err == nil {
		t.Fatal("a run started after Stop went ahead")
	}
	if len(sup.live) != 0 {
		t.Fatalf("supplier got %v", sup.live)
	}
}

// Stores may share one etcd. A replica works only on its own store's
// orders: its sweep never picks up another store's queue, and Process and
// Act refuse another store's order, since it would use this store's
// BigCommerce and TropShip accounts and settings.
func TestOtherStoresOrdersInTheSameEtcdAreLeftAlone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ep := etcdtest.Start(t)
	other := order.Key{Store: "xyz", ID: 7}
	if rec, _, err := newStore(t, ep).RecordDelivery(ctx, other, order.Event{Key: "h-x", Scope: "store/order/created", ReceivedAt: time.Now()}, time.Now(), nil); err != nil || !rec {
		t.Fatalf("record another store's delivery: %v %v", rec, err)
	}
	st := newStore(t, ep)
	sf := &storefront{status: map[uint64]uint32{7: 11, 8: 11}}
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: 20 * time.Millisecond, SweepGrace: 20 * time.Millisecond, Workers: 2,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { svc.Run(ctx) })

	// Its own order goes through, so sweeps ran.
	if _, err := svc.Intake(ctx, delivery(8, "store/order/created", 0, "a")); err != nil {
		t.Fatal(err)
	}
	h := &harness{sf: sf, sup: sup, svc: []*fulfill.Service{svc}}
	h.waitState(t, order.Key{Store: "abc", ID: 8}, order.Submitted)

	if _, err := svc.Process(ctx, other, fulfill.ProcessOptions{Force: true}); !errors.Is(err, fulfill.ErrUnknownStore) {
		t.Errorf("Process of another store's order: %v, want ErrUnknownStore", err)
	}
	if _, err := svc.Act(ctx, other, fulfill.Action{Kind: order.ActionRetry, Actor: "ops@example.com"}); !errors.Is(err, fulfill.ErrUnknownStore) {
		t.Errorf("Act on another store's order: %v, want ErrUnknownStore", err)
	}
	// Nor are its records shown: they are another deployment's.
	if _, err := svc.Get(ctx, other); !errors.Is(err, fulfill.ErrUnknownStore) {
		t.Errorf("Get of another store's order: %v, want ErrUnknownStore", err)
	}
	if _, _, err := svc.List(ctx, fulfill.ListFilter{Store: "xyz", Pending: true}); !errors.Is(err, fulfill.ErrUnknownStore) {
		t.Errorf("List of another store: %v, want ErrUnknownStore", err)
	}
	if got, _, err := svc.List(ctx, fulfill.ListFilter{}); err != nil || len(got) != 1 || got[0].Key.Store != "abc" {
		t.Errorf("List without a store = %v, %v; want only this store's order", got, err)
	}
	// The other store's order is queued, this store's is not.
	if got, _, err := svc.List(ctx, fulfill.ListFilter{Pending: true}); err != nil || len(got) != 0 {
		t.Errorf("List pending without a store = %v, %v; want nothing", got, err)
	}
	o, err := st.Get(ctx, other)
	if err != nil || o.State != order.Received || !o.Pending || o.LastError != "" {
		t.Errorf("the other store's order = %+v, %v; want untouched: RECEIVED, queued, no error", o, err)
	}
	if due, err := st.Due(ctx, "xyz", time.Now(), 10); err != nil || len(due) != 1 {
		t.Errorf("the other store's queue = %v, %v; want its entry kept", due, err)
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if len(sup.live) != 1 || sup.live["BC-abc-8"] != 1 {
		t.Errorf("supplier orders %v, want only BC-abc-8", sup.live)
	}
}

// In live mode, a person's validate-only ProcessOrder of an order queued
// for its live submission leaves it queued: the live submission follows,
// instead of waiting for an event that may never come.
func TestValidateOnlyRunKeepsALiveOrderQueued(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ep := etcdtest.Start(t)
	st := newStore(t, ep)
	k := order.Key{Store: "abc", ID: 7}
	// Queued, due in an hour (as after a failure's backoff).
	if rec, _, err := st.RecordDelivery(ctx, k, order.Event{Key: "h-c", Scope: "store/order/created", ReceivedAt: time.Now()}, time.Now().Add(time.Hour), nil); err != nil || !rec {
		t.Fatalf("record: %v %v", rec, err)
	}
	sf := &storefront{status: map[uint64]uint32{7: 11}}
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: 20 * time.Millisecond, SweepGrace: 20 * time.Millisecond, Workers: 2,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true, ValidateOnly: true})
	if err != nil || o.State != order.Validated {
		t.Fatalf("validate-only run: %+v, %v; want VALIDATED", o, err)
	}
	if got, err := svc.Get(ctx, k); err != nil || !got.Pending {
		t.Fatalf("after the validate-only run: %+v, %v; want still queued", got, err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { svc.Run(ctx) })
	h := &harness{sf: sf, sup: sup, svc: []*fulfill.Service{svc}}
	h.waitState(t, k, order.Submitted)
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.live["BC-abc-7"] != 1 || sup.validations != 1 {
		t.Errorf("supplier: live %v, validations %d; want one of each", sup.live, sup.validations)
	}
}

// ambiguousFor answers the live calls of one reference ambiguously (HTTP
// 502 after sending), and creates every other order.
type ambiguousFor struct {
	supplier
	ref string
}

func (s *ambiguousFor) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	if sub.Reference == s.ref && !validateOnly {
		return order.Result{Outcome: order.Ambiguous, Reason: "HTTP 502"}
	}
	return s.supplier.Submit(ctx, sub, validateOnly)
}

// ResolveOrder refuses a supplier id that another order holds: pasted by
// mistake, it would settle this order with another's supplier order, and
// this order would never be sent.
func TestResolveRefusesAnotherOrdersSupplierID(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	sf := &storefront{status: map[uint64]uint32{1: 11, 2: 11}}
	sup := &ambiguousFor{supplier: supplier{live: map[string]int{}}, ref: "BC-abc-2"}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(), WriteBack: true,
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, sf, sup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, b := order.Key{Store: "abc", ID: 1}, order.Key{Store: "abc", ID: 2}
	oa, err := svc.Process(ctx, a, fulfill.ProcessOptions{Force: true})
	if err != nil || oa.State != order.WrittenBack {
		t.Fatalf("order 1: %+v, %v", oa, err)
	}
	if ob, err := svc.Process(ctx, b, fulfill.ProcessOptions{Force: true}); err != nil || ob.State != order.NeedsReview {
		t.Fatalf("order 2: %+v, %v; want NEEDS_REVIEW", ob, err)
	}

	_, err = svc.Act(ctx, b, fulfill.Action{Kind: order.ActionResolveFound, Actor: "ops", OfflineOrderID: " " + oa.OfflineOrderID})
	if !errors.Is(err, fulfill.ErrSupplierIDInUse) || !strings.Contains(err.Error(), "abc/1") || !strings.Contains(err.Error(), "BC-abc-2") {
		t.Fatalf("resolve with order 1's id: %v; want ErrSupplierIDInUse naming order 1 and the reference", err)
	}
	if ob, _ := svc.Get(ctx, b); ob.State != order.NeedsReview {
		t.Fatalf("refused resolve changed order 2: %+v", ob)
	}
	// Another store sharing the etcd (with its own supplier account) holds
	// the same id: that is no reason to refuse it here.
	xo := order.New(order.Key{Store: "xyz", ID: 9}, time.Now())
	xo.State, xo.OfflineOrderID = order.Submitted, "TS-found-by-hand"
	putRecord(t, st, xo, fulfill.QueueOp{})
	// The right id is taken, and then belongs to order 2.
	ob, err := svc.Act(ctx, b, fulfill.Action{Kind: order.ActionResolveFound, Actor: "ops", OfflineOrderID: "TS-found-by-hand"})
	if err != nil || ob.State != order.Submitted {
		t.Fatalf("resolve with a free id: %+v, %v", ob, err)
	}
	if owner, found, err := st.SupplierOrderOf(ctx, "abc", "TS-found-by-hand"); err != nil || !found || owner != b {
		t.Fatalf("index of TS-found-by-hand: %v %v %v; want order 2", owner, found, err)
	}
	// The same id again for the same order is not "another order's".
	if owner, found, _ := st.SupplierOrderOf(ctx, "abc", oa.OfflineOrderID); !found || owner != a {
		t.Fatalf("index of %s: %v %v; want order 1", oa.OfflineOrderID, owner, found)
	}
}

// ProcessOrder of an order nobody announced and BigCommerce does not have
// (a typo) is "not found", and leaves nothing behind; one that was
// announced is recorded INELIGIBLE, with the reason.
func TestProcessOfAnOrderBigCommerceDoesNotHave(t *testing.T) {
	ctx := context.Background()
	h := start(t, 1, order.ModeLive)
	k := order.Key{Store: "abc", ID: 404}
	if _, err := h.svc[0].Process(ctx, k, fulfill.ProcessOptions{Force: true}); !errors.Is(err, fulfill.ErrOrderNotFound) {
		t.Fatalf("ProcessOrder of an unknown order: %v, want ErrOrderNotFound", err)
	}
	if o, err := h.svc[0].Get(ctx, k); !errors.Is(err, fulfill.ErrNotFound) {
		t.Fatalf("after it: %+v, %v; want nothing stored", o, err)
	}
	if _, err := h.svc[0].Intake(ctx, delivery(404, "store/order/created", 0, "c404")); err != nil {
		t.Fatal(err)
	}
	if o := h.waitState(t, k, order.Ineligible); !strings.Contains(o.IneligibleReason, "no such order") {
		t.Fatalf("announced order BigCommerce does not have: %+v", o)
	}
}

// A person's validate-only run of a live order waiting for its retry keeps
// the retry's time: the live send it leaves queued is not made due at once,
// which would ignore the supplier's Retry-After or the backoff.
func TestValidateOnlyRunKeepsARetrysTime(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	k := order.Key{Store: "abc", ID: 8}
	due := time.Now().Add(time.Hour)
	o := order.New(k, time.Now())
	o.State, o.Mode, o.Attempts, o.NextAttemptAt = order.RetryScheduled, order.ModeLive, 1, due
	putRecord(t, st, o, fulfill.QueueOp{At: due})
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, &storefront{status: map[uint64]uint32{8: 11}}, &supplier{live: map[string]int{}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true, ValidateOnly: true}); err != nil || got.State != order.Validated {
		t.Fatalf("validate-only run: %+v, %v", got, err)
	}
	if now, err := st.Due(ctx, "abc", time.Now(), 10); err != nil || len(now) != 0 {
		t.Fatalf("due now: %v, %v; want nothing (the retry is due in an hour)", now, err)
	}
	if later, err := st.Due(ctx, "abc", due.Add(time.Second), 10); err != nil || len(later) != 1 {
		t.Fatalf("due after the retry's time: %v, %v; want the order", later, err)
	}
}

// The store's API quota is the limit of a flash sale: an order in a status
// that is not eligible costs one BigCommerce read (the order), not four;
// one whose contents are not for the supplier costs three (no metafield),
// or one where the order read brings them; and the metafield is still read
// before anything is sent.
func TestIneligibleOrdersReadOnlyWhatTheyNeed(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.Start(t)
	// run processes order id in a store where its status is status; with
	// sideLoad, the order read brings its lines and addresses.
	run := func(t *testing.T, pol order.Policy, status uint32, id uint64, sideLoad bool) (*storefront, *supplier, *order.Order) {
		t.Helper()
		sf := &storefront{status: map[uint64]uint32{id: status}, sideLoad: sideLoad}
		sup := &supplier{live: map[string]int{}}
		svc := fulfill.New(fulfill.Config{
			Store: "abc", Mode: order.ModeLive, Policy: pol,
			SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
		}, newStore(t, cli), sf, sup, discard())
		if _, err := svc.Intake(ctx, delivery(id, "store/order/created", 0, "c-"+t.Name())); err != nil {
			t.Fatal(err)
		}
		o, err := svc.Process(ctx, order.Key{Store: "abc", ID: id}, fulfill.ProcessOptions{NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		return sf, sup, o
	}
	reads := func(sf *storefront) (int, int) {
		sf.mu.Lock()
		defer sf.mu.Unlock()
		return sf.contents, sf.refReads
	}

	t.Run("status", func(t *testing.T) {
		sf, sup, o := run(t, order.DefaultPolicy(), 7, 30, false)
		if o.State != order.Ineligible || !strings.Contains(o.IneligibleReason, "status 7") {
			t.Fatalf("record %+v; want INELIGIBLE for status 7", o)
		}
		if c, r := reads(sf); c != 0 || r != 0 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield; want 0 and 0", c, r)
		}
		if len(sup.live) != 0 {
			t.Errorf("supplier got %v", sup.live)
		}
	})
	t.Run("contents", func(t *testing.T) {
		pol := order.DefaultPolicy()
		pol.Countries = []string{"FR"}
		sf, _, o := run(t, pol, 11, 30, false)
		if o.State != order.Ineligible || !strings.Contains(o.IneligibleReason, "country") {
			t.Fatalf("record %+v; want INELIGIBLE for its country", o)
		}
		if c, r := reads(sf); c != 1 || r != 0 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield; want 1 and 0", c, r)
		}
	})
	t.Run("status, with a metafield", func(t *testing.T) {
		// After etcd lost its record, an order the supplier has that is no
		// longer payable: nothing is sent, and nothing more is read.
		sf := &storefront{status: map[uint64]uint32{31: 10}, refs: map[uint64]string{31: "TS-earlier"}}
		sup := &supplier{live: map[string]int{}}
		svc := fulfill.New(fulfill.Config{
			Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
			SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
		}, newStore(t, cli), sf, sup, discard())
		o, err := svc.Process(ctx, order.Key{Store: "abc", ID: 31}, fulfill.ProcessOptions{Force: true})
		if err != nil || o.State != order.Ineligible {
			t.Fatalf("record %+v, %v; want INELIGIBLE", o, err)
		}
		if c, r := reads(sf); c != 0 || r != 0 || len(sup.live) != 0 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield, supplier %v; want 0, 0, nothing", c, r, sup.live)
		}
	})
	t.Run("eligible", func(t *testing.T) {
		sf, sup, o := run(t, order.DefaultPolicy(), 11, 30, false)
		if !o.HasSupplierOrder() {
			t.Fatalf("record %+v; want the supplier's id", o)
		}
		if c, r := reads(sf); c != 1 || r != 1 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield; want 1 and 1", c, r)
		}
		if n := sup.live[order.Reference(order.Key{Store: "abc", ID: 30})]; n != 1 {
			t.Errorf("%d live orders, want 1", n)
		}
	})
	// Where the order read brings its lines and addresses, they are not
	// read again: the order, the metafield, the write-back.
	t.Run("eligible, side-loaded", func(t *testing.T) {
		sf, sup, o := run(t, order.DefaultPolicy(), 11, 32, true)
		if !o.HasSupplierOrder() {
			t.Fatalf("record %+v; want the supplier's id", o)
		}
		if c, r := reads(sf); c != 0 || r != 1 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield; want 0 and 1", c, r)
		}
		if n := sup.live[order.Reference(order.Key{Store: "abc", ID: 32})]; n != 1 {
			t.Errorf("%d live orders, want 1", n)
		}
	})
	t.Run("contents, side-loaded", func(t *testing.T) {
		pol := order.DefaultPolicy()
		pol.Countries = []string{"FR"}
		sf, _, o := run(t, pol, 11, 33, true)
		if o.State != order.Ineligible || !strings.Contains(o.IneligibleReason, "country") {
			t.Fatalf("record %+v; want INELIGIBLE for its country", o)
		}
		if c, r := reads(sf); c != 0 || r != 0 {
			t.Errorf("%d reads of lines and addresses, %d of the metafield; want 0 and 0", c, r)
		}
	})
}

// throttledStorefront answers 429 for order 1 (BigCommerce's Retry-After is
// an hour) and reports each read of order 2.
type throttledStorefront struct {
	storefront
	throttled int           // Order calls for order 1
	read2     chan struct{} // a read of order 2
}

func (s *throttledStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	if k.ID == 2 {
		s.read2 <- struct{}{}
		return s.storefront.Order(ctx, k)
	}
	s.mu.Lock()
	s.throttled++
	s.mu.Unlock()
	return order.StorefrontOrder{}, &fulfill.RetryableError{Err: errors.New("HTTP 429"), RetryAfter: time.Hour}
}

// An order BigCommerce told us to read again later is read again then, not
// at its next event: new events are remembered, and the order keeps its
// time (the same holds for a retry's backoff, a lookup's wait, and the
// TropShip breaker's hold).
func TestAnEventDoesNotBringAWaitingOrderForward(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	sf := &throttledStorefront{storefront: storefront{status: map[uint64]uint32{2: 1}}, read2: make(chan struct{}, 1)}
	// One worker takes orders in the order they were queued.
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: 50 * time.Millisecond, Workers: 1,
	}, st, sf, &supplier{live: map[string]int{}}, discard())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Run's first sweep comes once the replica is registered: the events
	// below then come after it, and their entries are not due before the
	// grace, so only the worker runs them.
	for deadline := time.Now().Add(30 * time.Second); svc.QueueShare() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replica never registered")
		}
	}

	a := order.Key{Store: "abc", ID: 1}
	if _, err := svc.Intake(ctx, delivery(1, "store/order/created", 0, "c")); err != nil {
		t.Fatal(err)
	}
	var waiting *order.Order
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		o, err := svc.Get(ctx, a)
		if err == nil && o.LastError != "" {
			waiting = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order 1 after its first event: %+v, %v; want its 429 stored", o, err)
		}
	}
	if _, err := svc.Intake(ctx, delivery(1, "store/order/statusUpdated", 11, "u")); err != nil {
		t.Fatal(err)
	}
	// Had order 1 been queued for a run now, the worker would run it
	// before order 2.
	if _, err := svc.Intake(ctx, delivery(2, "store/order/created", 0, "c2")); err != nil {
		t.Fatal(err)
	}
	<-sf.read2
	sf.mu.Lock()
	reads := sf.throttled
	sf.mu.Unlock()
	if reads != 1 {
		t.Fatalf("order 1 read %d times; want 1: its event must not bring it before its Retry-After", reads)
	}
	o, err := svc.Get(ctx, a)
	if err != nil || !o.Pending || len(o.Events) != 2 || !o.NextAttemptAt.Equal(waiting.NextAttemptAt) {
		t.Fatalf("order 1: %+v, %v; want queued, both events, next attempt still %v", o, err, waiting.NextAttemptAt)
	}
}

// payingStorefront answers its first read of an order with status 7
// (Awaiting Payment) while the payment's statusUpdated event arrives, and
// status 11 from then on.
type payingStorefront struct {
	storefront
	pay func() // called once, during the first read
}

func (s *payingStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	if pay := s.pay; pay != nil {
		s.pay = nil
		o, err := s.storefront.Order(ctx, k)
		pay()
		return o, err
	}
	return s.storefront.Order(ctx, k)
}

// A person's ProcessOrder of an order waiting for its retry finds it not
// payable, while the payment's event arrives. That event is not left until
// the retry's time, two hours on: the order is looked at again at once,
// and sent.
func TestAnEventDuringARunIsLookedAtWhenTheRunEnds(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	sf := &payingStorefront{storefront: storefront{status: map[uint64]uint32{4: 7}}}
	sup := &supplier{live: map[string]int{}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: 20 * time.Millisecond, SweepGrace: time.Hour, Workers: 1,
	}, st, sf, sup, discard())
	k := order.Key{Store: "abc", ID: 4}
	o := order.New(k, time.Now())
	// Due later than the event would make it (SWEEP_GRACE, an hour).
	o.State, o.NextAttemptAt, o.Attempts = order.RetryScheduled, time.Now().Add(2*time.Hour), 1
	putRecord(t, st, o, fulfill.QueueOp{At: o.NextAttemptAt})
	sf.pay = func() {
		sf.set(4, 11)
		if _, err := svc.Intake(ctx, delivery(4, "store/order/statusUpdated", 11, "paid")); err != nil {
			t.Error(err)
		}
	}
	if got, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err != nil || got.State != order.Ineligible {
		t.Fatalf("ProcessOrder: %+v, %v; want INELIGIBLE (not paid when read)", got, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h := &harness{sf: &sf.storefront, sup: sup, svc: []*fulfill.Service{svc}}
	h.waitState(t, k, order.Submitted)
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.live["BC-abc-4"] != 1 {
		t.Fatalf("supplier orders %v, want one", sup.live)
	}
}

// Without the write-back, an id a person found ends the order's work: the
// answer and the record say nothing is pending.
func TestResolveFoundWithoutWriteBackIsNotPending(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1,
	}, st, &storefront{status: map[uint64]uint32{3: 11}}, &ambiguous{}, discard())
	k := order.Key{Store: "abc", ID: 3}
	if o, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err != nil || o.State != order.NeedsReview {
		t.Fatalf("run: %+v, %v; want NEEDS_REVIEW", o, err)
	}
	o, err := svc.Act(ctx, k, fulfill.Action{Kind: order.ActionResolveFound, Actor: "ops", OfflineOrderID: "TS-9"})
	if err != nil || o.State != order.Submitted || o.Pending {
		t.Fatalf("resolve: %+v, %v; want SUBMITTED and not pending", o, err)
	}
	if got, err := svc.Get(ctx, k); err != nil || got.Pending {
		t.Fatalf("stored: %+v, %v; want not pending", got, err)
	}
}

// An intake replica only records; a processing replica, which follows the
// queue, sends the order at once (no sweep would find it within the test:
// sweeps run hourly), and exactly once however many deliveries came.
func TestIntakeReplicaAndProcessingReplica(t *testing.T) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	sf := &storefront{status: map[uint64]uint32{5: 11, 6: 11}}
	sup := &supplier{live: map[string]int{}}
	newSvc := func(role fulfill.Role) *fulfill.Service {
		svc := fulfill.New(fulfill.Config{
			Role: role, Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
			SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 2,
		}, newStore(t, ep), sf, sup, discard())
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { svc.Run(runCtx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return svc
	}
	intake, process := newSvc(fulfill.RoleIntake), newSvc(fulfill.RoleProcess)
	// The processing replica's watch is in place once an event it records
	// itself (due after the grace, so not scheduled by the watch) is seen:
	// instead, wait for the intake's order to be sent, below.
	h := &harness{sf: sf, sup: sup, svc: []*fulfill.Service{intake}}
	for range 3 {
		if _, err := intake.Intake(ctx, delivery(5, "store/order/created", 0, "c5")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := intake.Intake(ctx, delivery(5, "store/order/statusUpdated", 11, "u5")); err != nil {
		t.Fatal(err)
	}
	o := h.waitState(t, order.Key{Store: "abc", ID: 5}, order.Submitted)
	if o.OfflineOrderID == "" {
		t.Fatalf("order 5: %+v", o)
	}
	// The processing replica takes deliveries too, and runs them itself.
	if _, err := process.Intake(ctx, delivery(6, "store/order/created", 0, "c6")); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, order.Key{Store: "abc", ID: 6}, order.Submitted)
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.live["BC-abc-5"] != 1 || sup.live["BC-abc-6"] != 1 {
		t.Fatalf("supplier orders %v, want one each", sup.live)
	}
}

// lockingStore records the orders each TryLock was called for, and
// closes watching (when made) once its replica's queue watch is in place.
type lockingStore struct {
	fulfill.Store
	mu        sync.Mutex
	tried     map[order.Key]int
	watching  chan struct{}
	watchOnce sync.Once
}

func (c *lockingStore) FollowQueue(ctx context.Context, store string, ready func(), fn func(order.Key, time.Time, int64)) error {
	return c.Store.FollowQueue(ctx, store, func() {
		ready()
		if c.watching != nil {
			c.watchOnce.Do(func() { close(c.watching) })
		}
	}, fn)
}

// waitWatching waits until st's replica follows the queue: writes from
// then on reach its watch.
func waitWatching(t *testing.T, st *lockingStore) {
	t.Helper()
	select {
	case <-st.watching:
	case <-time.After(30 * time.Second):
		t.Fatal("the replica never followed the queue")
	}
}

func (c *lockingStore) TryLock(ctx context.Context, k order.Key) (fulfill.Locked, error) {
	c.mu.Lock()
	if c.tried == nil {
		c.tried = map[order.Key]int{}
	}
	c.tried[k]++
	c.mu.Unlock()
	return c.Store.TryLock(ctx, k)
}

func (c *lockingStore) triedFor(k order.Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tried[k] > 0
}

type shareReplica struct {
	svc  *fulfill.Service
	st   *lockingStore
	stop func()
}

// shareReplicas starts replicas of the given roles on the etcd at ep,
// sweeping every sweep.
func shareReplicas(t *testing.T, ep string, sf *storefront, sup *supplier, sweep time.Duration, roles ...fulfill.Role) []shareReplica {
	var out []shareReplica
	for _, role := range roles {
		st := &lockingStore{Store: newStore(t, ep), watching: make(chan struct{})}
		svc := fulfill.New(fulfill.Config{
			Role: role, Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
			SweepInterval: sweep, SweepGrace: time.Hour, Workers: 4,
		}, st, sf, sup, discard())
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { svc.Run(runCtx); close(done) }()
		stop := sync.OnceFunc(func() { cancel(); <-done })
		t.Cleanup(stop)
		out = append(out, shareReplica{svc, st, stop})
	}
	return out
}

func waitQueueShare(t *testing.T, r shareReplica, want int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); r.svc.QueueShare() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("replica sees %d processing replicas, want %d", r.svc.QueueShare(), want)
		}
	}
}

// checkDivided fails unless each order from..to-1 was locked by exactly
// one of a and b, and each of them locked some.
func checkDivided(t *testing.T, a, b shareReplica, from, to uint64) {
	t.Helper()
	var na, nb int
	for id := from; id < to; id++ {
		k := order.Key{Store: "abc", ID: id}
		ta, tb := a.st.triedFor(k), b.st.triedFor(k)
		if ta == tb {
			t.Fatalf("order %v: locked by the first replica %v, by the second %v; want exactly one", k, ta, tb)
		}
		if ta {
			na++
		} else {
			nb++
		}
	}
	if na == 0 || nb == 0 {
		t.Fatalf("the replicas took %d and %d of %d orders; want a share each", na, nb, to-from)
	}
}

// sendOrders records a created event of each order from..to-1 through
// intake and waits until every one is SUBMITTED.
func sendOrders(t *testing.T, intake *fulfill.Service, sf *storefront, from, to uint64) {
	t.Helper()
	h := &harness{svc: []*fulfill.Service{intake}}
	for id := from; id < to; id++ {
		sf.set(id, 11)
		if _, err := intake.Intake(context.Background(), delivery(id, "store/order/created", 0, fmt.Sprint("c", id))); err != nil {
			t.Fatal(err)
		}
	}
	for id := from; id < to; id++ {
		h.waitState(t, order.Key{Store: "abc", ID: id}, order.Submitted)
	}
}

// Processing replicas divide the queue they all follow: each order is
// taken by one of them (no race for its lock), both take a share, and
// when one stops, the other takes every order at once (sweeps run hourly
// here, so only the watch could have found them).
func TestProcessingReplicasShareTheQueue(t *testing.T) {
	ep := etcdtest.Start(t)
	sf := &storefront{status: map[uint64]uint32{}}
	sup := &supplier{live: map[string]int{}}
	r := shareReplicas(t, ep, sf, sup, time.Hour, fulfill.RoleIntake, fulfill.RoleProcess, fulfill.RoleProcess)
	intake, a, b := r[0], r[1], r[2]
	waitQueueShare(t, a, 2)
	waitQueueShare(t, b, 2)
	const n = 40
	sendOrders(t, intake.svc, sf, 1, 1+n)
	checkDivided(t, a, b, 1, 1+n)

	b.stop()
	waitQueueShare(t, a, 1)
	sendOrders(t, intake.svc, sf, 1+n, 1+2*n)
	for id := uint64(1 + n); id < 1+2*n; id++ {
		if k := (order.Key{Store: "abc", ID: id}); !a.st.triedFor(k) || b.st.triedFor(k) {
			t.Fatalf("order %v after the second replica stopped: taken by the first %v, by the second %v", k, a.st.triedFor(k), b.st.triedFor(k))
		}
	}
	checkSentOnce(t, sup, 1, 1+2*n)
}

// A processing replica that is registered but processes nothing (hung,
// or dead while its lease lasts) loses no order: the others' sweeps take
// its share once a sweep has left it to it and the next still finds it
// due.
func TestAnOwnerThatNeverTakesItsOrdersLosesNone(t *testing.T) {
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	ctx := context.Background()
	g, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/t/processors/abc/ffffffffffffffff", "", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	sf := &storefront{status: map[uint64]uint32{}}
	sup := &supplier{live: map[string]int{}}
	r := shareReplicas(t, ep, sf, sup, 50*time.Millisecond, fulfill.RoleIntake, fulfill.RoleProcess)
	waitQueueShare(t, r[1], 2)
	sendOrders(t, r[0].svc, sf, 1, 41)
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if len(sup.live) != 40 {
		t.Fatalf("supplier orders %v, want 40", sup.live)
	}
}

// Replicas that do both (ROLE=all) divide the due orders their sweeps
// find (retries here), instead of each trying every one's lock.
func TestReplicasDivideTheirSweeps(t *testing.T) {
	ep := etcdtest.Start(t)
	sf := &storefront{status: map[uint64]uint32{}}
	sup := &supplier{live: map[string]int{}}
	r := shareReplicas(t, ep, sf, sup, 2*time.Second, fulfill.RoleAll, fulfill.RoleAll)
	a, b := r[0], r[1]
	waitQueueShare(t, a, 2)
	waitQueueShare(t, b, 2)
	st := newStore(t, ep)
	const n = 20
	retryAndWait(t, st, sf, a.svc, n, time.Now().Add(-time.Minute))
	checkDivided(t, a, b, 1, 1+n)
}

// A run started while another found BigCommerce throttling (an event or a
// sweep came meanwhile, and its worker waited for the lock) keeps to
// BigCommerce's Retry-After: the order is not read again before it, only
// kept queued for it. A person's ProcessOrder still reads it at once.
func TestARunStartedDuringAFailedReadKeepsItsWait(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, etcdtest.Start(t))
	clock := testclock.New(time.Now())
	sf := &throttledStorefront{storefront: storefront{status: map[uint64]uint32{}}}
	svc := fulfill.New(fulfill.Config{
		Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour, Workers: 1, Now: clock.Now,
	}, st, sf, &supplier{live: map[string]int{}}, discard())
	k := order.Key{Store: "abc", ID: 1}
	if _, err := svc.Intake(ctx, delivery(1, "store/order/created", 0, "c")); err != nil {
		t.Fatal(err)
	}
	reads := func() int {
		sf.mu.Lock()
		defer sf.mu.Unlock()
		return sf.throttled
	}
	if _, err := svc.Process(ctx, k, fulfill.ProcessOptions{}); err == nil {
		t.Fatal("run against a throttling BigCommerce: no error")
	}
	waiting, err := svc.Get(ctx, k)
	if err != nil || reads() != 1 || !waiting.Pending || !waiting.NextAttemptAt.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("after the 429: %+v, %v, %d reads; want queued for an hour on, 1 read", waiting, err, reads())
	}
	// The queued run that came meanwhile.
	got, err := svc.Process(ctx, k, fulfill.ProcessOptions{})
	if err != nil || reads() != 1 {
		t.Fatalf("a queued run before the Retry-After: %+v, %v, %d reads; want no error and no read", got, err, reads())
	}
	if o, err := svc.Get(ctx, k); err != nil || !o.Pending || !o.NextAttemptAt.Equal(waiting.NextAttemptAt) || o.LastError != waiting.LastError {
		t.Fatalf("after the early run: %+v, %v; want still queued for %v with its error", o, err, waiting.NextAttemptAt)
	}
	if _, err := svc.Process(ctx, k, fulfill.ProcessOptions{Force: true}); err == nil || reads() != 2 {
		t.Fatalf("a person's run: %v, %d reads; want BigCommerce read again (and its 429)", err, reads())
	}
	// Once the wait (the person's run set it anew) has passed, a queued
	// run reads it again.
	clock.Advance(time.Hour)
	if _, err := svc.Process(ctx, k, fulfill.ProcessOptions{}); err == nil || reads() != 3 {
		t.Fatalf("a queued run after the Retry-After: %v, %d reads; want BigCommerce read again", err, reads())
	}
}

// A mixed topology: an intake replica, one that does both (ROLE=all) and
// one that only processes. The due orders their sweeps find are divided
// between the two that process; the intake replica's events go to the
// process replica, which follows the queue; the all replica runs its own
// events. Each order reaches the supplier once.
func TestMixedRolesDivideAndLoseNothing(t *testing.T) {
	ep := etcdtest.Start(t)
	sf := &storefront{status: map[uint64]uint32{}}
	sup := &supplier{live: map[string]int{}}
	r := shareReplicas(t, ep, sf, sup, 2*time.Second, fulfill.RoleIntake, fulfill.RoleAll, fulfill.RoleProcess)
	intake, all, proc := r[0], r[1], r[2]
	waitQueueShare(t, all, 2)
	waitQueueShare(t, proc, 2)
	// Retries coming due well after the watch's second of slack, so that
	// only the sweeps find them (ten seconds leaves the twenty records
	// eight to be written on a slow disk).
	st := newStore(t, ep)
	const n = 20
	retryAndWait(t, st, sf, all.svc, n, time.Now().Add(10*time.Second))
	checkDivided(t, all, proc, 1, 1+n)

	sendOrders(t, intake.svc, sf, 1+n, 1+2*n)
	for id := uint64(1 + n); id < 1+2*n; id++ {
		if k := (order.Key{Store: "abc", ID: id}); !proc.st.triedFor(k) {
			t.Fatalf("order %v recorded by the intake replica: the process replica never took it", k)
		}
	}
	sendOrders(t, all.svc, sf, 1+2*n, 1+3*n)
	checkSentOnce(t, sup, 1, 1+3*n)
}

// checkSentOnce fails unless the supplier has exactly one order of each
// order from..to-1.
func checkSentOnce(t *testing.T, sup *supplier, from, to uint64) {
	t.Helper()
	sup.mu.Lock()
	defer sup.mu.Unlock()
	for id := from; id < to; id++ {
		if ref := fmt.Sprintf("BC-abc-%d", id); sup.live[ref] != 1 {
			t.Fatalf("supplier orders of %s: %d, want 1", ref, sup.live[ref])
		}
	}
}

// An entry the watch sees written due within the next second (a run that
// kept to a retry's time, or another machine's clock) is run when it is
// due: not at once, which would only queue it again and wake the watch
// with its own write, again and again until then.
func TestTheWatchRunsAnEntryDueSoonWhenDue(t *testing.T) {
	ep := etcdtest.Start(t)
	sf := &storefront{status: map[uint64]uint32{1: 11}}
	sup := &supplier{live: map[string]int{}}
	r := shareReplicas(t, ep, sf, sup, time.Hour, fulfill.RoleProcess)
	waitQueueShare(t, r[0], 1)
	waitWatching(t, r[0].st)
	k := order.Key{Store: "abc", ID: 1}
	due := time.Now().Add(700 * time.Millisecond)
	o := order.New(k, time.Now())
	o.State, o.Mode, o.Attempts, o.NextAttemptAt = order.RetryScheduled, order.ModeLive, 1, due
	putRecord(t, newStore(t, ep), o, fulfill.QueueOp{At: due})
	h := &harness{svc: []*fulfill.Service{r[0].svc}}
	h.waitState(t, k, order.Submitted)
	if time.Now().Before(due) {
		t.Fatal("submitted before its retry was due")
	}
	r[0].st.mu.Lock()
	defer r[0].st.mu.Unlock()
	if n := r[0].st.tried[k]; n > 2 {
		t.Fatalf("the order's lock was tried %d times; want it run when due, once or twice", n)
	}
}

// watchedStore tells of each queue write its replica's watch handled, and
// counts the sweeps; with quiet, they find nothing.
type watchedStore struct {
	lockingStore
	handled chan order.Key
	sweeps  atomic.Int64
	quiet   atomic.Bool
}

func (w *watchedStore) Due(ctx context.Context, store string, now time.Time, limit int) ([]fulfill.DueEntry, error) {
	defer w.sweeps.Add(1)
	if w.quiet.Load() {
		return nil, nil
	}
	return w.lockingStore.Due(ctx, store, now, limit)
}

func (w *watchedStore) FollowQueue(ctx context.Context, store string, ready func(), fn func(order.Key, time.Time, int64)) error {
	return w.lockingStore.FollowQueue(ctx, store, ready, func(k order.Key, due time.Time, rev int64) {
		fn(k, due, rev)
		select {
		case w.handled <- k:
		default: // nobody is listening any more
		}
	})
}

// gateStorefront holds every read of order id until gate is closed.
type gateStorefront struct {
	storefront
	id      uint64
	entered chan struct{}
	gate    chan struct{}
}

func (s *gateStorefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	if k.ID == s.id {
		s.entered <- struct{}{}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return order.StorefrontOrder{}, ctx.Err()
		}
	}
	return s.storefront.Order(ctx, k)
}

// The watch tells a process replica of two events of an order while the
// order waits for a worker: its one run sees both, and the order is not
// run a second time only to find its work done (a lock, a read and an
// unlock in etcd). An event written while the run is under way still
// runs it again (TestAnEventWrittenDuringTheRunRunsItAgain).
func TestEventsSeenByTheRunDoNotRunItAgain(t *testing.T) {
	sf := &gateStorefront{storefront: storefront{status: map[uint64]uint32{1: 11, 3: 11, 9: 11}},
		id: 9, entered: make(chan struct{}, 10), gate: make(chan struct{})}
	proc, ws, send := watchedPair(t, sf, time.Hour)
	t.Cleanup(func() { close(sf.gate) })
	send(9, "store/order/created", "c9")
	<-sf.entered // the one worker is busy with order 9
	send(1, "store/order/created", "c1")
	send(1, "store/order/statusUpdated", "u1")
	send(3, "store/order/created", "c3") // after order 1 in the worker's queue
	sf.gate <- struct{}{}                // (the cleanup closes it)
	h := &harness{svc: []*fulfill.Service{proc}}
	h.waitState(t, order.Key{Store: "abc", ID: 3}, order.Submitted)
	k := order.Key{Store: "abc", ID: 1}
	o := h.waitState(t, k, order.Submitted)
	if len(o.Events) != 2 {
		t.Fatalf("order 1: %d events, want both", len(o.Events))
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if n := ws.tried[k]; n != 1 {
		t.Fatalf("order 1's lock tried %d times; want once: its run saw both events", n)
	}
}

// watchedPair starts an intake replica and a process replica with one
// worker, whose store tells of each queue write its watch handled; send
// records an event through the intake replica and returns once the
// process replica's watch has handled its write.
func watchedPair(t *testing.T, sf fulfill.Storefront, sweep time.Duration) (*fulfill.Service, *watchedStore, func(id uint64, scope, hash string)) {
	ctx := context.Background()
	ep := etcdtest.Start(t)
	sup := &supplier{live: map[string]int{}}
	ws := &watchedStore{lockingStore: lockingStore{Store: newStore(t, ep), watching: make(chan struct{})}, handled: make(chan order.Key, 1000)}
	proc := fulfill.New(fulfill.Config{
		Role: fulfill.RoleProcess, Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: sweep, SweepGrace: time.Hour, Workers: 1,
	}, ws, sf, sup, discard())
	intake := fulfill.New(fulfill.Config{
		Role: fulfill.RoleIntake, Store: "abc", Mode: order.ModeLive, Policy: order.DefaultPolicy(),
		SweepInterval: time.Hour, SweepGrace: time.Hour,
	}, newStore(t, ep), sf, sup, discard())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { proc.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitQueueShare(t, shareReplica{svc: proc}, 1)
	waitWatching(t, &ws.lockingStore)
	send := func(id uint64, scope, hash string) {
		t.Helper()
		if _, err := intake.Intake(ctx, delivery(id, scope, 0, hash)); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
		for {
			select {
			case k := <-ws.handled:
				if k.ID == id {
					return
				}
			case <-deadline:
				t.Fatalf("the watch never told of order %d's write", id)
			}
		}
	}
	return proc, ws, send
}

// An event the watch tells of while the order's run is under way, after
// its load, runs the order again when the run ends: here the payment of
// an order the run found not yet payable.
func TestAnEventWrittenDuringTheRunRunsItAgain(t *testing.T) {
	sf := &gateStorefront{storefront: storefront{status: map[uint64]uint32{1: 7}},
		id: 1, entered: make(chan struct{}, 10), gate: make(chan struct{})}
	proc, _, send := watchedPair(t, sf, time.Hour)
	t.Cleanup(func() { close(sf.gate) })
	send(1, "store/order/created", "c1")
	<-sf.entered // the run has loaded the order, and reads it: status 7
	send(1, "store/order/statusUpdated", "paid")
	sf.gate <- struct{}{}
	select {
	case <-sf.entered: // the run for the payment reads 11
	case <-time.After(30 * time.Second):
		t.Fatal("the order was not run again for the event written during its run")
	}
	sf.set(1, 11)
	sf.gate <- struct{}{}
	h := &harness{svc: []*fulfill.Service{proc}}
	if o := h.waitState(t, order.Key{Store: "abc", ID: 1}, order.Submitted); len(o.Events) != 2 {
		t.Fatalf("order 1: %d events, want both", len(o.Events))
	}
}

// Sweeps that find an order due while it waits for a worker, or runs, do
// not run it again after its run, when that run saw the entry they found
// (in a surge, each sweep finds hundreds of such orders).
func TestASweepOfAnOrderItsRunSawDoesNotRunItAgain(t *testing.T) {
	sf := &gateStorefront{storefront: storefront{status: map[uint64]uint32{1: 11, 3: 11, 9: 11}},
		id: 9, entered: make(chan struct{}, 10), gate: make(chan struct{})}
	proc, ws, send := watchedPair(t, sf, 20*time.Millisecond)
	t.Cleanup(func() { close(sf.gate) })
	send(9, "store/order/created", "c9")
	<-sf.entered // the one worker is busy with order 9
	send(1, "store/order/created", "c1")
	send(3, "store/order/created", "c3")
	for from := ws.sweeps.Load(); ws.sweeps.Load() < from+3; time.Sleep(5 * time.Millisecond) {
	}
	// Sweeps from here on would find order 1 due until its run ends, and
	// one that ends after the run would run it again, rightly: the test
	// is of the sweeps above, made while it waited.
	ws.quiet.Store(true)
	for from := ws.sweeps.Load(); ws.sweeps.Load() < from+2; time.Sleep(5 * time.Millisecond) {
	} // (any sweep begun before, over)
	sf.gate <- struct{}{}
	h := &harness{svc: []*fulfill.Service{proc}}
	h.waitState(t, order.Key{Store: "abc", ID: 3}, order.Submitted)
	k := order.Key{Store: "abc", ID: 1}
	h.waitState(t, k, order.Submitted)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if n := ws.tried[k]; n != 1 {
		t.Fatalf("order 1's lock tried %d times; want once: the sweeps found the entry its run saw", n)
	}
}

// retryAndWait stores orders 1..n as live retries due at due, payable,
// and waits until svc sees each SUBMITTED.
func retryAndWait(t *testing.T, st *etcdstore.Store, sf *storefront, svc *fulfill.Service, n uint64, due time.Time) {
	t.Helper()
	ahead := due.After(time.Now())
	for id := uint64(1); id <= n; id++ {
		sf.set(id, 11)
		o := order.New(order.Key{Store: "abc", ID: id}, time.Now())
		o.State, o.Mode, o.Attempts, o.NextAttemptAt = order.RetryScheduled, order.ModeLive, 1, due
		putRecord(t, st, o, fulfill.QueueOp{At: due})
	}
	if ahead && time.Until(due) < 2*time.Second {
		t.Fatalf("writing the records took until %s before they came due: the watch may have run them, not the sweeps", time.Until(due).Round(time.Millisecond))
	}
	h := &harness{svc: []*fulfill.Service{svc}}
	for id := uint64(1); id <= n; id++ {
		h.waitState(t, order.Key{Store: "abc", ID: id}, order.Submitted)
	}
}
