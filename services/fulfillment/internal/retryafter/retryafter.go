// Package retryafter reads the Retry-After header that BigCommerce and
// TropShip may send with a 429 or a 5xx.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max is the longest wait a Retry-After is believed for: a longer one (a
// wrong header, a server's clock years off) is cut to it, so that no order
// is parked for longer than a day on one header. The order says when it is
// tried again (next_attempt_at) whatever the wait.
const Max = 24 * time.Hour

// Parse returns the wait a Retry-After asks for, as seconds or an HTTP
// date, at most Max; 0 when it is absent, invalid or already past.
func Parse(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(Max/time.Second) {
			return Max
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), Max)
	}
	return 0
}
