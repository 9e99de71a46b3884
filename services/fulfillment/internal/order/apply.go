package order

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy spaces attempts when nothing was created.
type RetryPolicy struct {
	Base        time.Duration // first backoff (default 5 s)
	Max         time.Duration // cap of one backoff (default 10 min)
	MaxAttempts uint32        // attempts before FAILED (default 10)
	// Jitter returns a number in [0,1); nil uses math/rand.
	Jitter func() float64
	// LookupSettle, when positive, resolves an ambiguous live answer by
	// looking the reference up at the supplier after this long, instead of
	// holding the order for a person (TROPSHIP_LOOKUP).
	LookupSettle time.Duration
}

// Backoff returns the wait before attempt n+1 after n failed attempts:
// exponential with full jitter in its upper half, capped at Max.
func (p RetryPolicy) Backoff(n uint32) time.Duration {
	base, maxWait := p.Base, p.Max
	if base <= 0 {
		base = 5 * time.Second
	}
	if maxWait <= 0 {
		maxWait = 10 * time.Minute
	}
	d := base
	for i := uint32(1); i < n && d < maxWait; i++ {
		if d > maxWait/2 {
			d = maxWait // doubling would pass the cap (or overflow)
			break
		}
		d *= 2
	}
	d = min(d, maxWait)
	j := rand.Float64
	if p.Jitter != nil {
		j = p.Jitter
	}
	return d/2 + time.Duration(j()*float64(d/2))
}

func (p RetryPolicy) maxAttempts() uint32 {
	if p.MaxAttempts == 0 {
		return 10
	}
	return p.MaxAttempts
}

// Apply moves a SUBMITTING order to the state a supplier result calls for.
// It returns when the order should be looked at again (zero: not
// automatically).
func (o *Order) Apply(r Result, now time.Time, p RetryPolicy) (time.Time, error) {
	if o.State != Submitting {
		return time.Time{}, fmt.Errorf("%w: supplier result applied to a %s order %s", ErrInvalidTransition, o.State, o.Key)
	}
	live := o.Mode == ModeLive
	var next State
	o.LastError, o.ReviewReason, o.NextAttemptAt = "", "", time.Time{}
	o.LookupFailures = 0
	switch r.Outcome {
	case Created:
		o.OfflineOrderID, o.SubmittedAt = r.OfflineOrderID, now
		next = Submitted
	case Valid:
		next = Validated
	case Refused:
		o.LastError, o.ReviewReason = r.Reason, "the supplier refused the order: "+r.Reason+
			"; fix the order in BigCommerce (or the supplier catalogue), then RetryOrder"
		next = Rejected
	case Ambiguous:
		if live && p.LookupSettle > 0 {
			// Still SUBMITTING: the next pass looks the reference up.
			o.LastError = r.Reason + "; the reference will be looked up at the supplier"
			// Not before the call's deadline (plus the settle delay): the
			// lookup waits for it anyway (see fulfill's unknownOutcome).
			from := now
			if o.CallDeadline.After(from) {
				from = o.CallDeadline
			}
			o.NextAttemptAt = from.Add(p.LookupSettle)
			o.UpdatedAt = now
			return o.NextAttemptAt, nil
		}
		if live {
			o.LastError = r.Reason
			o.ReviewReason = "unknown whether the supplier created the order (" + r.Reason +
				"); look for reference " + o.Reference + " at the supplier before resending"
			next = NeedsReview
			break
		}
		// A validation creates nothing: an unclear answer is just retried.
		fallthrough
	case Throttled, NotSent:
		o.LastError = r.Reason
		if o.Attempts >= p.maxAttempts() {
			o.ReviewReason = fmt.Sprintf("gave up after %d attempts: %s", o.Attempts, r.Reason)
			next = Failed
			break
		}
		o.NextAttemptAt = now.Add(max(r.RetryAfter, p.Backoff(o.Attempts)))
		next = RetryScheduled
	default:
		return time.Time{}, fmt.Errorf("unknown supplier outcome %d for order %s", r.Outcome, o.Key)
	}
	if err := o.Transition(next, now); err != nil {
		return time.Time{}, err
	}
	return o.NextAttemptAt, nil
}

// LookupFailed records a lookup of a SUBMITTING live order's reference that
// gave no answer. The outcome of the attempt stays unknown, so the order is
// never resent: a failure that may pass (transient) is looked up again after
// a backoff, up to the policy's attempts; a lookup that cannot answer (the
// supplier has none, refuses the credentials, answers nonsense), or too many
// failures, hold the order for a person (NEEDS_REVIEW). A transient failure
// that came with a wait (a 429's Retry-After) is looked up again no sooner.
// It returns when the order should be looked at again (zero: not
// automatically).
func (o *Order) LookupFailed(reason string, transient bool, retryAfter time.Duration, now time.Time, p RetryPolicy) (time.Time, error) {
	if o.State != Submitting || o.Mode != ModeLive {
		return time.Time{}, fmt.Errorf("%w: lookup failure recorded on a %s %s order %s", ErrInvalidTransition, o.Mode, o.State, o.Key)
	}
	o.LookupFailures++
	o.LastError = reason
	o.UpdatedAt = now
	if transient && o.LookupFailures < p.maxAttempts() {
		o.NextAttemptAt = now.Add(max(retryAfter, p.Backoff(o.LookupFailures)))
		return o.NextAttemptAt, nil
	}
	why := "the supplier lookup cannot answer"
	if transient {
		why = fmt.Sprintf("the supplier lookup failed %d times", o.LookupFailures)
	}
	o.ReviewReason = "unknown whether the supplier created the order (" + why + ": " + reason +
		"); look for reference " + o.Reference + " at the supplier before resending"
	o.NextAttemptAt = time.Time{}
	if err := o.Transition(NeedsReview, now); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, nil
}
