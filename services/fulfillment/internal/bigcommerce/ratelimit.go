package bigcommerce

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// Rate-limit headers of bigcommerce.md.
const (
	headerRequestsLeft = "X-Rate-Limit-Requests-Left"
	headerResetMs      = "X-Rate-Limit-Time-Reset-Ms"
)

// pacer paces the requests of each store by the store's quota, which every
// call of the client shares (and every other app on the store):
//
//   - once an answer says no request is left, or a 429 came, nothing goes
//     before the reset (a hold);
//   - with burst > 0, the requests left are spread evenly over what is left
//     of the window, after a burst of that many at once. A surge of orders
//     then does not spend a whole window's quota in its first second and
//     wait out the rest, which would make the store's other apps wait too
//     and, on a small machine, crowd out the acknowledgements.
//
// Each answer's headers re-plan the spacing: the reset's remaining time
// divided by the requests left that others (other apps, other replicas) do
// not spend, as estimateOthers measures them. So replicas sharing a store,
// and other apps, make room for each other without talking. A server that
// sends no rate-limit headers is never held back.
type pacer struct {
	burst int
	now   func() time.Time

	mu     sync.Mutex
	stores map[string]*quota
}

// quota is what the client knows of one store's quota.
type quota struct {
	// hold: no request before it (no request left, or a 429).
	hold time.Time
	// interval spreads the requests left over the rest of the window; 0
	// while no answer told.
	interval time.Duration
	// left is the requests left at the latest answer.
	left int64
	// resetAt is when the window of the latest answer ends: the quota
	// refills then, and the schedule planned in the window is void (and
	// resetAt zero, until the next answer).
	resetAt time.Time
	// due is when the next request is due on the even schedule; up to
	// burst-1 intervals earlier is allowed (fewer when fewer are left).
	due time.Time
	// changed is closed when a waiting request may go sooner (a shorter
	// interval, a new window); nil while nobody waits.
	changed chan struct{}

	// What others (the store's other apps, this service's other
	// replicas) spend of the quota, estimated from how much faster the
	// requests left fall than this client's own answers account for.
	answers     int64     // this client's answers that spent the quota
	markAt      time.Time // the start of the current measurement
	markLeft    int64     // requests left then
	markAnswers int64     // answers then
	markEnd     time.Time // the end of that answer's window
	othersRate  float64   // requests a second, smoothed (may dip below 0)
}

const (
	// estimateSpan is the shortest time over which others' spending is
	// measured: over shorter ones, answers that crossed on the way make
	// the fall of the requests left too noisy.
	estimateSpan = time.Second
	// othersTau is how long the estimate remembers: a measurement over
	// dt weighs 1-exp(-dt/othersTau). Slow enough that a burst of others
	// does not read as a steady rate, and that ten replicas estimating
	// each other settle rather than take turns; fast enough to follow
	// others who start or stop within a window.
	othersTau = 5 * time.Second
)

// estimateOthers updates othersRate with an answer of this client's that
// shows left requests, in a window ending at windowEnd. Every estimateSpan
// it compares how far the requests left fell with how many this client
// spent meanwhile. A sample is not clamped: answers that crossed on the way
// err both ways, and average out.
func (q *quota) estimateOthers(now time.Time, left int64, windowEnd time.Time) {
	q.answers++
	if q.markAt.IsZero() || !now.Before(q.markEnd) {
		// The first answer, or the first of a new window (the quota
		// refilled): measure from here.
		q.markAt, q.markLeft, q.markAnswers, q.markEnd = now, left, q.answers, windowEnd
		return
	}
	dt := now.Sub(q.markAt)
	if dt < estimateSpan {
		return
	}
	sample := float64(q.markLeft-left-(q.answers-q.markAnswers)) / dt.Seconds()
	q.othersRate += (1 - math.Exp(-dt.Seconds()/othersTau.Seconds())) * (sample - q.othersRate)
	q.markAt, q.markLeft, q.markAnswers, q.markEnd = now, left, q.answers, windowEnd
}

func newPacer(burst int, now func() time.Time) *pacer {
	return &pacer{burst: min(burst, maxBurst), now: now, stores: map[string]*quota{}}
}

func (p *pacer) quotaLocked(store string) *quota {
	q := p.stores[store]
	if q == nil {
		q = &quota{}
		p.stores[store] = q
	}
	return q
}

// hold makes the store's next requests wait until t (never shortening an
// earlier hold).
func (p *pacer) hold(store string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quotaLocked(store).holdUntil(t)
}

func (q *quota) holdUntil(t time.Time) {
	if t.After(q.hold) {
		q.hold = t
	}
}

// observe reads the rate-limit headers of an answer: when no request is left
// in the window, the next one waits for the reset (at most maxWait); else
// the requests left are spread over the reset's remaining time.
func (p *pacer) observe(store string, h http.Header, maxWait time.Duration) {
	v := strings.TrimSpace(h.Get(headerRequestsLeft))
	if v == "" {
		return
	}
	left, err := strconv.ParseInt(v, 10, 64)
	if err != nil || left < 0 {
		return
	}
	reset := min(resetDuration(h), maxWait)
	if reset <= 0 {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.quotaLocked(store)
	resetAt := now.Add(reset)
	if left == 0 {
		q.holdUntil(resetAt)
		q.left, q.resetAt = 0, resetAt
		return
	}
	if p.burst <= 0 {
		q.left, q.resetAt = left, resetAt
		return
	}
	sooner := false
	if !q.resetAt.IsZero() && !now.Before(q.resetAt) {
		// A new window: what the last one's schedule owed is void.
		q.due, sooner = time.Time{}, true
	}
	q.estimateOthers(now, left, resetAt)
	// Leave the others what they are spending; but never go slower than a
	// sixteenth of the even pace, so that a wrong estimate cannot stall us.
	mine := max(float64(left)-max(q.othersRate, 0)*reset.Seconds(), float64(left)/16)
	interval := time.Duration(float64(reset) / mine)
	if interval < minInterval {
		interval = 0 // a quota this large is no limit worth a timer
	}
	if q.interval > 0 && interval > 0 && q.due.After(now) {
		// What the schedule still owes was planned at the old spacing:
		// plan it again at the new one.
		owed := float64(q.due.Sub(now)) / float64(q.interval)
		q.due = now.Add(time.Duration(owed * float64(interval)))
	}
	if interval < q.interval {
		sooner = true
	}
	q.interval, q.left, q.resetAt = interval, left, resetAt
	if sooner && q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

// maxBurst bounds the burst: beyond it, spreading is as good as off (and
// the allowance, burst-1 intervals, stays far from overflowing).
const maxBurst = 10_000

// minInterval is the shortest spacing worth holding a request for: more
// than a thousand requests a second left is as good as no limit.
const minInterval = time.Millisecond

// Why a request waited, as bits.
const (
	notHeld      = 0
	heldForReset = 1 << iota
	heldToSpread
)

// take lets one request of the store go at now, or says when to ask again
// (after, or when the returned channel closes) and why. Waiters are not
// served in order: each wake-up lets the first to ask go, which is fair
// enough for a few workers per replica.
func (p *pacer) take(store string, now time.Time) (after time.Time, changed <-chan struct{}, why int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.stores[store]
	if q == nil {
		return now, nil, notHeld
	}
	if now.Before(q.hold) {
		return q.hold, nil, heldForReset
	}
	if q.interval > 0 {
		burst := int64(p.burst)
		switch {
		case now.Before(q.resetAt):
			// No more at once than are left.
			burst = max(min(burst, q.left), 1)
		case !q.resetAt.IsZero():
			// The window is over and no answer told of the next yet:
			// the quota has refilled, and the first answers plan anew.
			q.due, q.resetAt = time.Time{}, time.Time{}
		}
		earliest := q.due.Add(-time.Duration(burst-1) * q.interval)
		if now.Before(q.resetAt) && earliest.After(q.resetAt) {
			// Never past the reset: the quota refills then.
			earliest = q.resetAt
		}
		if now.Before(earliest) {
			if q.changed == nil {
				q.changed = make(chan struct{})
			}
			return earliest, q.changed, heldToSpread
		}
		q.due = later(q.due, now).Add(q.interval)
	}
	return now, nil, notHeld
}

// wait blocks until a request of the store may go, and says why it waited
// (the bits of every reason it was held for; notHeld: it was not). When
// the caller's deadline comes first, it gives up at once with a
// *fulfill.RetryableError rather than sleeping in vain.
func (p *pacer) wait(ctx context.Context, store string) (int, error) {
	waited := notHeld
	for {
		now := p.now()
		after, changed, why := p.take(store, now)
		if why == notHeld {
			return waited, nil
		}
		waited |= why
		d := after.Sub(now)
		if dl, has := ctx.Deadline(); has && dl.Before(after) {
			return waited, &fulfill.RetryableError{
				Err:        fmt.Errorf("rate limited for another %s, beyond the deadline", d.Round(time.Millisecond)),
				RetryAfter: d,
			}
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return waited, &fulfill.RetryableError{Err: fmt.Errorf("waiting for the store's rate limit: %w", ctx.Err()), RetryAfter: d}
		case <-changed:
			timer.Stop()
		case <-timer.C:
		}
		// Ask again: another answer may have moved the reset or the
		// spacing meanwhile, and another request may have gone first.
	}
}

// QuotaState is what the client knows of a store's API quota, for an
// operator: every field is zero until an answer told (and once the window
// of the latest answer is over, but for Burst).
type QuotaState struct {
	// Left is the requests left at the latest answer.
	Left int64
	// ResetsAt is when that answer's window ends and the quota refills.
	ResetsAt time.Time
	// HeldUntil is set while no request is sent before it (none left, or
	// a 429).
	HeldUntil time.Time
	// Spacing is the time between requests while the quota is spread.
	Spacing time.Duration
	// Burst is QuotaBurst; 0 when spreading is off.
	Burst int
}

func (p *pacer) state(store string, now time.Time) QuotaState {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := QuotaState{Burst: max(p.burst, 0)}
	q := p.stores[store]
	if q == nil {
		return st
	}
	if now.Before(q.hold) {
		st.HeldUntil = q.hold
	}
	if now.Before(q.resetAt) {
		st.Left, st.ResetsAt = q.left, q.resetAt
		if st.HeldUntil.IsZero() {
			st.Spacing = q.interval
		}
	}
	return st
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// resetDuration reads X-Rate-Limit-Time-Reset-Ms; 0 when absent or invalid.
func resetDuration(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get(headerResetMs))
	if v == "" {
		return 0
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil || ms <= 0 || ms > float64(24*time.Hour/time.Millisecond) {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// backoff is the wait before retry number attempt+1 after a 429: the reset
// the server named, doubled for each earlier 429, capped at maxWait.
func backoff(reset time.Duration, attempt int, maxWait time.Duration) time.Duration {
	d := min(reset, maxWait)
	for i := 0; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}
