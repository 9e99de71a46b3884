package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backorder/backorder/services/internal/promreg"
)

// MetricsPath serves the gateway's Prometheus metrics, without a token, like health.
const MetricsPath = "/metrics"

// gatewayMetrics counts and times every request by route and status.
type gatewayMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// triesTimedOut counts tries of a delivery's call that a replica did
	// not answer within FULFILLMENT_ATTEMPT_TIMEOUT.
	triesTimedOut prometheus.Counter
}

func newGatewayMetrics() *gatewayMetrics {
	m := &gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_gateway_http_requests_total",
			Help: "HTTP requests answered, by route (webhook, operator, health, metrics, other) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backorder_gateway_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route. For webhooks this is what BigCommerce waits for.",
			Buckets: promreg.LatencyBuckets,
		}, []string{"route"}),
		triesTimedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backorder_gateway_fulfillment_tries_timed_out_total",
			Help: "Tries of a delivery's call that a fulfillment replica did not answer within FULFILLMENT_ATTEMPT_TIMEOUT; each was made again on the next replica. A rising count means a replica is frozen or overloaded.",
		}),
	}
	m.reg = promreg.New(m.requests, m.duration, m.triesTimedOut)
	return m
}

func (m *gatewayMetrics) handler() http.Handler {
	return promreg.Handler(m.reg)
}

func (m *gatewayMetrics) observe(path string, status int, took time.Duration) {
	r := route(path)
	m.requests.WithLabelValues(r, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(r).Observe(took.Seconds())
}

// route names a path's route with a bounded set of labels.
func route(path string) string {
	switch {
	case path == WebhookPath, path == "/v1/webhooks", strings.HasPrefix(path, "/v1/webhooks/"):
		// A wrong hook URL counts against the webhook route, where the
		// README's alert looks.
		return "webhook"
	case strings.HasPrefix(path, "/v1/"):
		return "operator"
	case path == "/healthz" || path == "/readyz":
		return "health"
	case path == MetricsPath:
		return "metrics"
	}
	return "other"
}
