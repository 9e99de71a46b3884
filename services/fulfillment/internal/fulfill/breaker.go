package fulfill

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Breaker holds live orders back from a supplier that has stopped giving
// clear answers. Every live call that ends ambiguous (a 5xx, a timeout, a
// reset after sending) leaves an order that a lookup or a person must
// settle; a supplier that hangs also holds a worker for the whole
// TROPSHIP_TIMEOUT. Once After live calls in a row have ended ambiguous,
// the breaker opens: live orders are not sent, and their run ends as
// NotSent (RETRY_SCHEDULED, due when the breaker lets one through again).
// Not sending is always safe. After the cool-down one live order is let
// through as a probe: a clear answer (created, refused, throttled) closes
// the breaker, another ambiguous one opens it for twice as long (at most
// BreakerMaxCooldown).
//
// Validate-only calls and lookups pass through: they create nothing.
// Each replica has its own breaker.
type Breaker struct {
	next  Supplier
	after int
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	unclear   int           // ambiguous live answers in a row
	cooldown  time.Duration // of the current or next opening
	openUntil time.Time     // zero: closed
	probing   bool          // a probe is in flight
	held      uint64
}

const (
	// BreakerCooldown is how long the breaker first stays open.
	BreakerCooldown = 30 * time.Second
	// BreakerMaxCooldown bounds the cool-down, doubled at each failed
	// probe.
	BreakerMaxCooldown = 5 * time.Minute
)

// NewBreaker wraps next. after is the number of ambiguous live answers in
// a row that opens it (at least 1). now is the clock (nil: time.Now).
func NewBreaker(next Supplier, after int, now func() time.Time, log *slog.Logger) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{next: next, after: max(after, 1), now: now, log: log, cooldown: BreakerCooldown}
}

// BreakerState is what the breaker is doing, for metrics and status.
type BreakerState struct {
	Open bool
	// Until is when it lets a probe through (zero when closed).
	Until time.Time
	// Held counts the live orders not sent since the process started.
	Held uint64
}

// State reports the breaker's state.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerState{Open: !b.openUntil.IsZero(), Until: b.openUntil, Held: b.held}
}

// Submit sends the order unless the breaker holds live orders back.
func (b *Breaker) Submit(ctx context.Context, s order.Submission, validateOnly bool) order.Result {
	if validateOnly {
		return b.next.Submit(ctx, s, true)
	}
	probe, held := b.admit()
	if held != nil {
		return *held
	}
	var r order.Result
	// Recorded even if the call panics (r then says nothing): a probe
	// must not keep its slot for ever.
	defer func() { b.record(r, probe) }()
	r = b.next.Submit(ctx, s, false)
	return r
}

// Lookup passes through: a lookup creates nothing.
func (b *Breaker) Lookup(ctx context.Context, reference string) (string, bool, error) {
	return b.next.Lookup(ctx, reference)
}

// holding tells a run, before it reads anything from BigCommerce, whether
// its live order would be held back now: then the run reads nothing (the
// store's API quota goes only to orders that can be sent) and is due again
// at until (zero while a probe is in flight: the order's own backoff
// decides). Once a probe may go, runs go on, and Submit picks the probe.
func (b *Breaker) holding(now time.Time) (reason string, until time.Time, held bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return "", time.Time{}, false
	case now.Before(b.openUntil):
		b.held++
		return fmt.Sprintf("%s until %s, when one is sent to try it", heldBack, b.openUntil.UTC().Format(time.RFC3339)), b.openUntil, true
	case b.probing:
		b.held++
		return heldBack + " while one is sent to try it", time.Time{}, true
	}
	return "", time.Time{}, false
}

const heldBack = "not sent: TropShip's last live orders ended without a clear answer (5xx, timeout or reset), so live orders are held back"

// admit decides whether a live order may be sent now, and whether it is
// the probe of an open breaker. A held order gets its result.
func (b *Breaker) admit() (probe bool, held *order.Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return false, nil
	}
	now := b.now()
	if !now.Before(b.openUntil) && !b.probing {
		b.probing = true
		return true, nil
	}
	b.held++
	if b.probing && !now.Before(b.openUntil) {
		// The probe's answer decides, likely soon: the order's backoff
		// (RETRY_BASE, doubling) sets its next try.
		return false, &order.Result{Outcome: order.NotSent, Reason: heldBack + " while one is sent to try it"}
	}
	return false, &order.Result{
		Outcome:    order.NotSent,
		RetryAfter: b.openUntil.Sub(now),
		Reason:     fmt.Sprintf("%s until %s, when one is sent to try it", heldBack, b.openUntil.UTC().Format(time.RFC3339)),
	}
}

// record counts a live call's answer.
func (b *Breaker) record(r order.Result, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch r.Outcome {
	case order.Ambiguous:
		b.unclear++
		switch {
		case probe:
			b.cooldown = min(2*b.cooldown, BreakerMaxCooldown)
			b.openUntil = b.now().Add(b.cooldown)
			b.log.Warn("TropShip still gives no clear answer: live orders stay held back",
				"until", b.openUntil, "reason", r.Reason)
		case b.openUntil.IsZero() && b.unclear >= b.after:
			b.openUntil = b.now().Add(b.cooldown)
			b.log.Warn("TropShip left live orders without a clear answer: holding live orders back (nothing is lost: they are retried)",
				"in_a_row", b.unclear, "until", b.openUntil, "reason", r.Reason)
		}
	case order.NotSent, order.OutcomeUnspecified:
		// Nothing reached the supplier (or the call never returned):
		// says nothing of its answers.
	default:
		// A clear answer: the supplier works.
		if !b.openUntil.IsZero() {
			b.log.Info("TropShip answers clearly again: live orders are sent again", "held", b.held)
		}
		b.unclear, b.cooldown, b.openUntil = 0, BreakerCooldown, time.Time{}
	}
}
