package fulfill

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Breaker holds live orders back from a supplier that has stopped giving
// clear answers. Every live call that ends ambiguous (a 5xx, a timeout, a
// reset after sending) leaves an order that a lookup or a person must
// settle; a supplier that hangs also holds a worker for the whole
// TROPSHIP_TIMEOUT. Once After live calls in a row have ended ambiguous,
// the breaker opens: runs that would send a live order stop before
// anything is read or sent, keep the order's state, count no attempt, and
// wait, queued, for the breaker (see run.holdBack). Not sending is always
// safe. After the cool-down one live order is let through as a probe: a
// clear answer (created, refused, throttled) closes the breaker, another
// ambiguous one opens it for twice as long (at most BreakerMaxCooldown).
//
// It opens at once, too, when TropShip refuses a live order for where or
// as whom it was sent (a 403, 404 or 405 naming no error of the order,
// order.Result.Settings): every order would get the same answer until the
// settings are fixed, and each would spend an attempt on it. Its probes
// then find out whether TropShip takes orders again (a fixed account);
// fixed settings take a restart, which starts a closed breaker.
//
// It also keeps TropShip's 429s: a live call answered 429 (or a live
// order's pre-check) holds every live order back until the Retry-After (1 s
// when none is given), as an open breaker does, so that a throttled
// supplier is not sent one order after another only to refuse each, every
// refusal costing that order an attempt, and its BigCommerce reads the
// store's quota.
//
// The service asks it twice per run: Holding before the run reads
// BigCommerce (cheap, reserves nothing), and Admit just before the intent
// of the live call, which reserves the probe; Record then counts the
// call's answer, and RecordPrecheck a live order's pre-check's.
// Validate-only calls and lookups are never held. Each replica has its
// own breaker.
type Breaker struct {
	after int
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	unclear   int           // ambiguous live answers in a row
	cooldown  time.Duration // of the current or next opening
	openUntil time.Time     // zero: closed
	why       string        // why it is open, for the held orders
	probing   bool          // a probe is in flight
	held      uint64
	// throttledUntil: TropShip answered 429; no live order goes before
	// it. The held orders come due over throttleSpread after it.
	throttledUntil time.Time
	throttleSpread time.Duration
}

const (
	// BreakerCooldown is how long the breaker first stays open.
	BreakerCooldown = 30 * time.Second
	// BreakerMaxCooldown bounds the cool-down, doubled at each failed
	// probe.
	BreakerMaxCooldown = 5 * time.Minute
	// breakerSpread spreads the held orders' next runs over up to this
	// long after the probe may go, so that they do not all come due at
	// once, read BigCommerce, and find the probe taken.
	breakerSpread = 10 * time.Second
	// ThrottleWait is how long a 429 with no Retry-After holds live
	// orders back.
	ThrottleWait = time.Second
)

// NewBreaker returns a closed breaker that opens after after ambiguous
// live answers in a row (at least 1). now is the clock (nil: time.Now).
func NewBreaker(after int, now func() time.Time, log *slog.Logger) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{after: max(after, 1), now: now, log: log, cooldown: BreakerCooldown}
}

// BreakerState is what the breaker is doing, for metrics and status.
type BreakerState struct {
	// After is the number of ambiguous live answers in a row that open it.
	After int
	// Open: the breaker holds live orders back, until Until, and then
	// until a probe is answered clearly. (A 429's wait shows only in
	// ThrottledUntil.)
	Open  bool
	Until time.Time
	// Held counts the runs held back since the process started.
	Held uint64
	// ThrottledUntil is set while a 429 from TropShip holds live orders
	// back: none is sent before it.
	ThrottledUntil time.Time
}

// State reports the breaker's state.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BreakerState{After: b.after, Open: !b.openUntil.IsZero(), Until: b.openUntil, Held: b.held}
	if b.now().Before(b.throttledUntil) {
		st.ThrottledUntil = b.throttledUntil
	}
	return st
}

// Hold is why and until when a run is held back. A zero Until means a
// probe is in flight: its answer decides, likely soon, so the order's own
// backoff sets its next run.
type Hold struct {
	Reason string
	Until  time.Time
}

const heldBack = "not sent: TropShip's last live orders ended without a clear answer (5xx, timeout or reset), so live orders are held back"

// heldBySettings is why live orders are held after a refusal of the
// settings.
func heldBySettings(reason string) string {
	return "not sent: TropShip refused the last live order for where or as whom it was sent (" + reason + "), so live orders are held back"
}

// Holding reports whether a run that may send a live order is held back
// now, before it reads anything (the store's API quota then goes only to
// orders that can be sent). Once a probe may go, runs go on; Admit picks
// the probe.
func (b *Breaker) Holding() (Hold, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holdLocked(b.now())
}

// Admit decides, just before a live call's intent is written, whether it
// may be made, and whether it is the probe of an open breaker (then the
// caller must Record its answer, or Record a zero Result if no call was
// made, so that the probe's slot is given back).
func (b *Breaker) Admit() (probe bool, h Hold, held bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, held := b.holdLocked(b.now()); held {
		return false, h, true
	}
	// Not held: closed, or open and due with no probe in flight.
	probe = !b.openUntil.IsZero()
	b.probing = b.probing || probe
	return probe, Hold{}, false
}

// HoldsNow reports whether runs that may send a live order are held back
// now, as Holding, without counting a held run.
func (b *Breaker) HoldsNow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	return b.openNowLocked(now) || now.Before(b.throttledUntil)
}

// OpenNow reports whether the breaker is open and holds live orders back
// now (until its probe may go, or while the probe is in flight); unlike
// HoldsNow, a 429's wait does not count. A replica whose breaker is open
// leaves its share of the queue to the others, which may reach TropShip; a
// 429 is the account's, and another replica would only meet it too.
func (b *Breaker) OpenNow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openNowLocked(b.now())
}

func (b *Breaker) openNowLocked(now time.Time) bool {
	return !b.openUntil.IsZero() && (now.Before(b.openUntil) || b.probing)
}

func (b *Breaker) holdLocked(now time.Time) (Hold, bool) {
	switch {
	case now.Before(b.throttledUntil) && (b.openUntil.IsZero() || b.throttledUntil.After(b.openUntil)):
		// A 429's wait, open or not, when it ends last: no live order,
		// not even a probe, goes before it.
		b.held++
		return Hold{
			Reason: fmt.Sprintf("not sent: TropShip asked for a wait (HTTP 429), so live orders are held back until %s",
				b.throttledUntil.UTC().Format(time.RFC3339)),
			Until: b.throttledUntil.Add(rand.N(b.throttleSpread)),
		}, true
	case b.openUntil.IsZero():
		return Hold{}, false
	case now.Before(b.openUntil):
		b.held++
		return Hold{
			Reason: fmt.Sprintf("%s until %s, when one is sent to try it", b.why, b.openUntil.UTC().Format(time.RFC3339)),
			Until:  b.openUntil.Add(rand.N(min(b.cooldown/4, breakerSpread))),
		}, true
	case b.probing:
		b.held++
		return Hold{Reason: b.why + " while one is sent to try it"}, true
	}
	return Hold{}, false
}

// Record counts a live call's answer; probe says whether Admit made it the
// probe. A zero Result (no call made, or none returned) only gives the
// probe's slot back.
func (b *Breaker) Record(r order.Result, probe bool) {
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
			b.openLocked(true, heldBack)
			b.log.Warn("TropShip still gives no clear answer: live orders stay held back",
				"until", b.openUntil, "reason", r.Reason)
		case b.openUntil.IsZero() && b.unclear >= b.after:
			b.openLocked(false, heldBack)
			b.log.Warn("TropShip left live orders without a clear answer: holding live orders back (nothing is lost: they are retried)",
				"in_a_row", b.unclear, "until", b.openUntil, "reason", r.Reason)
		}
	case order.NotSent:
		if r.Settings {
			b.settingsRefusedLocked(r.Reason, probe)
		}
		// Else nothing reached the supplier: it says nothing of its
		// answers.
	case order.OutcomeUnspecified:
		// Nothing reached the supplier (or no call was made): says
		// nothing of its answers.
	default:
		// A clear answer: the supplier works.
		if !b.openUntil.IsZero() {
			b.log.Info("TropShip answers clearly again: live orders are sent again", "held", b.held)
		}
		b.unclear, b.cooldown, b.openUntil = 0, BreakerCooldown, time.Time{}
		if r.Outcome == order.Throttled {
			b.throttleLocked(r.RetryAfter)
		}
	}
}

// RecordPrecheck counts what a live order's pre-check (validate-only,
// TROPSHIP_VALIDATE_FIRST) says of TropShip: a 429, or a refusal of the
// settings, holds live orders back as it would from a live call. Nothing
// else it says counts: it is not a live call. A refusal of the settings
// once an open breaker's probe may go is that probe's answer: the
// pre-check comes first, and no live order follows it.
func (b *Breaker) RecordPrecheck(r order.Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case r.Outcome == order.Throttled:
		b.throttleLocked(r.RetryAfter)
	case r.Outcome == order.NotSent && r.Settings:
		due := !b.openUntil.IsZero() && !b.now().Before(b.openUntil) && !b.probing
		b.settingsRefusedLocked(r.Reason, due)
	}
}

// settingsRefusedLocked opens the breaker after TropShip refused where or
// as whom a live order was sent; from a probe, for twice as long.
func (b *Breaker) settingsRefusedLocked(reason string, probe bool) {
	switch {
	case probe:
		b.openLocked(true, heldBySettings(reason))
		b.log.Warn("TropShip still refuses the settings: live orders stay held back",
			"until", b.openUntil, "reason", reason)
	case b.openUntil.IsZero():
		b.openLocked(false, heldBySettings(reason))
		b.log.Error("TropShip refused a live order for where or as whom it was sent: holding live orders back until the settings are fixed (nothing is lost: they are sent once TropShip takes them)",
			"until", b.openUntil, "reason", reason)
	}
}

// openLocked opens the breaker for its cool-down, why being what the held
// orders are told; after a failed probe, for twice as long (at most
// BreakerMaxCooldown).
func (b *Breaker) openLocked(probe bool, why string) {
	if probe {
		b.cooldown = min(2*b.cooldown, BreakerMaxCooldown)
	}
	b.openUntil, b.why = b.now().Add(b.cooldown), why
}

// throttleLocked holds live orders back for retryAfter (ThrottleWait when
// none was given); a shorter wait never shortens one already set.
func (b *Breaker) throttleLocked(retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = ThrottleWait
	}
	now := b.now()
	until := now.Add(retryAfter)
	if !until.After(b.throttledUntil) {
		return
	}
	if !now.Before(b.throttledUntil) {
		b.log.Warn("TropShip is throttling (HTTP 429): holding live orders back (nothing is lost: they are sent after the wait)",
			"until", until)
	}
	b.throttledUntil = until
	// Spread the held orders over about as long as the wait (1 to 10 s),
	// so that they do not all meet the limit again at once.
	b.throttleSpread = min(max(retryAfter, time.Second), breakerSpread)
}

// heldSweepAt is the number of held orders past which noteHeld first
// forgets those whose time has passed (orders another replica ran
// meanwhile are never asked about again); each sweep sets the next at
// twice what it kept, so a large backlog is not swept at every note.
const heldSweepAt = 4096

// noteHeld remembers that the order was held back until until: its
// queued runs before then (the order's next events, a sweep) would only
// hold it back again, each with a lock, a read and a write in etcd, so a
// worker skips them (stillHeld).
func (s *Service) noteHeld(k order.Key, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) >= max(s.heldSweep, heldSweepAt) {
		now := s.cfg.Now()
		for hk, t := range s.held {
			if !now.Before(t) {
				delete(s.held, hk)
			}
		}
		s.heldSweep = 2 * len(s.held)
	}
	s.held[k] = until
}

// stillHeld reports whether a worker should skip the order: this replica
// held it back until a time not yet come, and its breaker (or a 429's
// wait) still holds live orders back.
// Nothing is read or written: the order's queue entry stays, and a sweep
// brings it back. A person's ProcessOrder is never skipped.
func (s *Service) stillHeld(k order.Key) bool {
	if s.breaker == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.held[k]
	if !ok {
		return false
	}
	if !s.cfg.Now().Before(until) || !s.breaker.HoldsNow() {
		delete(s.held, k)
		return false
	}
	return true
}
