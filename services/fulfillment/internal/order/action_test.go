package order

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)

func inState(st State) *Order {
	o := New(Key{Store: "s", ID: 1}, t0)
	o.State, o.Reference, o.Attempts, o.ReviewReason = st, "BC-s-1", 3, "why"
	return o
}

// Who acts is asked first: an action without an actor is a bad request
// (400), whatever the order's state, not a conflict with it (409).
func TestActionsAskForTheActorFirst(t *testing.T) {
	for _, act := range []func(*Order) error{
		func(o *Order) error { return o.Retry(" ", "", t0) },
		func(o *Order) error { return o.ResolveFound("TS-1", "", "", t0) },
		func(o *Order) error { return o.ResolveNotAtSupplier("", "", t0) },
	} {
		o := inState(WrittenBack) // no action fits this state
		if err := act(o); !errors.Is(err, ErrActorRequired) {
			t.Errorf("action without actor on a WRITTEN_BACK order: %v, want ErrActorRequired", err)
		}
		if o.State != WrittenBack || len(o.Actions) != 0 {
			t.Errorf("refused action changed the order: %+v", o)
		}
	}
}

func TestResolveNotAtSupplierGivesAFreshBudget(t *testing.T) {
	o := inState(NeedsReview)
	if err := o.ResolveNotAtSupplier("ops", "checked the portal", t0); err != nil {
		t.Fatal(err)
	}
	if o.State != Received || o.Attempts != 0 || o.ReviewReason != "" || len(o.Actions) != 1 ||
		o.Actions[0].From != NeedsReview || o.Actions[0].Actor != "ops" {
		t.Fatalf("resolved order %+v", o)
	}
}

func TestWaitsForPersonNamesTheAction(t *testing.T) {
	for st, want := range map[State]string{Rejected: "RetryOrder", Failed: "RetryOrder", NeedsReview: "ResolveOrder"} {
		if got := inState(st).WaitsForPerson(); !strings.Contains(got, want) {
			t.Errorf("%s: %q does not name %s", st, got, want)
		}
	}
	if got := inState(NeedsReview).WaitsForPerson(); !strings.Contains(got, "BC-s-1") {
		t.Errorf("NEEDS_REVIEW: %q does not name the reference", got)
	}
	for _, st := range []State{Received, Submitted, WrittenBack, RetryScheduled} {
		if got := inState(st).WaitsForPerson(); got != "" {
			t.Errorf("%s waits for nobody, got %q", st, got)
		}
	}
}

// An order that becomes eligible loses its old reason; one BigCommerce
// could not give says when it is read again, and loses that error once
// BigCommerce answered.
func TestIneligibleReasonAndStorefrontRetry(t *testing.T) {
	o := inState(Received)
	o.StorefrontFailed("HTTP 500", t0.Add(30*time.Second), t0)
	if o.NextAttemptAt != t0.Add(30*time.Second) || !strings.Contains(o.LastError, "HTTP 500") || o.State != Received {
		t.Fatalf("after a storefront failure: %+v", o)
	}
	if err := o.SetIneligible("status 7 (Awaiting Payment) is not eligible", t0); err != nil {
		t.Fatal(err)
	}
	if o.State != Ineligible || o.IneligibleReason == "" || !o.NextAttemptAt.IsZero() || o.LastError != "" {
		t.Fatalf("ineligible: %+v; want the reason, and the failed read's error gone", o)
	}
	if err := o.Transition(Ineligible, t0); err != nil || o.IneligibleReason == "" {
		t.Fatalf("still ineligible: reason %q, %v", o.IneligibleReason, err)
	}
	if err := o.Transition(Submitting, t0); err != nil || o.IneligibleReason != "" {
		t.Fatalf("eligible now: reason %q, %v", o.IneligibleReason, err)
	}
}
