// Package retryafter reads the Retry-After header that BigCommerce and
// TropShip may send with a 429 or a 5xx.
package retryafter

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Max is the longest wait a Retry-After is believed for. A longer one is
// not a rate limit's (a wrong header, a server's clock years off) and is
// ignored, as BigCommerce's reset header over a day is: the caller's own
// backoff applies, so that no order is parked for days on one header.
const Max = 24 * time.Hour

// Parse returns the wait a Retry-After asks for, as seconds or an HTTP
// date; 0 when it is absent, invalid, already past, or longer than Max.
func Parse(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(Max/time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) && t.Sub(now) <= Max {
		return t.Sub(now)
	}
	return 0
}
