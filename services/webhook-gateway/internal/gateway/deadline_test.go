package gateway

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// A webhook's call, reads and health get the short deadline BigCommerce
// needs; the operator actions that wait for a lock or the supplier get the
// long one.
func TestDeadlineByMethod(t *testing.T) {
	const webhook, operator = 5 * time.Second, time.Minute
	intercept := deadline(webhook, operator)
	for method, want := range map[string]time.Duration{
		backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName: webhook,
		backorderv1.FulfillmentService_GetOrder_FullMethodName:           webhook,
		backorderv1.FulfillmentService_GetServiceStatus_FullMethodName:   webhook,
		"/grpc.health.v1.Health/Check":                                   webhook,
		backorderv1.FulfillmentService_ProcessOrder_FullMethodName:       operator,
		backorderv1.FulfillmentService_RetryOrder_FullMethodName:         operator,
		backorderv1.FulfillmentService_ResolveOrder_FullMethodName:       operator,
		backorderv1.FulfillmentService_SweepOrders_FullMethodName:        operator,
	} {
		var got time.Duration
		invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			d, ok := ctx.Deadline()
			if !ok {
				t.Fatalf("%s: no deadline", method)
			}
			got = time.Until(d)
			return nil
		}
		if err := intercept(context.Background(), method, nil, nil, nil, invoker); err != nil {
			t.Fatal(err)
		}
		if got > want || got < want-time.Second {
			t.Errorf("%s: deadline in %s, want %s", method, got, want)
		}
	}
}
