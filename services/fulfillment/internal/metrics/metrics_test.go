package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/metrics"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

type fakeSupplier struct{}

func (fakeSupplier) Submit(_ context.Context, _ order.Submission, validateOnly bool) order.Result {
	if validateOnly {
		return order.Result{Outcome: order.Valid}
	}
	return order.Result{Outcome: order.Ambiguous}
}

func (fakeSupplier) Lookup(context.Context, string) (string, bool, error) { return "TS-1", true, nil }

// fakeStorefront writes back every id but an empty one.
type fakeStorefront struct{ fulfill.Storefront }

func (fakeStorefront) SetSupplierReference(_ context.Context, _ order.Key, id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	return nil
}

// Order answers by order id: 1 found, 2 not found, 3 token refused, else a
// 5xx.
func (fakeStorefront) Order(_ context.Context, k order.Key) (order.StorefrontOrder, error) {
	switch k.ID {
	case 1:
		return order.StorefrontOrder{ID: 1}, nil
	case 2:
		return order.StorefrontOrder{}, fulfill.ErrOrderNotFound
	case 3:
		return order.StorefrontOrder{}, fmt.Errorf("HTTP 401: %w", fulfill.ErrCredentialsRefused)
	}
	return order.StorefrontOrder{}, &fulfill.RetryableError{Err: errors.New("HTTP 503")}
}

// Contents answers by order id: 1 found, 3 token refused, else a 5xx.
func (fakeStorefront) Contents(_ context.Context, k order.Key) ([]order.Line, []order.Address, error) {
	switch k.ID {
	case 1:
		return nil, nil, nil
	case 3:
		return nil, nil, fmt.Errorf("HTTP 401: %w", fulfill.ErrCredentialsRefused)
	}
	return nil, nil, &fulfill.RetryableError{Err: errors.New("HTTP 503")}
}

func TestMetrics(t *testing.T) {
	m := metrics.New()
	call := func(method string, resp any, err error) {
		info := &grpc.UnaryServerInfo{FullMethod: method}
		_, _ = m.Interceptor()(context.Background(), nil, info, func(context.Context, any) (any, error) { return resp, err })
	}
	hook := backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName
	call(hook, &backorderv1.HandleOrderWebhookResponse{Recorded: true}, nil)
	call(hook, &backorderv1.HandleOrderWebhookResponse{Duplicate: true}, nil)
	call(hook, &backorderv1.HandleOrderWebhookResponse{Duplicate: true}, nil)
	call(hook, &backorderv1.HandleOrderWebhookResponse{Ignored: true}, nil)
	call(hook, nil, status.Error(codes.Unavailable, "etcd down"))
	call(backorderv1.FulfillmentService_GetOrder_FullMethodName, nil, status.Error(codes.NotFound, "no"))

	sup := m.Supplier(fakeSupplier{})
	sup.Submit(context.Background(), order.Submission{}, true)
	sup.Submit(context.Background(), order.Submission{}, false)
	sup.Lookup(context.Background(), "BC-abc-1")
	sf := m.Storefront(fakeStorefront{})
	sf.SetSupplierReference(context.Background(), order.Key{Store: "abc", ID: 1}, "TS-1")
	sf.SetSupplierReference(context.Background(), order.Key{Store: "abc", ID: 2}, "")
	for id := range uint64(4) {
		sf.Order(context.Background(), order.Key{Store: "abc", ID: id + 1})
	}
	// Lines and addresses: a success is not counted again; a failure is.
	for _, id := range []uint64{1, 3, 4} {
		sf.Contents(context.Background(), order.Key{Store: "abc", ID: id})
	}

	m.BigCommerce(func() metrics.BigCommerceStats {
		return metrics.BigCommerceStats{Requests: 8, RateLimited: 1, SideLoaded: 5, ReadApart: 2}
	})
	up := true
	m.Store(func(context.Context) (map[order.State]int64, int64, error) {
		if !up {
			return nil, 0, errors.New("etcd unreachable")
		}
		return map[order.State]int64{order.Submitted: 3, order.NeedsReview: 1}, 2, nil
	}, func(context.Context) (bool, time.Duration, fulfill.SweepState, error) {
		return true, time.Minute, fulfill.SweepState{LastRun: time.Unix(1700000000, 0), Listed: 5, Recorded: 2, LastError: "HTTP 401"}, nil
	})

	wantLines(t, scrape(t, m),
		`backorder_webhook_deliveries_total{result="recorded"} 1`,
		`backorder_webhook_deliveries_total{result="duplicate"} 2`,
		`backorder_webhook_deliveries_total{result="ignored"} 1`,
		`backorder_webhook_deliveries_total{result="failed"} 1`,
		`backorder_grpc_requests_total{code="Unavailable",method="HandleOrderWebhook"} 1`,
		`backorder_grpc_requests_total{code="NotFound",method="GetOrder"} 1`,
		`backorder_supplier_submissions_total{mode="validate",outcome="valid"} 1`,
		`backorder_supplier_submissions_total{mode="live",outcome="ambiguous"} 1`,
		`backorder_supplier_lookups_total{result="found"} 1`,
		`backorder_write_backs_total{result="written"} 1`,
		`backorder_write_backs_total{result="error"} 1`,
		`backorder_storefront_reads_total{result="ok"} 1`,
		`backorder_storefront_reads_total{result="not_found"} 1`,
		`backorder_storefront_reads_total{result="refused"} 2`,
		`backorder_storefront_reads_total{result="error"} 2`,
		`backorder_bigcommerce_requests_total 8`,
		`backorder_bigcommerce_rate_limited_total 1`,
		`backorder_bigcommerce_side_loaded_total 5`,
		`backorder_bigcommerce_read_apart_total 2`,
		`backorder_store_up 1`,
		`backorder_orders{state="SUBMITTED"} 3`,
		`backorder_orders{state="NEEDS_REVIEW"} 1`,
		`backorder_orders_queued 2`,
		`backorder_orders_sweep_last_run_timestamp_seconds 1.7e+09`,
		`backorder_orders_sweep_failing 1`,
		`backorder_orders_sweep_last_listed 5`,
	)
	up = false
	out := scrape(t, m)
	wantLines(t, out, `backorder_store_up 0`)
	if strings.Contains(out, "backorder_orders{") {
		t.Error("orders by state reported while etcd could not be read")
	}
}

// The etcd client's requests are timed by method and result, from the
// replica's side, against a real etcd.
func TestEtcdInterceptor(t *testing.T) {
	m := metrics.New()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{etcdtest.Start(t)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(m.EtcdInterceptor())},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/t/a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "/t/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("/t/b", "1"), clientv3.OpPut("/t/b", "2")).Commit(); err == nil {
		t.Fatal("a transaction putting one key twice was accepted")
	}
	wantLines(t, scrape(t, m),
		`backorder_etcd_request_duration_seconds_count{method="Put",result="ok"} 1`,
		`backorder_etcd_request_duration_seconds_count{method="Range",result="ok"} 1`,
		`backorder_etcd_request_duration_seconds_count{method="Txn",result="error"} 1`,
	)
}
