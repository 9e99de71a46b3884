// Package order is the domain of the product: an order record, its states, the
// one table of allowed transitions, the eligibility policy and the supplier
// outcomes. It does no I/O and imports nothing from gen/, etcd or net/http.
package order

import (
	"errors"
	"fmt"
	"time"
)

// Key names one BigCommerce order of one store.
type Key struct {
	Store string // BigCommerce store hash
	ID    uint64 // BigCommerce order id
}

func (k Key) String() string { return fmt.Sprintf("%s/%d", k.Store, k.ID) }

// Mode is how supplier calls are made.
type Mode int

const (
	ModeUnspecified Mode = iota
	// ModeValidate asks the supplier to validate only: nothing is created.
	ModeValidate
	// ModeLive creates (and pays for) supplier orders.
	ModeLive
)

func (m Mode) String() string {
	if n, ok := modeNames[m]; ok {
		return n
	}
	return "unspecified"
}

// Event is one recorded webhook event of an order.
type Event struct {
	Key         string    `json:"key"` // delivery dedupe key
	Scope       string    `json:"scope"`
	NewStatusID uint32    `json:"new_status_id,omitempty"`
	ReceivedAt  time.Time `json:"received_at"`
}

// MaxEvents bounds the events kept on a record; older ones are dropped first.
const MaxEvents = 50

// Order is the record of one order.
type Order struct {
	Key            Key    `json:"key"`
	State          State  `json:"state"`
	Reference      string `json:"reference,omitempty"`
	OfflineOrderID string `json:"offline_order_id,omitempty"`
	Attempts       uint32 `json:"attempts,omitempty"`
	// LookupFailures counts failed lookups of the reference since the last
	// ambiguous answer (TROPSHIP_LOOKUP).
	LookupFailures uint32 `json:"lookup_failures,omitempty"`
	// WriteBackFailures counts failed write-backs of the supplier id to
	// BigCommerce since the order was SUBMITTED (step 9).
	WriteBackFailures uint32    `json:"write_back_failures,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	IneligibleReason  string    `json:"ineligible_reason,omitempty"`
	ReviewReason      string    `json:"review_reason,omitempty"`
	StatusID          uint32    `json:"status_id,omitempty"` // BigCommerce status last read
	Mode              Mode      `json:"mode,omitempty"`      // mode of the last supplier call
	Events            []Event   `json:"events,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	SubmittedAt       time.Time `json:"submitted_at,omitzero"`
	NextAttemptAt     time.Time `json:"next_attempt_at,omitzero"`
	// ReadAfter is set when a read of the order from BigCommerce failed:
	// it is not read again before then (BigCommerce's Retry-After, or
	// STOREFRONT_RETRY), even by a run that an event or a sweep started
	// while the failing run was under way. Only a person reads it sooner.
	// Zero once BigCommerce has answered.
	ReadAfter time.Time `json:"read_after,omitzero"`
	// CallDeadline is written with the intent: the supplier call of that
	// attempt is never started after it. A successor that must find out
	// whether the call happened waits until after it.
	CallDeadline time.Time `json:"call_deadline,omitzero"`
	Actions      []Action  `json:"actions,omitempty"`
	// Pending is not stored: it says whether work is queued for the order.
	Pending bool `json:"-"`
}

// New returns the record of an order seen for the first time.
func New(k Key, now time.Time) *Order {
	return &Order{Key: k, State: Received, CreatedAt: now, UpdatedAt: now}
}

// AddEvents records events not yet on the order, keeping at most MaxEvents.
// It reports whether any was new.
func (o *Order) AddEvents(events ...Event) bool {
	seen := make(map[string]bool, len(o.Events))
	for _, e := range o.Events {
		seen[e.Key] = true
	}
	added := false
	for _, e := range events {
		if seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		o.Events = append(o.Events, e)
		added = true
	}
	if n := len(o.Events); n > MaxEvents {
		o.Events = append([]Event(nil), o.Events[n-MaxEvents:]...)
	}
	return added
}

// HasSupplierOrder reports whether the supplier is known to hold the order:
// from here on nothing may be sent again.
func (o *Order) HasSupplierOrder() bool { return o.OfflineOrderID != "" }

// Reference returns the deterministic supplier reference of an order: the same
// order always carries the same reference, at most 50 characters.
func Reference(k Key) string {
	ref := fmt.Sprintf("BC-%s-%d", k.Store, k.ID)
	if len(ref) > 50 {
		// Keep the order id whole: it is what a person searches for.
		id := fmt.Sprintf("-%d", k.ID)
		ref = ref[:50-len(id)] + id
	}
	return ref
}

// Errors callers act on.
var (
	// ErrInvalidTransition: the state machine does not allow the change.
	ErrInvalidTransition = errors.New("invalid order state transition")
)
