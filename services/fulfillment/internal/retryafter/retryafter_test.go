package retryafter_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/retryafter"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-3", 0},
		{"soon", 0},
		{"1.5", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{"Thu, 01 Jan 2026 12:01:00 GMT", time.Minute},
		// Longer than a day: not a rate limit's, ignored (the caller's
		// backoff applies). Before, a year was believed, and a number this
		// large overflowed into any duration.
		{"86400", retryafter.Max},
		{"86401", 0},
		{"31536000", 0},
		{"9223372036854775807", 0},
		{now.Add(30 * 24 * time.Hour).Format(http.TimeFormat), 0},
	} {
		h := http.Header{}
		if tc.in != "" {
			h.Set("Retry-After", tc.in)
		}
		if got := retryafter.Parse(h, now); got != tc.want {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
