package order

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is one thing a person did to an order, kept on the record.
type Action struct {
	Kind           string    `json:"kind"`
	Actor          string    `json:"actor"`
	Note           string    `json:"note,omitempty"`
	At             time.Time `json:"at"`
	From           State     `json:"from"`
	To             State     `json:"to"`
	OfflineOrderID string    `json:"offline_order_id,omitempty"`
}

// The kinds of operator action.
const (
	ActionRetry                = "retry"
	ActionResolveFound         = "resolve-found"
	ActionResolveNotAtSupplier = "resolve-not-at-supplier"
)

// ErrActorRequired: an operator action must say who acted.
var ErrActorRequired = errors.New("actor is required: say who is acting")

// Retry puts a REJECTED or FAILED order back to RECEIVED with a fresh
// attempt budget, so that it is processed again.
func (o *Order) Retry(actor, note string, now time.Time) error {
	if err := requireActor(actor); err != nil {
		return err
	}
	if o.State != Rejected && o.State != Failed {
		return fmt.Errorf("%w: only REJECTED or FAILED orders can be retried; order %s is %s",
			ErrInvalidTransition, o.Key, o.State)
	}
	return o.act(Action{Kind: ActionRetry, Actor: actor, Note: note, At: now}, Received, func() {
		o.Attempts, o.ReviewReason, o.NextAttemptAt = 0, "", time.Time{}
	})
}

// ResolveFound settles a NEEDS_REVIEW order with the supplier's id that a
// person found: the order is SUBMITTED and never sent again.
func (o *Order) ResolveFound(offlineOrderID, actor, note string, now time.Time) error {
	if err := requireActor(actor); err != nil {
		return err
	}
	offlineOrderID = strings.TrimSpace(offlineOrderID)
	if offlineOrderID == "" {
		return fmt.Errorf("%w: offline_order_id is empty", ErrInvalidTransition)
	}
	if o.State != NeedsReview {
		return fmt.Errorf("%w: only NEEDS_REVIEW orders can be resolved; order %s is %s",
			ErrInvalidTransition, o.Key, o.State)
	}
	a := Action{Kind: ActionResolveFound, Actor: actor, Note: note, At: now, OfflineOrderID: offlineOrderID}
	return o.act(a, Submitted, func() {
		o.OfflineOrderID, o.SubmittedAt, o.ReviewReason = offlineOrderID, now, ""
	})
}

// ResolveNotAtSupplier settles a NEEDS_REVIEW order that a person confirmed
// the supplier does not have: it is safe to send again, so it goes back to
// RECEIVED, with a fresh attempt budget (as Retry).
func (o *Order) ResolveNotAtSupplier(actor, note string, now time.Time) error {
	if err := requireActor(actor); err != nil {
		return err
	}
	if o.State != NeedsReview {
		return fmt.Errorf("%w: only NEEDS_REVIEW orders can be resolved; order %s is %s",
			ErrInvalidTransition, o.Key, o.State)
	}
	a := Action{Kind: ActionResolveNotAtSupplier, Actor: actor, Note: note, At: now}
	return o.act(a, Received, func() { o.Attempts, o.ReviewReason, o.NextAttemptAt = 0, "", time.Time{} })
}

// requireActor refuses an action that does not say who acts, before
// anything else is looked at.
func requireActor(actor string) error {
	if strings.TrimSpace(actor) == "" {
		return ErrActorRequired
	}
	return nil
}

// WaitsForPerson says, for an order that waits for a person (REJECTED,
// NEEDS_REVIEW, FAILED), what that person does; "" for any other state.
func (o *Order) WaitsForPerson() string {
	switch o.State {
	case Rejected:
		return "fix the cause in BigCommerce or the supplier catalogue (review_reason), then RetryOrder"
	case Failed:
		return "find out why in last_error, then RetryOrder"
	case NeedsReview:
		return "search the supplier for reference " + o.Reference +
			", then ResolveOrder with its offline_order_id, or with supplier_has_no_order"
	}
	return ""
}

func (o *Order) act(a Action, to State, apply func()) error {
	if err := requireActor(a.Actor); err != nil {
		return err
	}
	a.From, a.To = o.State, to
	if err := o.Transition(to, a.At); err != nil {
		return err
	}
	apply()
	o.Actions = append(o.Actions, a)
	return nil
}
