package order_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

func submitted(t *testing.T) *order.Order {
	t.Helper()
	o := order.New(order.Key{Store: "abc", ID: 1}, t0)
	o.State, o.OfflineOrderID, o.Mode = order.Submitted, "TS-1", order.ModeLive
	return o
}

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestWroteBack(t *testing.T) {
	o := submitted(t)
	o.WriteBackFailures, o.LastError = 2, "HTTP 503"
	if err := o.WroteBack(t0); err != nil || o.State != order.WrittenBack || o.LastError != "" || o.WriteBackFailures != 0 {
		t.Fatalf("WroteBack: %v, %+v", err, o)
	}
	// Only an order the supplier holds can be written back.
	n := order.New(order.Key{Store: "abc", ID: 2}, t0)
	n.State = order.Submitted
	if err := n.WroteBack(t0); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("write-back without an id: %v", err)
	}
	r := submitted(t)
	r.State = order.NeedsReview
	if err := r.WroteBack(t0); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("write-back of a NEEDS_REVIEW order: %v", err)
	}
}

func TestWriteBackFailed(t *testing.T) {
	p := order.RetryPolicy{Base: time.Second, Max: time.Minute, MaxAttempts: 3, Jitter: fixedJitter(0)}
	o := submitted(t)
	next, err := o.WriteBackFailed("HTTP 503", true, 0, t0, p)
	if err != nil || !next.Equal(t0.Add(500*time.Millisecond)) || o.State != order.Submitted || o.WriteBackFailures != 1 {
		t.Fatalf("first transient failure: next %v err %v %+v", next, err, o)
	}
	// The service's own Retry-After wins over a shorter backoff.
	if next, _ = o.WriteBackFailed("HTTP 429", true, time.Minute, t0, p); !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Retry-After ignored: next %v", next)
	}
	// The third failure is the last: no more automatic attempts.
	if next, _ = o.WriteBackFailed("HTTP 503", true, 0, t0, p); !next.IsZero() || o.State != order.Submitted ||
		!strings.Contains(o.LastError, "failed 3 times") || !strings.Contains(o.ReviewReason, "failed 3 times") ||
		!strings.Contains(o.ReviewReason, "ProcessOrder") {
		t.Fatalf("after 3 failures: next %v, last error %q, review reason %q", next, o.LastError, o.ReviewReason)
	}
	// ProcessOrder's fresh attempt that fails again is retried without a
	// person: nothing for one to do.
	if next, _ = o.WriteBackFailed("HTTP 503", true, 0, t0, order.RetryPolicy{MaxAttempts: 10}); next.IsZero() || o.ReviewReason != "" {
		t.Fatalf("transient failure after giving up: next %v, review reason %q", next, o.ReviewReason)
	}
	if err := o.WroteBack(t0); err != nil || o.ReviewReason != "" || o.LastError != "" {
		t.Fatalf("written back at last: %v, review reason %q, last error %q", err, o.ReviewReason, o.LastError)
	}
	// A failure that cannot pass stops at once.
	o = submitted(t)
	if next, _ = o.WriteBackFailed("HTTP 403", false, 0, t0, p); !next.IsZero() || !strings.Contains(o.LastError, "HTTP 403") {
		t.Fatalf("permanent failure: next %v, %q", next, o.LastError)
	}
	// Only a SUBMITTED order has a write-back to fail.
	o.State = order.WrittenBack
	if _, err := o.WriteBackFailed("x", true, 0, t0, p); !errors.Is(err, order.ErrInvalidTransition) {
		t.Fatalf("failure on a WRITTEN_BACK order: %v", err)
	}
}
