// Package fulfill is the use case of the product: the steps of design.md's
// flow, from recording a webhook event to storing the supplier's
// offline_order_id. It declares the small interfaces it needs (Store,
// Storefront, Supplier) and knows nothing of etcd, HTTP or gRPC.
package fulfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/failpoint"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/webhookscope"
)

// Role is the part of the flow a replica runs.
type Role int

const (
	// RoleAll records events and processes orders: those it recorded at
	// once, others' when a sweep finds them due.
	RoleAll Role = iota
	// RoleIntake only records events, queued due at once for the replicas
	// that process (RoleProcess): no workers, no sweeps. Its answers to
	// BigCommerce then never wait for a CPU behind order processing.
	RoleIntake
	// RoleProcess is RoleAll that also follows the queue (an etcd watch),
	// so an order queued due now by any replica is processed at once.
	RoleProcess
)

// ParseRole reads a role's name (its String): all, intake or process.
func ParseRole(name string) (Role, bool) {
	for _, r := range []Role{RoleAll, RoleIntake, RoleProcess} {
		if r.String() == name {
			return r, true
		}
	}
	return RoleAll, false
}

func (r Role) String() string {
	switch r {
	case RoleIntake:
		return "intake"
	case RoleProcess:
		return "process"
	}
	return "all"
}

// Config tunes a Service.
type Config struct {
	// Role is the part of the flow this replica runs (default RoleAll).
	Role Role
	// Store is the BigCommerce store hash this service serves.
	Store string
	// Mode is validate (nothing is created) or live.
	Mode order.Mode
	// ValidateFirst makes every live submission a validate_only call first.
	ValidateFirst bool
	// Breaker is the number of live calls in a row ending ambiguous after
	// which live orders are held back (see Breaker); 0: never.
	Breaker int
	// WriteBack writes the supplier's id to the BigCommerce order's
	// metafield once the order is SUBMITTED (step 9), which makes it
	// WRITTEN_BACK.
	WriteBack bool
	Policy    order.Policy
	Retry     order.RetryPolicy
	// Workers process orders concurrently (default 16).
	Workers int
	// SweepInterval is how often queued work is looked for (default 5 s).
	SweepInterval time.Duration
	// SweepGrace leaves a fresh event to the replica that recorded it for
	// this long before other replicas' sweeps take it (default 10 s).
	SweepGrace time.Duration
	// SupplierTimeout bounds one supplier call, from the moment its intent
	// is written (default 30 s).
	SupplierTimeout time.Duration
	// StorefrontRetry is the wait after a transient BigCommerce failure
	// (default 30 s).
	StorefrontRetry time.Duration
	// OrdersSweep is how often the Orders API is swept for orders whose
	// webhooks never came (0: never), using Lister.
	OrdersSweep time.Duration
	Lister      OrderLister
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service runs the flow of one order. Any number of Services, in any number
// of processes, may share one Store.
type Service struct {
	cfg        Config
	store      Store
	storefront Storefront
	supplier   Supplier
	breaker    *Breaker // nil: off
	log        *slog.Logger

	work chan order.Key
	// share divides the queue among the replicas that process orders
	// (nil: not divided, this replica takes every due order).
	share atomic.Pointer[queueShare]
	// passed are the due orders the last sweep left to their owners
	// (share), and when a sweep first left each while this replica's
	// breaker did not hold (see takesDue); left, the same whether it held
	// or not (see sweep).
	sweepMu sync.Mutex
	passed  map[order.Key]time.Time
	left    map[order.Key]time.Time
	// sweepNow asks Run for a sweep now (a replica left the division).
	sweepNow chan struct{}
	// shared is closed once share was first set.
	shared     chan struct{}
	sharedOnce sync.Once

	mu sync.Mutex
	// inflight are the orders queued or running here, and whether to run
	// one again after its run: 0 no, rerunAlways, or the revision of a
	// queue write that its run may not have seen (see scheduleWrite).
	inflight map[order.Key]int64
	// held are the orders this replica's breaker held back, and until
	// when: a worker skips them until then (see stillHeld).
	held      map[order.Key]time.Time
	heldSweep int // len(held) at which noteHeld next forgets past ones

	// stopping ends at Stop; stop ends it.
	stopping context.Context
	stop     context.CancelFunc
}

// New returns a Service. Run must be called for queued work to be processed.
func New(cfg Config, store Store, sf Storefront, sup Supplier, log *slog.Logger) *Service {
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 5 * time.Second
	}
	if cfg.SweepGrace <= 0 {
		cfg.SweepGrace = 10 * time.Second
	}
	if cfg.SupplierTimeout <= 0 {
		cfg.SupplierTimeout = 30 * time.Second
	}
	if cfg.StorefrontRetry <= 0 {
		cfg.StorefrontRetry = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	stopping, stop := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, store: store, storefront: sf, supplier: sup, log: log,
		work:     make(chan order.Key, 4096),
		inflight: map[order.Key]int64{},
		held:     map[order.Key]time.Time{},
		shared:   make(chan struct{}),
		sweepNow: make(chan struct{}, 1),
		stopping: stopping, stop: stop,
	}
	if cfg.Breaker > 0 {
		s.breaker = NewBreaker(cfg.Breaker, cfg.Now, log)
	}
	return s
}

// BreakerState reports the supplier breaker's state; ok is false when it
// is off.
func (s *Service) BreakerState() (st BreakerState, ok bool) {
	if s.breaker == nil {
		return BreakerState{}, false
	}
	return s.breaker.State(), true
}

// Delivery is one webhook delivery, as the gateway passed it on.
type Delivery struct {
	Scope       string
	StoreID     string
	Producer    string // "stores/<hash>"
	OrderID     uint64
	NewStatusID uint32
	Hash        string // the envelope hash (same for duplicates of one event)
	WebhookID   string // the webhook-id header, when signed
}

// IntakeResult says what became of a delivery.
type IntakeResult struct {
	Recorded  bool // recorded now, for the first time
	Duplicate bool // recorded before: a no-op
	Ignored   bool // not an order event this service acts on
}

// Errors of the use case that callers act on.
var (
	// ErrInvalidDelivery: the delivery cannot name an order.
	ErrInvalidDelivery = errors.New("invalid delivery")
	// ErrUnknownStore: the delivery or the order is of a store this service
	// does not serve.
	ErrUnknownStore = errors.New("unknown store")
)

// Intake is steps 1 and 2: record the event durably in one write (none for
// a delivery seen before), queue the order, and return. Processing goes on
// asynchronously in Run.
func (s *Service) Intake(ctx context.Context, d Delivery) (IntakeResult, error) {
	if !webhookscope.ActedOn(d.Scope) {
		return IntakeResult{Ignored: true}, nil
	}
	if d.OrderID == 0 {
		return IntakeResult{}, fmt.Errorf("%w: data.id (the order id) is missing", ErrInvalidDelivery)
	}
	store := s.cfg.Store
	if d.Producer != "" {
		p, ok := strings.CutPrefix(d.Producer, "stores/")
		if !ok || p != s.cfg.Store {
			return IntakeResult{}, fmt.Errorf("%w: producer %q; this service serves stores/%s", ErrUnknownStore, d.Producer, s.cfg.Store)
		}
	}
	k := order.Key{Store: store, ID: d.OrderID}
	now := s.cfg.Now()
	ev := order.Event{Key: deliveryKey(d), Scope: d.Scope, NewStatusID: d.NewStatusID, ReceivedAt: now}

	due := now.Add(s.cfg.SweepGrace)
	if s.cfg.Role == RoleIntake {
		due = now // for whichever replica processes; none runs here
	}
	recorded, err := s.recordEvent(ctx, k, ev, due)
	if err != nil {
		return IntakeResult{}, err
	}
	return IntakeResult{Recorded: recorded, Duplicate: !recorded}, nil
}

// recordEvent records an event of an order (a webhook delivery, or a change
// found by the Orders API sweep), queues the order, due at due, and hands
// it to this replica's workers. The duplicate fast path is in the store: an
// event seen before costs one read and no write, and an event of an order
// the supplier already has is remembered without queueing work.
func (s *Service) recordEvent(ctx context.Context, k order.Key, ev order.Event, due time.Time) (recorded bool, err error) {
	recorded, queued, err := s.store.RecordDelivery(ctx, k, ev, due, order.SupplierHolds)
	if err != nil {
		return false, err
	}
	failpoint.Inject("after-intake")
	if queued {
		s.schedule(k)
	}
	return recorded, nil
}

// deliveryKey is the dedupe key of a delivery: BigCommerce's hash, equal for
// duplicates of one event; else the webhook-id; else a digest of what the
// event says.
func deliveryKey(d Delivery) string {
	var id string
	switch {
	case d.Hash != "":
		id = "h-" + d.Hash
	case d.WebhookID != "":
		id = "w-" + d.WebhookID
	default:
		sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%d", d.Scope, d.Producer, d.OrderID, d.NewStatusID))
		return "d-" + hex.EncodeToString(sum[:16])
	}
	// Keys become etcd key segments: keep them short and free of '/'.
	if len(id) > 100 || strings.ContainsAny(id, "/\x00") {
		sum := sha256.Sum256([]byte(id))
		return "x-" + hex.EncodeToString(sum[:16])
	}
	return id
}

// Get returns the record of one order of this service's store.
func (s *Service) Get(ctx context.Context, k order.Key) (*order.Order, error) {
	if err := s.serves(k); err != nil {
		return nil, err
	}
	return s.store.Get(ctx, k)
}

// List returns a page of records of this service's store (f.Store empty
// means it; another store is refused, as in a shared etcd its records are
// another deployment's).
func (s *Service) List(ctx context.Context, f ListFilter) ([]*order.Order, string, error) {
	if f.Store == "" {
		f.Store = s.cfg.Store
	}
	if f.Store != s.cfg.Store {
		return nil, "", fmt.Errorf("%w: store %q; this service serves store %q", ErrUnknownStore, f.Store, s.cfg.Store)
	}
	if f.PageSize <= 0 {
		f.PageSize = 50
	}
	f.PageSize = min(f.PageSize, 500)
	return s.store.List(ctx, f)
}

// errShuttingDown stops the runs that Stop interrupts.
var errShuttingDown = errors.New("the service is shutting down")

// Stop is the start of a shutdown: every run of Process from now on, and
// every run in progress that has not yet committed to a supplier call,
// stops (whoever called it: a worker or an operator). Runs already
// committed finish their call and store the answer.
func (s *Service) Stop() { s.stop() }

// untilStopped returns ctx, also ended by Stop (at once when Stop was
// called before).
func (s *Service) untilStopped(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if s.stopping.Err() != nil {
		cancel(errShuttingDown)
	}
	unregister := context.AfterFunc(s.stopping, func() { cancel(errShuttingDown) })
	return ctx, func() { unregister(); cancel(nil) }
}

// Mode is the supplier mode of the service.
func (s *Service) Mode() order.Mode { return s.cfg.Mode }

// WritesBack reports whether created orders are written back to
// BigCommerce (step 9).
func (s *Service) WritesBack() bool { return s.cfg.WriteBack }

// Run processes queued work with Workers goroutines and sweeps the store's
// queue every SweepInterval (work of a replica that died, scheduled
// retries, events queued when this replica was busy) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Role == RoleIntake {
		<-ctx.Done() // the processing replicas do the rest
		return nil
	}
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.worker(ctx) })
	}
	if on, every := s.OrdersSweepEvery(); on {
		wg.Go(func() { s.sweepOrdersEvery(ctx, every) })
	}
	wg.Go(func() { s.shareQueue(ctx) })
	// The first sweep waits (a little) until this replica knows the
	// others, so that replicas starting together do not each take the
	// whole backlog.
	select {
	case <-s.shared:
	case <-time.After(shareWait):
	case <-ctx.Done():
	}
	if s.cfg.Role == RoleProcess {
		wg.Go(func() { s.followQueue(ctx) })
	}
	s.sweep(ctx)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			s.sweep(ctx)
		case <-s.sweepNow:
			s.sweep(ctx)
		}
	}
}

// sweepTimeout bounds one read of the queue: with etcd unreachable, the
// client would otherwise wait for a connection for ever, and no sweep
// would fail, or say so, again.
const sweepTimeout = 10 * time.Second

func (s *Service) sweep(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	entries, err := s.store.Due(dctx, s.cfg.Store, s.cfg.Now(), cap(s.work)/2)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "sweep failed", "err", err)
		}
		return
	}
	now := s.cfg.Now()
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	passed, left := s.passed, s.left
	s.passed, s.left = map[order.Key]time.Time{}, map[order.Key]time.Time{}
	holding := s.holdingLive()
	for _, e := range entries {
		k := e.Key
		takes := s.takesDue(k, now, passed)
		if first, ok := left[k]; ok && !takes && !holding {
			// Left for longer than a cool-down of this replica's
			// breaker lasts (a probe in flight may add a call's
			// timeout): its owner is not taking it (hung, or alive
			// only by its lease), whether or not this replica's
			// breaker kept it from seeing so (below).
			takes = now.Sub(first) >= s.cfg.SweepInterval*3/2+BreakerMaxCooldown
		}
		if takes {
			s.scheduleWrite(k, e.Rev)
			continue
		}
		// Left to its owner. Forgotten once no sweep finds it due and
		// left any more.
		keepFirst(s.left, left, k, now)
		if !holding {
			// Orders left while this replica's own breaker held were
			// not left for their owners' reasons: once the breaker lets
			// orders go, this replica takes others' orders only after
			// seeing them left that long again (else every replica
			// would take the whole backlog at the end of its cool-down,
			// and race the others for every lock).
			keepFirst(s.passed, passed, k, now)
		}
	}
}

// keepFirst records in to when k was first found left: as in from, or now.
func keepFirst(to, from map[order.Key]time.Time, k order.Key, now time.Time) {
	first, ok := from[k]
	if !ok {
		first = now
	}
	to[k] = first
}

// dueSlack is how far ahead of this replica's clock an entry written "due
// now" may be (the clocks of other machines) and still be run by the watch,
// when due; entries due later are left to the sweeps.
const dueSlack = time.Second

// followQueue schedules each order whose queue entry is written due now
// (by an intake replica, or a run that ended with an event unseen), until
// ctx ends. Entries due later (another replica's fresh event, left to it
// for SWEEP_GRACE; a backoff; a hold) are left to the sweeps. Once the
// watch is in place, a sweep finds what was queued before it; a failed
// watch is followed again.
func (s *Service) followQueue(ctx context.Context) {
	s.keepUp(ctx, "following the queue failed; sweeps find due work meanwhile", func() error {
		return s.store.FollowQueue(ctx, s.cfg.Store, func() { s.sweep(ctx) }, func(k order.Key, due time.Time, rev int64) {
			if !s.takesWritten(k) {
				return
			}
			switch wait := due.Sub(s.cfg.Now()); {
			case wait <= 0:
				s.scheduleWrite(k, rev)
			case wait <= dueSlack:
				// Due within a second: written by a machine whose clock
				// is ahead, or by a run that kept to its time and queued
				// the order for it. Run when due, not before: a run that
				// came early would only queue it again, and wake itself.
				time.AfterFunc(wait, func() {
					if ctx.Err() == nil {
						s.scheduleWrite(k, rev)
					}
				})
			}
		})
	})
}

// keepUp runs f until ctx ends, and again a second after each time it
// ends sooner, saying so at warn with its error.
func (s *Service) keepUp(ctx context.Context, warn string, f func() error) {
	for {
		err := f()
		if ctx.Err() != nil {
			return
		}
		s.log.WarnContext(ctx, warn, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Role is the part of the flow this replica runs.
func (s *Service) Role() Role { return s.cfg.Role }

// serves refuses an order of another store. Stores may share one etcd,
// and only the replicas of an order's own store hold its BigCommerce and
// TropShip credentials and settings.
func (s *Service) serves(k order.Key) error {
	if k.Store != s.cfg.Store {
		return fmt.Errorf("%w: order %d of store %q; this service serves store %q", ErrUnknownStore, k.ID, k.Store, s.cfg.Store)
	}
	return nil
}

// rerunAlways asks for an order already queued or running here to be run
// again after its run, whatever that run saw.
const rerunAlways = -1

// schedule queues an order for a worker of this process, once: an order
// already queued or running here is marked to run again instead.
func (s *Service) schedule(k order.Key) { s.scheduleWrite(k, rerunAlways) }

// scheduleWrite is schedule for a queue entry written at revision rev (a
// sweep found it due, or the watch told of it): an order already queued
// or running here runs again only if its run loaded it before that write.
// A run that had seen the write would only find its work done, at the
// cost of a lock, a read and an unlock in etcd: in a surge, where each
// sweep finds hundreds of due orders already queued or running, that was
// 0.2 to 0.9 runs per order. A run that saw the write and then failed
// (BigCommerce, etcd, a lost lock) left its entry due: the next sweep
// finds it, and an order not queued or running here is always queued.
func (s *Service) scheduleWrite(k order.Key, rev int64) {
	if s.cfg.Role == RoleIntake {
		return // no workers here: the processing replicas follow the queue
	}
	if rev <= 0 {
		rev = rerunAlways // no revision known: whatever the run saw
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.inflight[k]; ok {
		if v == rerunAlways || rev == rerunAlways {
			s.inflight[k] = rerunAlways
		} else {
			s.inflight[k] = max(v, rev)
		}
		return
	}
	select {
	case s.work <- k:
		s.inflight[k] = 0
	default:
		// Full: the queue entry in the store stays, and a sweep finds it.
	}
}

func (s *Service) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-s.work:
			for {
				var seen int64 // the revision the run loaded at (0: none)
				if s.stillHeld(k) {
					// Its run would only hold it back again.
				} else {
					var err error
					if _, seen, err = s.process(ctx, k, ProcessOptions{NoWait: true}); err != nil && ctx.Err() == nil {
						s.log.WarnContext(ctx, "processing failed; the order stays queued",
							"store", k.Store, "order_id", k.ID, "err", err)
					}
				}
				s.mu.Lock()
				v := s.inflight[k]
				if (v != rerunAlways && v <= seen) || ctx.Err() != nil {
					delete(s.inflight, k)
					s.mu.Unlock()
					break
				}
				s.inflight[k] = 0
				s.mu.Unlock()
			}
		}
	}
}
