package bigcommerce

import (
	"context"
	"fmt"
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

// pacer holds requests back, per store, until a rate-limit reset has passed.
// The quota is the store's, so every call of the client shares it.
type pacer struct {
	mu    sync.Mutex
	until map[string]time.Time // store hash -> no request before
}

func newPacer() *pacer { return &pacer{until: map[string]time.Time{}} }

// hold makes the store's next requests wait until t (never shortening an
// earlier hold).
func (p *pacer) hold(store string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.After(p.until[store]) {
		p.until[store] = t
	}
}

// observe reads the rate-limit headers of an answer: when no request is left
// in the window, the next one waits for the reset (at most maxWait).
func (p *pacer) observe(store string, h http.Header, maxWait time.Duration) {
	left := strings.TrimSpace(h.Get(headerRequestsLeft))
	if left == "" {
		return
	}
	if n, err := strconv.ParseInt(left, 10, 64); err != nil || n > 0 {
		return
	}
	reset := resetDuration(h)
	if reset <= 0 {
		return
	}
	p.hold(store, time.Now().Add(min(reset, maxWait)))
}

// wait blocks until the store may be called again, and reports whether it
// had to wait. When the caller's deadline comes before the reset, it gives up
// at once with a *fulfill.RetryableError rather than sleeping in vain.
func (p *pacer) wait(ctx context.Context, store string) (bool, error) {
	waited := false
	for {
		p.mu.Lock()
		until, ok := p.until[store]
		if ok && !time.Now().Before(until) {
			delete(p.until, store)
			ok = false
		}
		p.mu.Unlock()
		if !ok {
			return waited, nil
		}
		d := time.Until(until)
		if dl, has := ctx.Deadline(); has && dl.Before(until) {
			return waited, &fulfill.RetryableError{
				Err:        fmt.Errorf("rate limited for another %s, beyond the deadline", d.Round(time.Millisecond)),
				RetryAfter: d,
			}
		}
		waited = true
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return waited, &fulfill.RetryableError{Err: fmt.Errorf("waiting for the rate-limit reset: %w", ctx.Err()), RetryAfter: d}
		case <-timer.C:
		}
		// Loop: another answer may have moved the reset meanwhile.
	}
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
