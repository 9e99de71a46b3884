package order

import (
	"fmt"
	"time"
)

// State is where an order is in the flow.
type State int

// The order states of design.md, plus Validated for validate mode.
const (
	StateUnspecified State = iota
	Received
	Ineligible
	Submitting
	Submitted
	WrittenBack
	RetryScheduled
	Rejected
	NeedsReview
	Failed
	Validated
)

var stateNames = map[State]string{
	StateUnspecified: "UNSPECIFIED",
	Received:         "RECEIVED",
	Ineligible:       "INELIGIBLE",
	Submitting:       "SUBMITTING",
	Submitted:        "SUBMITTED",
	WrittenBack:      "WRITTEN_BACK",
	RetryScheduled:   "RETRY_SCHEDULED",
	Rejected:         "REJECTED",
	NeedsReview:      "NEEDS_REVIEW",
	Failed:           "FAILED",
	Validated:        "VALIDATED",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ParseState returns the state of a name such as "SUBMITTED".
func ParseState(name string) (State, bool) {
	for s, n := range stateNames {
		if n == name {
			return s, true
		}
	}
	return StateUnspecified, false
}

// transitions is the one table of allowed state changes. Anything not listed
// is refused with ErrInvalidTransition.
var transitions = map[State][]State{
	// Looked at: not for the supplier (yet), about to submit, or the
	// storefront already carries the supplier reference (adopted).
	Received:   {Ineligible, Submitting, Submitted},
	Ineligible: {Ineligible, Submitting, Submitted},
	Validated:  {Ineligible, Submitting, Submitted, Validated},
	// A supplier call was made (or may have been). Submitting -> Submitting
	// is an interrupted validate-only attempt made again: it created nothing.
	Submitting: {Submitted, Validated, RetryScheduled, Rejected, NeedsReview, Failed, Ineligible, Submitting},
	// Nothing was created: try again, give up, or the order changed.
	RetryScheduled: {Submitting, Ineligible, Submitted, Failed},
	Submitted:      {WrittenBack},
	// A person acts: retry a refused or failed order, or resolve a review
	// with the supplier's id (Submitted) or "the supplier has none" (Received).
	Rejected:    {Received},
	Failed:      {Received},
	NeedsReview: {Submitted, Received},
	WrittenBack: {},
}

// CanTransition reports whether the table allows from -> to.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Transition moves the order to state to, or returns ErrInvalidTransition.
func (o *Order) Transition(to State, now time.Time) error {
	if !CanTransition(o.State, to) {
		return fmt.Errorf("%w: %s -> %s (order %s)", ErrInvalidTransition, o.State, to, o.Key)
	}
	if o.State == Ineligible && to != Ineligible {
		// The order is eligible now: the old reason no longer holds.
		o.IneligibleReason = ""
	}
	o.State = to
	o.UpdatedAt = now
	return nil
}

// SetIneligible records that the order is not for the supplier, and why. A
// later event (or ProcessOrder) looks at it again. BigCommerce answered, so
// an earlier run's error (a failed read, a hold of the breaker, a throttled
// try) no longer says why the order waits, and is cleared.
func (o *Order) SetIneligible(reason string, now time.Time) error {
	if err := o.Transition(Ineligible, now); err != nil {
		return err
	}
	o.IneligibleReason, o.NextAttemptAt, o.LastError = reason, time.Time{}, ""
	o.StorefrontAnswered()
	return nil
}

// StorefrontFailed records that the order could not be read from
// BigCommerce: nothing else changes, and it is read again at next, not
// sooner (ReadAfter).
func (o *Order) StorefrontFailed(reason string, next, now time.Time) {
	o.LastError, o.NextAttemptAt, o.UpdatedAt = "reading the order from BigCommerce: "+reason, next, now
	o.ReadAfter = next
}

// StorefrontAnswered records that BigCommerce gave the order: the wait of
// a failed read (ReadAfter) is over.
func (o *Order) StorefrontAnswered() { o.ReadAfter = time.Time{} }

// ReadTooSoon reports whether a run at now comes before the time a failed
// read of the order set (ReadAfter), and should only keep the order queued
// for then.
func (o *Order) ReadTooSoon(now time.Time) bool { return now.Before(o.ReadAfter) }

// HeldBack records that the order's run stopped before anything was sent
// (and mostly before anything was read), because the supplier is not being
// sent live orders now (the breaker): the state stays, no attempt is
// counted, and the order is looked at again at next.
func (o *Order) HeldBack(reason string, next, now time.Time) {
	o.LastError, o.NextAttemptAt, o.UpdatedAt = reason, next, now
}

// SupplierHolds are the states in which the supplier has the order and the
// record carries its offline_order_id (HasSupplierOrder): no webhook can
// change what happens next, so intake only remembers such an order's events
// and queues no work for them.
var SupplierHolds = []State{Submitted, WrittenBack}

// Final reports whether nothing more will happen to the order without a
// person: the supplier holds it, or it waits for review, or it failed.
func (s State) Final() bool {
	switch s {
	case Submitted, WrittenBack, Rejected, NeedsReview, Failed:
		return true
	}
	return false
}
