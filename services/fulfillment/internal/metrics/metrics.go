// Package metrics is the fulfillment service's Prometheus metrics: gRPC
// calls, webhook intake results, supplier calls by mode and outcome,
// BigCommerce requests and rate limiting, the orders in each state and the
// queue (read from etcd at each scrape), and the Orders API sweep. It
// observes the use case from outside (a gRPC interceptor, a Supplier
// decorator, functions read at scrape time), so the domain knows nothing of
// it.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/promreg"
)

// EnvAddr is the setting of the metrics listener.
const EnvAddr = "METRICS_ADDR"

// scrapeTimeout bounds the etcd reads of one scrape.
const scrapeTimeout = 3 * time.Second

// Metrics holds the service's collectors, on a registry of its own.
type Metrics struct {
	reg        *prometheus.Registry
	grpcCalls  *prometheus.CounterVec
	grpcTime   *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	submits    *prometheus.CounterVec
	lookups    *prometheus.CounterVec
	writeBacks *prometheus.CounterVec
	reads      *prometheus.CounterVec
	etcdTime   *prometheus.HistogramVec
}

// New returns Metrics with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		grpcCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_grpc_requests_total", Help: "gRPC calls served, by method and status code.",
		}, []string{"method", "code"}),
		grpcTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backorder_grpc_request_duration_seconds", Help: "Time to answer a gRPC call, by method.",
			Buckets: promreg.LatencyBuckets,
		}, []string{"method"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_webhook_deliveries_total",
			Help: "Webhook deliveries answered, by result: recorded (new), duplicate, ignored (scope not acted on), failed (an error was answered).",
		}, []string{"result"}),
		submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_supplier_submissions_total",
			Help: "TropShip order submissions, by mode (validate, live) and outcome (created, valid, refused, throttled, not_sent, ambiguous).",
		}, []string{"mode", "outcome"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_supplier_lookups_total", Help: "TropShip lookups by reference, by result: found, not_found, error.",
		}, []string{"result"}),
		writeBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_write_backs_total",
			Help: "Writes of the supplier's id to the BigCommerce order's metafield (step 9), by result: written, error.",
		}, []string{"result"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backorder_storefront_reads_total",
			Help: "Reads of an order from BigCommerce (steps 5 and 6), by result: ok (the order read), not_found, and failed reads of the order, its lines or its addresses: refused (the access token: a person must fix it), error.",
		}, []string{"result"}),
		etcdTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backorder_etcd_request_duration_seconds",
			Help:    "Time etcd took to answer this replica's unary requests, as the replica waited for them, by method (Range, Txn, Put, DeleteRange, LeaseGrant, ...) and result (ok, error). Each attempt is timed on its own: the etcd client's retries are not added up.",
			Buckets: promreg.LatencyBuckets,
		}, []string{"method", "result"}),
	}
	m.reg = promreg.New(m.grpcCalls, m.grpcTime, m.deliveries, m.submits, m.lookups, m.writeBacks, m.reads, m.etcdTime)
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promreg.Handler(m.reg)
}

// Interceptor counts and times every unary call, and the result of each
// webhook delivery.
func (m *Metrics) Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
		m.grpcCalls.WithLabelValues(method, status.Code(err).String()).Inc()
		m.grpcTime.WithLabelValues(method).Observe(time.Since(start).Seconds())
		if r, ok := resp.(*backorderv1.HandleOrderWebhookResponse); ok || info.FullMethod == backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName {
			switch {
			case err != nil:
				m.deliveries.WithLabelValues("failed").Inc()
			case r.GetRecorded():
				m.deliveries.WithLabelValues("recorded").Inc()
			case r.GetDuplicate():
				m.deliveries.WithLabelValues("duplicate").Inc()
			default:
				m.deliveries.WithLabelValues("ignored").Inc()
			}
		}
		return resp, err
	}
}

// EtcdInterceptor times the etcd client's unary requests (a gRPC client
// interceptor for clientv3.Config.DialOptions): how long the service waits
// for etcd, a delivery's read and write included.
func (m *Metrics) EtcdInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.etcdTime.WithLabelValues(method[strings.LastIndexByte(method, '/')+1:], result).Observe(time.Since(start).Seconds())
		return err
	}
}

// outcomeNames are the label values of supplier outcomes.
var outcomeNames = map[order.Outcome]string{
	order.Created: "created", order.Valid: "valid", order.Refused: "refused",
	order.Throttled: "throttled", order.NotSent: "not_sent", order.Ambiguous: "ambiguous",
}

// Supplier returns s, counting its submissions and lookups.
func (m *Metrics) Supplier(s fulfill.Supplier) fulfill.Supplier { return &supplier{s: s, m: m} }

type supplier struct {
	s fulfill.Supplier
	m *Metrics
}

func (c *supplier) Submit(ctx context.Context, sub order.Submission, validateOnly bool) order.Result {
	r := c.s.Submit(ctx, sub, validateOnly)
	mode, outcome := "live", outcomeNames[r.Outcome]
	if validateOnly {
		mode = "validate"
	}
	if outcome == "" {
		outcome = "unknown"
	}
	c.m.submits.WithLabelValues(mode, outcome).Inc()
	return r
}

func (c *supplier) Lookup(ctx context.Context, ref string) (string, bool, error) {
	id, found, err := c.s.Lookup(ctx, ref)
	switch {
	case err != nil:
		c.m.lookups.WithLabelValues("error").Inc()
	case found:
		c.m.lookups.WithLabelValues("found").Inc()
	default:
		c.m.lookups.WithLabelValues("not_found").Inc()
	}
	return id, found, err
}

// Storefront returns s, counting its write-backs.
func (m *Metrics) Storefront(s fulfill.Storefront) fulfill.Storefront {
	return &storefront{Storefront: s, m: m}
}

type storefront struct {
	fulfill.Storefront
	m *Metrics
}

func (c *storefront) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	o, err := c.Storefront.Order(ctx, k)
	if err == nil {
		c.m.reads.WithLabelValues("ok").Inc()
	}
	c.readFailed(ctx, err)
	return o, err
}

// Contents counts only failures: the order read counted the run.
func (c *storefront) Contents(ctx context.Context, k order.Key) ([]order.Line, []order.Address, error) {
	lines, shipping, err := c.Storefront.Contents(ctx, k)
	c.readFailed(ctx, err)
	return lines, shipping, err
}

func (c *storefront) readFailed(ctx context.Context, err error) {
	switch {
	case err == nil:
	case errors.Is(err, fulfill.ErrOrderNotFound):
		c.m.reads.WithLabelValues("not_found").Inc()
	case errors.Is(err, fulfill.ErrCredentialsRefused):
		c.m.reads.WithLabelValues("refused").Inc()
	case ctx.Err() == nil:
		c.m.reads.WithLabelValues("error").Inc()
	}
}

func (c *storefront) SetSupplierReference(ctx context.Context, k order.Key, offlineOrderID string) error {
	err := c.Storefront.SetSupplierReference(ctx, k, offlineOrderID)
	switch {
	case err == nil:
		c.m.writeBacks.WithLabelValues("written").Inc()
	case ctx.Err() == nil: // not cut short by a shutdown or a lost lock
		c.m.writeBacks.WithLabelValues("error").Inc()
	}
	return err
}

// BigCommerceStats are the BigCommerce client's counters.
type BigCommerceStats struct {
	Requests, RateLimited, PacedWaits, SpreadWaits uint64
	SideLoaded, ReadApart                          uint64
}

// BigCommerce exposes the client's counters, read at each scrape.
func (m *Metrics) BigCommerce(stats func() BigCommerceStats) {
	for _, c := range []struct {
		name, help string
		get        func(BigCommerceStats) uint64
	}{
		{"backorder_bigcommerce_requests_total", "HTTP requests sent to the BigCommerce API (retries included).", func(s BigCommerceStats) uint64 { return s.Requests }},
		{"backorder_bigcommerce_rate_limited_total", "BigCommerce answers 429 (rate limited).", func(s BigCommerceStats) uint64 { return s.RateLimited }},
		{"backorder_bigcommerce_paced_waits_total", "BigCommerce requests that first waited for the store's quota to reset.", func(s BigCommerceStats) uint64 { return s.PacedWaits }},
		{"backorder_bigcommerce_spread_waits_total", "BigCommerce requests that first waited so that the store's quota is spread over its window (BIGCOMMERCE_QUOTA_BURST).", func(s BigCommerceStats) uint64 { return s.SpreadWaits }},
		{"backorder_bigcommerce_side_loaded_total", "Order reads that brought the order's lines and shipping address whole (include=consignments.line_items).", func(s BigCommerceStats) uint64 { return s.SideLoaded }},
		{"backorder_bigcommerce_read_apart_total", "Reads of an order's lines and shipping addresses from /products and /shipping_addresses, where the order read did not bring them whole.", func(s BigCommerceStats) uint64 { return s.ReadApart }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.get(stats())) }))
	}
}

// SupplierBreaker exposes the TropShip breaker's state (see
// fulfill.Breaker), read at each scrape.
func (m *Metrics) SupplierBreaker(state func() fulfill.BreakerState) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "backorder_supplier_breaker_open",
		Help: "1 while live orders are held back because TropShip's last live answers were unclear (5xx, timeout, reset); see TROPSHIP_BREAKER.",
	}, func() float64 {
		if state().Open {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "backorder_supplier_breaker_held_total",
		Help: "Runs held back (nothing read or sent, retried later) while the TropShip breaker was open or a TropShip 429 asked for a wait; an order held several times counts each time.",
	}, func() float64 { return float64(state().Held) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "backorder_supplier_throttled",
		Help: "1 while live orders are held back because TropShip answered 429 and its Retry-After (or 1 s) has not passed.",
	}, func() float64 {
		if !state().ThrottledUntil.IsZero() {
			return 1
		}
		return 0
	}))
}

// QueueShare exposes how many replicas that process orders (ROLE=all and
// ROLE=process) divide the store's queue, as this one sees them, read at
// each scrape.
func (m *Metrics) QueueShare(replicas func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "backorder_queue_share_replicas",
		Help: "Replicas that process orders (ROLE=all and ROLE=process) dividing the store's queue among them, this one included, as this replica sees them; 0 before it has registered and while it registers again, when it takes every due order it hears of.",
	}, func() float64 { return float64(replicas()) }))
}

// OrderCounts reads the number of records in each state and of queued
// orders.
type OrderCounts func(ctx context.Context) (map[order.State]int64, int64, error)

// SweepStatus reads the Orders API sweep's state.
type SweepStatus func(ctx context.Context) (enabled bool, every time.Duration, st fulfill.SweepState, err error)

// Store exposes what etcd holds, read at each scrape: orders by state, the
// queue, and the Orders API sweep. A scrape that cannot read etcd reports
// backorder_store_up 0 and leaves the rest out.
func (m *Metrics) Store(counts OrderCounts, sweep SweepStatus) {
	m.reg.MustRegister(&storeCollector{counts: counts, sweep: sweep})
}

var (
	descUp = prometheus.NewDesc("backorder_store_up",
		"1 when this scrape could read etcd, else 0.", nil, nil)
	descOrders = prometheus.NewDesc("backorder_orders",
		"Order records in each state (NEEDS_REVIEW, REJECTED and FAILED wait for a person).", []string{"state"}, nil)
	descQueued = prometheus.NewDesc("backorder_orders_queued",
		"Orders with work queued (due now or later).", nil, nil)
	descSweepLast = prometheus.NewDesc("backorder_orders_sweep_last_run_timestamp_seconds",
		"When the last Orders API sweep started (0: never).", nil, nil)
	descSweepFailing = prometheus.NewDesc("backorder_orders_sweep_failing",
		"1 when the last Orders API sweep failed (see GetServiceStatus for why), else 0.", nil, nil)
	descSweepListed = prometheus.NewDesc("backorder_orders_sweep_last_listed",
		"Orders the last Orders API sweep listed.", nil, nil)
	descSweepRecorded = prometheus.NewDesc("backorder_orders_sweep_last_recorded",
		"Changes the last Orders API sweep recorded as new events.", nil, nil)
)

type storeCollector struct {
	counts OrderCounts
	sweep  SweepStatus
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descOrders, descQueued, descSweepLast, descSweepFailing, descSweepListed, descSweepRecorded} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	byState, queued, err := c.counts(ctx)
	var sweep fulfill.SweepState
	enabled := false
	if err == nil {
		enabled, _, sweep, err = c.sweep(ctx)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(descOrders, prometheus.GaugeValue, float64(n), st.String())
	}
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(queued))
	if !enabled {
		return
	}
	last := 0.0
	if !sweep.LastRun.IsZero() {
		last = float64(sweep.LastRun.UnixNano()) / 1e9
	}
	failing := 0.0
	if sweep.LastError != "" {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(descSweepLast, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descSweepFailing, prometheus.GaugeValue, failing)
	ch <- prometheus.MustNewConstMetric(descSweepListed, prometheus.GaugeValue, float64(sweep.Listed))
	ch <- prometheus.MustNewConstMetric(descSweepRecorded, prometheus.GaugeValue, float64(sweep.Recorded))
}
