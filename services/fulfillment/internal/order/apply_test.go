package order_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

func fixedJitter(f float64) func() float64 { return func() float64 { return f } }

func TestRetryPolicyBackoff(t *testing.T) {
	const almostOne = 0.999999999
	p := order.RetryPolicy{Base: time.Second, Max: time.Minute}
	tests := []struct {
		name   string
		policy order.RetryPolicy
		n      uint32
		jitter float64
		want   time.Duration
	}{
		{"n=0 is the base", p, 0, 0, 500 * time.Millisecond},
		{"n=1 is the base", p, 1, 0, 500 * time.Millisecond},
		{"n=2 doubles", p, 2, 0, 1 * time.Second},
		{"n=3 doubles again", p, 3, 0, 2 * time.Second},
		{"n=6", p, 6, 0, 16 * time.Second},
		{"n=7 is capped", p, 7, 0, 30 * time.Second},
		{"n=100 is capped", p, 100, 0, 30 * time.Second},
		{"n=max uint32 is capped", p, math.MaxUint32, 0, 30 * time.Second},
		{"half jitter", p, 3, 0.5, 3 * time.Second},
		{"cap not a power of two", order.RetryPolicy{Base: 5 * time.Second, Max: 7 * time.Second}, 2, 0, 3500 * time.Millisecond},
		{"defaults: 5s base", order.RetryPolicy{}, 1, 0, 2500 * time.Millisecond},
		{"defaults: 10m cap", order.RetryPolicy{}, 50, 0, 5 * time.Minute},
		{"top of the range stays below d", p, 3, almostOne, 4*time.Second - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.policy.Jitter = fixedJitter(tt.jitter)
			got := tt.policy.Backoff(tt.n)
			// Allow a nanosecond of float rounding at the top of the range.
			if diff := got - tt.want; diff < -1 || diff > 1 {
				t.Errorf("Backoff(%d) with jitter %v = %v, want %v", tt.n, tt.jitter, got, tt.want)
			}
		})
	}
}

// d(n) is the uncapped-then-capped exponential: base * 2^(n-1), at most max.
func expBackoff(base, maxWait time.Duration, n uint32) time.Duration {
	d := base
	for i := uint32(1); i < n; i++ {
		if d >= maxWait {
			break
		}
		d *= 2
	}
	return min(d, maxWait)
}

func TestRetryPolicyBackoffRange(t *testing.T) {
	base, maxWait := 3*time.Second, 5*time.Minute
	for _, j := range []float64{0, 0.1, 0.5, 0.9, 0.999999999} {
		for n := uint32(0); n <= 20; n++ {
			t.Run(fmt.Sprintf("jitter=%v/n=%d", j, n), func(t *testing.T) {
				p := order.RetryPolicy{Base: base, Max: maxWait, Jitter: fixedJitter(j)}
				d := expBackoff(base, maxWait, n)
				got := p.Backoff(n)
				if got < d/2 || got >= d {
					t.Errorf("Backoff(%d) = %v, want in [%v, %v)", n, got, d/2, d)
				}
				if got > maxWait {
					t.Errorf("Backoff(%d) = %v exceeds Max %v", n, got, maxWait)
				}
				if n > 1 {
					if prev := p.Backoff(n - 1); got < prev {
						t.Errorf("Backoff(%d) = %v < Backoff(%d) = %v", n, got, n-1, prev)
					}
				}
			})
		}
	}
}

// Without a Jitter func, math/rand is used: still within [d/2, d).
func TestRetryPolicyBackoffRandomJitter(t *testing.T) {
	p := order.RetryPolicy{Base: time.Second, Max: time.Minute}
	for i := range 1000 {
		n := uint32(i % 10)
		d := expBackoff(time.Second, time.Minute, n)
		if got := p.Backoff(n); got < d/2 || got >= d {
			t.Fatalf("Backoff(%d) = %v, want in [%v, %v)", n, got, d/2, d)
		}
	}
}

// A backoff is never negative, whatever Max the configuration allows
// (time.ParseDuration accepts up to about 2562047h).
func TestRetryPolicyBackoffHugeMax(t *testing.T) {
	p := order.RetryPolicy{Base: 5 * time.Second, Max: time.Duration(math.MaxInt64), Jitter: fixedJitter(0)}
	for n := uint32(0); n <= 100; n++ {
		if got := p.Backoff(n); got < p.Base/2 {
			t.Fatalf("with Max=%v, Backoff(%d) = %v; want at least %v", p.Max, n, got, p.Base/2)
		}
	}
}

func TestApply(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	key := order.Key{Store: "abc123", ID: 100}
	ref := order.Reference(key)
	policy := order.RetryPolicy{Base: 10 * time.Second, Max: 10 * time.Minute, MaxAttempts: 5, Jitter: fixedJitter(0.5)}
	// The wait for attempts=2 with this policy: d = 20s, jitter 0.5 -> 15s.
	const backoff2 = 15 * time.Second

	type want struct {
		state       order.State
		offlineID   string
		submittedAt bool
		// nextAtLeast > 0: a retry is scheduled no sooner than now+nextAtLeast
		// and no later than now+nextAtMost; 0: nothing is scheduled.
		nextAtLeast, nextAtMost time.Duration
		lastError               string
		review                  []string // fragments of ReviewReason; nil: empty
	}
	tests := []struct {
		name     string
		mode     order.Mode
		attempts uint32
		policy   *order.RetryPolicy // nil: the policy above
		result   order.Result
		want     want
	}{
		{
			name: "created live", mode: order.ModeLive, attempts: 1,
			result: order.Result{Outcome: order.Created, OfflineOrderID: "TW-9001"},
			want:   want{state: order.Submitted, offlineID: "TW-9001", submittedAt: true},
		},
		{
			// The supplier holds an order whatever we asked for: keep its id.
			name: "created validate", mode: order.ModeValidate, attempts: 1,
			result: order.Result{Outcome: order.Created, OfflineOrderID: "TW-9002"},
			want:   want{state: order.Submitted, offlineID: "TW-9002", submittedAt: true},
		},
		{
			name: "created after the last attempt is still created", mode: order.ModeLive, attempts: 5,
			result: order.Result{Outcome: order.Created, OfflineOrderID: "TW-9003"},
			want:   want{state: order.Submitted, offlineID: "TW-9003", submittedAt: true},
		},
		{
			name: "valid validate", mode: order.ModeValidate, attempts: 1,
			result: order.Result{Outcome: order.Valid},
			want:   want{state: order.Validated},
		},
		{
			name: "valid live", mode: order.ModeLive, attempts: 1,
			result: order.Result{Outcome: order.Valid},
			want:   want{state: order.Validated},
		},
		{
			name: "refused live", mode: order.ModeLive, attempts: 1,
			result: order.Result{Outcome: order.Refused, Reason: "unknown product code X1"},
			want:   want{state: order.Rejected, lastError: "unknown product code X1", review: []string{"refused", "unknown product code X1", "RetryOrder"}},
		},
		{
			name: "refused validate", mode: order.ModeValidate, attempts: 1,
			result: order.Result{Outcome: order.Refused, Reason: "bad postcode"},
			want:   want{state: order.Rejected, lastError: "bad postcode", review: []string{"bad postcode"}},
		},
		{
			name: "refused on the last attempt is still refused", mode: order.ModeLive, attempts: 5,
			result: order.Result{Outcome: order.Refused, Reason: "bad postcode"},
			want:   want{state: order.Rejected, lastError: "bad postcode", review: []string{"bad postcode"}},
		},
		{
			name: "throttled with a long Retry-After", mode: order.ModeLive, attempts: 2,
			result: order.Result{Outcome: order.Throttled, Reason: "429", RetryAfter: time.Hour},
			want:   want{state: order.RetryScheduled, nextAtLeast: time.Hour, nextAtMost: time.Hour, lastError: "429"},
		},
		{
			name: "throttled with a short Retry-After waits the backoff", mode: order.ModeValidate, attempts: 2,
			result: order.Result{Outcome: order.Throttled, Reason: "429", RetryAfter: time.Second},
			want:   want{state: order.RetryScheduled, nextAtLeast: backoff2, nextAtMost: backoff2, lastError: "429"},
		},
		{
			name: "not sent live", mode: order.ModeLive, attempts: 2,
			result: order.Result{Outcome: order.NotSent, Reason: "connection refused"},
			want:   want{state: order.RetryScheduled, nextAtLeast: backoff2, nextAtMost: backoff2, lastError: "connection refused"},
		},
		{
			name: "not sent validate", mode: order.ModeValidate, attempts: 2,
			result: order.Result{Outcome: order.NotSent, Reason: "dns"},
			want:   want{state: order.RetryScheduled, nextAtLeast: backoff2, nextAtMost: backoff2, lastError: "dns"},
		},
		{
			name: "ambiguous live needs review", mode: order.ModeLive, attempts: 2,
			result: order.Result{Outcome: order.Ambiguous, Reason: "502 after send"},
			want:   want{state: order.NeedsReview, lastError: "502 after send", review: []string{ref, "502 after send"}},
		},
		{
			// Ambiguity is never guessed away, not even by giving up.
			name: "ambiguous live on the last attempt still needs review", mode: order.ModeLive, attempts: 5,
			result: order.Result{Outcome: order.Ambiguous, Reason: "timeout"},
			want:   want{state: order.NeedsReview, lastError: "timeout", review: []string{ref, "timeout"}},
		},
		{
			name: "ambiguous validate is retried", mode: order.ModeValidate, attempts: 2,
			result: order.Result{Outcome: order.Ambiguous, Reason: "timeout"},
			want:   want{state: order.RetryScheduled, nextAtLeast: backoff2, nextAtMost: backoff2, lastError: "timeout"},
		},
		{
			name: "one attempt left is retried", mode: order.ModeLive, attempts: 4,
			result: order.Result{Outcome: order.NotSent, Reason: "reset"},
			want:   want{state: order.RetryScheduled, nextAtLeast: 60 * time.Second, nextAtMost: 60 * time.Second, lastError: "reset"},
		},
		{
			name: "throttled at MaxAttempts fails", mode: order.ModeLive, attempts: 5,
			result: order.Result{Outcome: order.Throttled, Reason: "429", RetryAfter: time.Minute},
			want:   want{state: order.Failed, lastError: "429", review: []string{"5 attempts", "429"}},
		},
		{
			name: "not sent beyond MaxAttempts fails", mode: order.ModeLive, attempts: 7,
			result: order.Result{Outcome: order.NotSent, Reason: "refused"},
			want:   want{state: order.Failed, lastError: "refused", review: []string{"7 attempts"}},
		},
		{
			name: "ambiguous validate at MaxAttempts fails", mode: order.ModeValidate, attempts: 5,
			result: order.Result{Outcome: order.Ambiguous, Reason: "timeout"},
			want:   want{state: order.Failed, lastError: "timeout", review: []string{"5 attempts"}},
		},
		{
			name: "default MaxAttempts is 10: 9 retried", mode: order.ModeLive, attempts: 9,
			policy: &order.RetryPolicy{Base: time.Second, Max: time.Second, Jitter: fixedJitter(0)},
			result: order.Result{Outcome: order.NotSent, Reason: "x"},
			want:   want{state: order.RetryScheduled, nextAtLeast: 500 * time.Millisecond, nextAtMost: 500 * time.Millisecond, lastError: "x"},
		},
		{
			name: "default MaxAttempts is 10: 10 fails", mode: order.ModeLive, attempts: 10,
			policy: &order.RetryPolicy{Base: time.Second, Max: time.Second, Jitter: fixedJitter(0)},
			result: order.Result{Outcome: order.NotSent, Reason: "x"},
			want:   want{state: order.Failed, lastError: "x", review: []string{"10 attempts"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy
			if tt.policy != nil {
				p = *tt.policy
			}
			o := order.New(key, earlier)
			o.State, o.Mode, o.Attempts, o.Reference = order.Submitting, tt.mode, tt.attempts, ref
			// Left-overs of an earlier attempt must not survive.
			o.LastError, o.ReviewReason, o.NextAttemptAt = "stale error", "stale review", earlier

			next, err := o.Apply(tt.result, now, p)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			w := tt.want
			if o.State != w.state {
				t.Errorf("state = %v, want %v", o.State, w.state)
			}
			if !o.UpdatedAt.Equal(now) {
				t.Errorf("UpdatedAt = %v, want %v", o.UpdatedAt, now)
			}
			if o.OfflineOrderID != w.offlineID {
				t.Errorf("OfflineOrderID = %q, want %q", o.OfflineOrderID, w.offlineID)
			}
			if got := !o.SubmittedAt.IsZero(); got != w.submittedAt || (got && !o.SubmittedAt.Equal(now)) {
				t.Errorf("SubmittedAt = %v, want set to now: %v", o.SubmittedAt, w.submittedAt)
			}
			if o.LastError != w.lastError {
				t.Errorf("LastError = %q, want %q", o.LastError, w.lastError)
			}
			if w.review == nil && o.ReviewReason != "" {
				t.Errorf("ReviewReason = %q, want empty", o.ReviewReason)
			}
			if w.review != nil && o.ReviewReason == "" {
				t.Errorf("ReviewReason is empty, want one naming %q", w.review)
			}
			for _, frag := range w.review {
				if !strings.Contains(o.ReviewReason, frag) {
					t.Errorf("ReviewReason %q does not mention %q", o.ReviewReason, frag)
				}
			}
			if !next.Equal(o.NextAttemptAt) {
				t.Errorf("Apply returned %v, NextAttemptAt is %v", next, o.NextAttemptAt)
			}
			if w.nextAtLeast == 0 {
				if !o.NextAttemptAt.IsZero() {
					t.Errorf("NextAttemptAt = %v, want none", o.NextAttemptAt)
				}
			} else {
				lo, hi := now.Add(w.nextAtLeast), now.Add(w.nextAtMost)
				if o.NextAttemptAt.Before(lo) || o.NextAttemptAt.After(hi) {
					t.Errorf("NextAttemptAt = now+%v, want in [now+%v, now+%v]", o.NextAttemptAt.Sub(now), w.nextAtLeast, w.nextAtMost)
				}
			}
			if o.Attempts != tt.attempts {
				t.Errorf("Attempts = %d, want unchanged %d", o.Attempts, tt.attempts)
			}
			if o.Mode != tt.mode {
				t.Errorf("Mode = %v, want unchanged %v", o.Mode, tt.mode)
			}
		})
	}
}

func TestApplyNotSubmitting(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range allStates {
		if s == order.Submitting {
			continue
		}
		t.Run(s.String(), func(t *testing.T) {
			o := order.New(order.Key{Store: "abc", ID: 1}, now.Add(-time.Hour))
			o.State, o.Mode, o.Attempts = s, order.ModeLive, 1
			o.OfflineOrderID = "TW-1"
			o.LastError = "kept"
			next, err := o.Apply(order.Result{Outcome: order.Created, OfflineOrderID: "TW-2"}, now, order.RetryPolicy{})
			if !errors.Is(err, order.ErrInvalidTransition) {
				t.Fatalf("Apply on %v: err = %v, want ErrInvalidTransition", s, err)
			}
			if !next.IsZero() {
				t.Errorf("Apply on %v returned next %v", s, next)
			}
			if o.State != s || o.OfflineOrderID != "TW-1" || o.LastError != "kept" || !o.UpdatedAt.Equal(now.Add(-time.Hour)) {
				t.Errorf("refused Apply changed the order: %+v", o)
			}
		})
	}
}

func TestApplyUnknownOutcome(t *testing.T) {
	for _, out := range []order.Outcome{order.OutcomeUnspecified, order.Outcome(99)} {
		t.Run(fmt.Sprint(int(out)), func(t *testing.T) {
			o := order.New(order.Key{Store: "abc", ID: 1}, time.Unix(0, 0))
			o.State, o.Mode = order.Submitting, order.ModeLive
			if _, err := o.Apply(order.Result{Outcome: out}, time.Unix(1, 0), order.RetryPolicy{}); err == nil {
				t.Fatal("Apply with an unknown outcome: no error")
			}
			if o.State != order.Submitting {
				t.Errorf("state = %v, want SUBMITTING", o.State)
			}
		})
	}
}

func TestLookupFailed(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := order.RetryPolicy{Base: time.Second, Max: time.Minute, MaxAttempts: 3, Jitter: func() float64 { return 0 }, LookupSettle: time.Second}
	submitting := func() *order.Order {
		o := order.New(order.Key{Store: "abc", ID: 1}, now.Add(-time.Hour))
		o.State, o.Mode, o.Attempts, o.Reference = order.Submitting, order.ModeLive, 1, "BC-abc-1"
		return o
	}

	t.Run("transient failures are looked up again, then held for a person", func(t *testing.T) {
		o := submitting()
		for i := 1; i < 3; i++ {
			next, err := o.LookupFailed("HTTP 503", true, 0, now, p)
			if err != nil || next.IsZero() || o.State != order.Submitting {
				t.Fatalf("failure %d: next %v, err %v, state %v; want another lookup, still SUBMITTING", i, next, err, o.State)
			}
			if o.Attempts != 1 {
				t.Fatalf("a lookup counted as a submission attempt: %d", o.Attempts)
			}
		}
		next, err := o.LookupFailed("HTTP 503", true, 0, now, p)
		if err != nil || !next.IsZero() || o.State != order.NeedsReview {
			t.Fatalf("third failure: next %v, err %v, state %v; want NEEDS_REVIEW", next, err, o.State)
		}
		if !strings.Contains(o.ReviewReason, "BC-abc-1") || !strings.Contains(o.ReviewReason, "failed 3 times") {
			t.Errorf("review reason %q names neither the reference nor the failures", o.ReviewReason)
		}
	})
	t.Run("a throttled lookup waits as long as it was asked to", func(t *testing.T) {
		o := submitting()
		next, err := o.LookupFailed("HTTP 429 (retry after 45s)", true, 45*time.Second, now, p)
		if err != nil || !next.Equal(now.Add(45*time.Second)) || !o.NextAttemptAt.Equal(next) {
			t.Fatalf("next %v (NextAttemptAt %v), err %v; want %v, the Retry-After", next, o.NextAttemptAt, err, now.Add(45*time.Second))
		}
		// A wait shorter than the backoff does not shorten it.
		next, err = o.LookupFailed("HTTP 429 (retry after 1ms)", true, time.Millisecond, now, p)
		if err != nil || !next.Equal(now.Add(p.Backoff(2))) {
			t.Fatalf("next %v, err %v; want the backoff %v", next, err, now.Add(p.Backoff(2)))
		}
	})
	t.Run("a lookup that cannot answer holds the order at once", func(t *testing.T) {
		o := submitting()
		next, err := o.LookupFailed("HTTP 404: the supplier has no lookup", false, 0, now, p)
		if err != nil || !next.IsZero() || o.State != order.NeedsReview {
			t.Fatalf("next %v, err %v, state %v; want NEEDS_REVIEW", next, err, o.State)
		}
		if !strings.Contains(o.ReviewReason, "cannot answer") {
			t.Errorf("review reason %q", o.ReviewReason)
		}
	})
	t.Run("an answer resets the count", func(t *testing.T) {
		o := submitting()
		if _, err := o.LookupFailed("HTTP 503", true, 0, now, p); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Apply(order.Result{Outcome: order.Created, OfflineOrderID: "TW-1"}, now, p); err != nil {
			t.Fatal(err)
		}
		if o.LookupFailures != 0 {
			t.Errorf("LookupFailures = %d after an answer", o.LookupFailures)
		}
	})
	t.Run("only a SUBMITTING live order", func(t *testing.T) {
		o := submitting()
		o.Mode = order.ModeValidate
		if _, err := o.LookupFailed("x", true, 0, now, p); !errors.Is(err, order.ErrInvalidTransition) {
			t.Errorf("validate mode: err %v", err)
		}
		o = submitting()
		o.State = order.Submitted
		if _, err := o.LookupFailed("x", true, 0, now, p); !errors.Is(err, order.ErrInvalidTransition) {
			t.Errorf("SUBMITTED: err %v", err)
		}
	})
}
