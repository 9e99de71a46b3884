package order

import (
	"fmt"
	"time"
)

// WroteBack records step 9 of design.md: the supplier's id is on the
// BigCommerce order (its metafield), where any later run, even one whose
// store lost this record, finds it before it sends anything.
func (o *Order) WroteBack(now time.Time) error {
	if !o.HasSupplierOrder() {
		return fmt.Errorf("%w: order %s has no supplier id to write back", ErrInvalidTransition, o.Key)
	}
	if err := o.Transition(WrittenBack, now); err != nil {
		return err
	}
	o.LastError, o.ReviewReason, o.NextAttemptAt, o.WriteBackFailures = "", "", time.Time{}, 0
	return nil
}

// WriteBackFailed records a write-back of a SUBMITTED order that did not
// land. The supplier has the order, so nothing is ever resent and the state
// stays SUBMITTED: a failure that may pass is tried again after a backoff,
// up to the policy's attempts; one that will not (the token may not write
// metafields, the order is gone), or too many, stop the retries, and
// LastError says what a person can do. It returns when the write-back
// should be tried again (zero: not automatically).
func (o *Order) WriteBackFailed(reason string, transient bool, retryAfter time.Duration, now time.Time, p RetryPolicy) (time.Time, error) {
	if o.State != Submitted || !o.HasSupplierOrder() {
		return time.Time{}, fmt.Errorf("%w: write-back failure recorded on a %s order %s", ErrInvalidTransition, o.State, o.Key)
	}
	o.WriteBackFailures++
	o.UpdatedAt = now
	if transient && o.WriteBackFailures < p.maxAttempts() {
		o.LastError = "writing the supplier id back to BigCommerce: " + reason + "; tried again later"
		o.ReviewReason = "" // retried without a person (again, after ProcessOrder)
		o.NextAttemptAt = now.Add(max(retryAfter, p.Backoff(o.WriteBackFailures)))
		return o.NextAttemptAt, nil
	}
	why := "cannot succeed as things are"
	if transient {
		why = fmt.Sprintf("failed %d times", o.WriteBackFailures)
	}
	o.LastError = fmt.Sprintf("writing the supplier id %s back to BigCommerce %s: %s", o.OfflineOrderID, why, reason)
	// Not retried any more: a person must see it, like the other states
	// that wait for one.
	o.ReviewReason = o.LastError + "; the supplier has the order and nothing will be resent; " +
		"fix the cause (e.g. the API account's scopes), then ProcessOrder to write it back"
	o.NextAttemptAt = time.Time{}
	return time.Time{}, nil
}
