package order_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// allStates is every state the package defines. TestStateNames fails when a
// state is added without being listed here, so the transition spec below
// has to be extended with it.
var allStates = []order.State{
	order.StateUnspecified,
	order.Received,
	order.Ineligible,
	order.Submitting,
	order.Submitted,
	order.WrittenBack,
	order.RetryScheduled,
	order.Rejected,
	order.NeedsReview,
	order.Failed,
	order.Validated,
}

// allowed is the specification of the state machine, written independently
// of the package's table: design.md's order states plus the reasons given
// in the code's comments. Any pair not listed must be refused.
var allowed = map[order.State][]order.State{
	// design.md: RECEIVED -> INELIGIBLE | SUBMITTING; SUBMITTED when the
	// storefront already carries the supplier reference (adopted).
	order.Received: {order.Ineligible, order.Submitting, order.Submitted},
	// Looked at again after a later event: still ineligible (new reason),
	// now eligible, or adopted.
	order.Ineligible: {order.Ineligible, order.Submitting, order.Submitted},
	// Validate mode: validated orders are looked at again like received ones.
	order.Validated: {order.Ineligible, order.Submitting, order.Submitted, order.Validated},
	// design.md: SUBMITTING -> SUBMITTED | RETRY_SCHEDULED | REJECTED |
	// NEEDS_REVIEW | FAILED; plus VALIDATED (validate mode), INELIGIBLE (the
	// order changed), SUBMITTING (an interrupted validate-only attempt).
	order.Submitting: {
		order.Submitted, order.Validated, order.RetryScheduled, order.Rejected,
		order.NeedsReview, order.Failed, order.Ineligible, order.Submitting,
	},
	// Nothing was created: try again, give up, the order changed, or adopted.
	order.RetryScheduled: {order.Submitting, order.Ineligible, order.Submitted, order.Failed},
	// design.md: SUBMITTED -> WRITTEN_BACK, and nothing else.
	order.Submitted: {order.WrittenBack},
	// A person retries a refused or failed order.
	order.Rejected: {order.Received},
	order.Failed:   {order.Received},
	// A lookup or a person resolves a review: the supplier's id, or "the
	// supplier has none".
	order.NeedsReview: {order.Submitted, order.Received},
	order.WrittenBack: nil,
	// The zero state is never a real record's state.
	order.StateUnspecified: nil,
}

func TestStateNames(t *testing.T) {
	tests := []struct {
		state order.State
		name  string
	}{
		{order.StateUnspecified, "UNSPECIFIED"},
		{order.Received, "RECEIVED"},
		{order.Ineligible, "INELIGIBLE"},
		{order.Submitting, "SUBMITTING"},
		{order.Submitted, "SUBMITTED"},
		{order.WrittenBack, "WRITTEN_BACK"},
		{order.RetryScheduled, "RETRY_SCHEDULED"},
		{order.Rejected, "REJECTED"},
		{order.NeedsReview, "NEEDS_REVIEW"},
		{order.Failed, "FAILED"},
		{order.Validated, "VALIDATED"},
	}
	if len(tests) != len(allStates) {
		t.Fatalf("%d names tested for %d states", len(tests), len(allStates))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.state.String(); got != tt.name {
				t.Errorf("State(%d).String() = %q, want %q", int(tt.state), got, tt.name)
			}
			got, ok := order.ParseState(tt.name)
			if !ok || got != tt.state {
				t.Errorf("ParseState(%q) = %v, %v; want %v, true", tt.name, got, ok, tt.state)
			}
		})
	}

	// A state after the last one listed has no name: a new state must be
	// added to allStates and to the transition spec.
	next := slices.Max(allStates) + 1
	if got, want := next.String(), fmt.Sprintf("State(%d)", int(next)); got != want {
		t.Errorf("State(%d).String() = %q, want %q: a new state? add it to allStates and allowed", int(next), got, want)
	}
}

func TestParseStateUnknown(t *testing.T) {
	for _, name := range []string{"", "submitted", "Submitted", " SUBMITTED", "SUBMITTED ", "State(99)", "WRITTEN-BACK", "bogus"} {
		t.Run(name, func(t *testing.T) {
			if s, ok := order.ParseState(name); ok {
				t.Errorf("ParseState(%q) = %v, true; want false", name, s)
			}
		})
	}
}

func TestCanTransitionExhaustive(t *testing.T) {
	if len(allowed) != len(allStates) {
		t.Fatalf("spec covers %d states, want all %d", len(allowed), len(allStates))
	}
	for _, from := range allStates {
		for _, to := range allStates {
			want := slices.Contains(allowed[from], to)
			if got := order.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%v, %v) = %v, want %v", from, to, got, want)
			}
		}
	}
	// Values outside the enum are never allowed either way.
	for _, bogus := range []order.State{-1, 99} {
		for _, s := range allStates {
			if order.CanTransition(bogus, s) || order.CanTransition(s, bogus) {
				t.Errorf("CanTransition allows %v <-> %v", bogus, s)
			}
		}
	}
}

// reachable returns every state reachable from s by allowed transitions.
func reachable(s order.State) map[order.State]bool {
	seen := map[order.State]bool{}
	queue := []order.State{s}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, to := range allStates {
			if order.CanTransition(cur, to) && !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	return seen
}

// The invariants of design.md, checked on the package's table as a graph: a
// change to the table that breaks one names the invariant.
func TestTransitionInvariants(t *testing.T) {
	tests := []struct {
		name  string
		from  order.State
		never order.State
		// direct: only the direct edge is forbidden (a person may go
		// through RECEIVED); otherwise no path at all may lead there.
		direct bool
	}{
		{"supplier holds it: never submitted again", order.Submitted, order.Submitting, false},
		{"written back: never submitted again", order.WrittenBack, order.Submitting, false},
		{"ambiguity is not guessed away", order.NeedsReview, order.Submitting, true},
		{"ambiguity is not retried automatically", order.NeedsReview, order.RetryScheduled, true},
		{"a refused order waits for a person", order.Rejected, order.Submitting, true},
		{"a failed order waits for a person", order.Failed, order.Submitting, true},
		{"a submitted order is not rejected later", order.Submitted, order.Rejected, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.direct {
				if order.CanTransition(tt.from, tt.never) {
					t.Errorf("%v -> %v is allowed", tt.from, tt.never)
				}
				return
			}
			if reachable(tt.from)[tt.never] {
				t.Errorf("%v is reachable from %v", tt.never, tt.from)
			}
		})
	}
}

func TestOrderTransition(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	k := order.Key{Store: "abc123", ID: 42}
	for _, from := range allStates {
		for _, to := range allStates {
			ok := slices.Contains(allowed[from], to)
			t.Run(fmt.Sprintf("%v->%v", from, to), func(t *testing.T) {
				o := order.New(k, t0)
				o.State = from
				err := o.Transition(to, t1)
				if ok {
					if err != nil {
						t.Fatalf("Transition: %v", err)
					}
					if o.State != to || !o.UpdatedAt.Equal(t1) {
						t.Errorf("after Transition: state %v, updated %v; want %v, %v", o.State, o.UpdatedAt, to, t1)
					}
					return
				}
				if !errors.Is(err, order.ErrInvalidTransition) {
					t.Fatalf("Transition error = %v, want one wrapping ErrInvalidTransition", err)
				}
				for _, part := range []string{from.String(), to.String(), k.String()} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %q", err, part)
					}
				}
				if o.State != from || !o.UpdatedAt.Equal(t0) {
					t.Errorf("refused Transition changed the order: state %v, updated %v", o.State, o.UpdatedAt)
				}
			})
		}
	}
}

func TestStateFinal(t *testing.T) {
	final := []order.State{order.Submitted, order.WrittenBack, order.Rejected, order.NeedsReview, order.Failed}
	for _, s := range allStates {
		if got, want := s.Final(), slices.Contains(final, s); got != want {
			t.Errorf("%v.Final() = %v, want %v", s, got, want)
		}
	}
}

// A failed BigCommerce read sets the time the order is read again; only an
// answer from BigCommerce (the order, or its absence) clears it.
func TestAFailedReadWaitsUntilBigCommerceAnswers(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	o := order.New(order.Key{Store: "abc", ID: 1}, now)
	if o.ReadTooSoon(now) {
		t.Fatal("a new order may not be read")
	}
	o.StorefrontFailed("HTTP 429", now.Add(time.Minute), now)
	if !o.ReadTooSoon(now.Add(59*time.Second)) || o.ReadTooSoon(now.Add(time.Minute)) {
		t.Fatalf("read after %v: too soon before it, not at it", o.ReadAfter)
	}
	o.StorefrontAnswered()
	if o.ReadTooSoon(now) {
		t.Fatal("BigCommerce answered, yet the order waits")
	}
	o.StorefrontFailed("HTTP 503", now.Add(time.Minute), now)
	if err := o.SetIneligible("status 7", now); err != nil {
		t.Fatal(err)
	}
	if o.ReadTooSoon(now) {
		t.Fatal("an order found ineligible still waits for a failed read's time: its next event would wait too")
	}
}
