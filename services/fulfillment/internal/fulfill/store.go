package fulfill

import (
	"context"
	"errors"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Store keeps order records, delivery dedupe, the queue of pending work and
// the per-order locks. The etcd implementation is etcdstore.Store.
type Store interface {
	// RecordDelivery records one webhook event of an order. A delivery
	// recorded before is a no-op (recorded=false) that writes nothing. A new
	// one is written in one transaction, which also queues the order, due
	// at due, unless its record is in one of the states of skip, or its
	// queue entry is due later than due (a backoff, a hold): then the event
	// is only remembered (queued=false), for the run that comes when due.
	RecordDelivery(ctx context.Context, k order.Key, ev order.Event, due time.Time, skip []order.State) (recorded, queued bool, err error)
	// Get returns the record of an order with its pending events folded in,
	// or ErrNotFound.
	Get(ctx context.Context, k order.Key) (*order.Order, error)
	// List returns a page of records in key order.
	List(ctx context.Context, f ListFilter) (orders []*order.Order, next string, err error)
	// FollowQueue calls fn with each queue entry of store written from the
	// moment it calls ready on (an event queued, a run rescheduled), its
	// due time and the write's revision (see Loaded.Revision), until ctx
	// ends (nil) or the watch fails.
	FollowQueue(ctx context.Context, store string, ready func(), fn func(k order.Key, due time.Time, rev int64)) error
	// Due returns up to limit queued orders of store whose work is due at
	// now. Other stores' queues, in a shared etcd, are never read.
	Due(ctx context.Context, store string, now time.Time, limit int) ([]DueEntry, error)
	// ShareQueue registers this process, with its role, as one of store's
	// replicas that process orders until ctx ends (nil) or the
	// registration fails (an error), and calls set with its own name and
	// every registered replica (sorted by name, its own among them) at
	// once and whenever they change.
	ShareQueue(ctx context.Context, store, role string, set func(self string, peers []Peer)) error
	// Lock takes the order's distributed mutex. It returns ErrLockLost when
	// the process's lock session has ended.
	Lock(ctx context.Context, k order.Key) (Locked, error)
	// TryLock is Lock without waiting: it returns ErrLocked at once when
	// another holder (in this process or another) has the order.
	TryLock(ctx context.Context, k order.Key) (Locked, error)
	// BeginSweep claims the Orders API sweep of a store for this process
	// and reads its progress. It returns ErrLocked at once when another
	// holder is sweeping the store. The claim ends with Finish or Release.
	BeginSweep(ctx context.Context, store string) (Sweep, error)
	// SweepState reads the progress of a store's Orders API sweep (zero:
	// never swept) without claiming it.
	SweepState(ctx context.Context, store string) (SweepState, error)
}

// Peer is a replica that processes a store's orders, as registered by
// ShareQueue: its name and its role (Role.String).
type Peer struct {
	Name, Role string
}

// Sweep is a claimed Orders API sweep of one store.
type Sweep interface {
	// State is the progress stored by the last finished sweep (zero: none).
	State() SweepState
	// Finish stores st and releases the claim, in one write fenced on the
	// claim: it returns ErrFenced, and stores nothing, when the claim was
	// lost meanwhile.
	Finish(ctx context.Context, st SweepState) error
	// Release gives the claim up without storing anything.
	Release(ctx context.Context)
}

// SweepState is the progress of a store's Orders API sweep.
type SweepState struct {
	// Cursor: orders modified before it were listed by an earlier sweep,
	// or modified before the first one (zero: never swept).
	Cursor time.Time `json:"cursor,omitzero"`
	// Since is when the store was first swept: no sweep lists orders
	// modified before it, whatever the overlap.
	Since time.Time `json:"since,omitzero"`
	// LastRun is when the last sweep started.
	LastRun time.Time `json:"last_run,omitzero"`
	// Listed and Recorded count the orders the last sweep listed, and the
	// changes of them it recorded as new events.
	Listed   int `json:"listed"`
	Recorded int `json:"recorded"`
	// LastError says why the last sweep failed ("" when it did not): the
	// cursor then stays, and the next sweep lists the same span again.
	LastError string `json:"last_error,omitempty"`
}

// Locked is an order held under its mutex. Every write is fenced: it succeeds
// only while this process still owns the mutex and nobody else changed the
// record since Load; otherwise it returns ErrFenced and writes nothing.
type Locked interface {
	// Load reads the record (nil when new), the recorded events and whether
	// work is queued for the order. The first Load of a holder is what its
	// run works from: an event recorded after it keeps the order queued
	// at a Done (QueueOp). A later Load (reading a write back) does not
	// count its events as seen.
	Load(ctx context.Context) (Loaded, error)
	// Save writes the record and applies q to the queue entry.
	Save(ctx context.Context, o *order.Order, q QueueOp) error
	// SaveAndUnlock is Save and Unlock in one write: the last write of a
	// run. Once it succeeded, Unlock only drops what the process holds.
	SaveAndUnlock(ctx context.Context, o *order.Order, q QueueOp) error
	// ClaimSupplierID returns the other order of the store whose record
	// holds the supplier's id (taken=true), if any. Else the next save
	// that stores this id stores it only if no other order took it
	// meanwhile, and fails with ErrSupplierIDInUse otherwise. Stores in a
	// shared etcd may use different supplier accounts, so each store has
	// its own ids.
	ClaimSupplierID(ctx context.Context, offlineOrderID string) (owner order.Key, taken bool, err error)
	// Check returns nil while this process still owns the mutex (asked of
	// etcd), else ErrFenced or ErrLockLost.
	Check(ctx context.Context) error
	// Done is closed when the lock may have been lost (the lease ended).
	Done() <-chan struct{}
	// Unlock releases the mutex.
	Unlock(ctx context.Context) error
}

// DueEntry is a queued order whose work is due, and the revision of the
// latest write of its queue entry (see Loaded.Revision).
type DueEntry struct {
	Key order.Key
	Rev int64
}

// Loaded is what Locked.Load read.
type Loaded struct {
	Order  *order.Order // nil when the order has no record yet
	Events []order.Event
	Queued bool
	// Revision is the store's revision the Load read at: a queue entry
	// written at or before it (FollowQueue's rev) was seen by this run.
	Revision int64
}

// QueueOp says what a Save does to the order's queue entry.
type QueueOp struct {
	// Done removes the entry, unless an event was recorded since Load: then
	// the entry stays, due no later than At (when set), so that the event
	// is looked at.
	Done bool
	// At, without Done, (re)schedules the entry.
	At time.Time
}

// ListFilter selects records for List.
type ListFilter struct {
	Store     string      // empty: all stores
	State     order.State // unspecified: all states
	Pending   bool        // only orders queued for work (the queue, not the records)
	PageSize  int
	PageToken string
}

// Errors of the store that callers act on.
var (
	// ErrNotFound: no record of the order.
	ErrNotFound = errors.New("order not found")
	// ErrFenced: a fenced write was refused because the mutex or the record
	// changed hands; the caller must stop without touching the supplier.
	ErrFenced = errors.New("write fenced: lock lost or record changed")
	// ErrLocked: TryLock found the order held by someone else.
	ErrLocked = errors.New("order is locked by another holder")
	// ErrLockLost: the lock session ended (lease expired).
	ErrLockLost = errors.New("lock session lost")
	// ErrUnavailable: the store cannot be reached now; try again later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrBadPageToken: a page token that List did not issue.
	ErrBadPageToken = errors.New("invalid page token")
	// ErrSupplierIDInUse: an operator gave a supplier id that another
	// order's record already holds.
	ErrSupplierIDInUse = errors.New("supplier order id already belongs to another order")
)
