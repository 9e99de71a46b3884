package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// The domain's states and modes are converted by number: they must stay
// in step with the proto enums.
func TestDomainEnumsMirrorTheContract(t *testing.T) {
	for v, name := range backorderv1.OrderState_name {
		got := "ORDER_STATE_" + order.State(v).String()
		if got != name {
			t.Errorf("order.State(%d) = %s, proto says %s", v, got, name)
		}
	}
	for v, name := range backorderv1.SupplierMode_name {
		got := "SUPPLIER_MODE_" + strings.ToUpper(order.Mode(v).String())
		if got != name {
			t.Errorf("order.Mode(%d) = %s, proto says %s", v, got, name)
		}
	}
}

// The codes decide what BigCommerce does (the gateway turns them into HTTP
// statuses): "try later" must be Unavailable, never Internal.
func TestToStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", fulfill.ErrInvalidDelivery), codes.InvalidArgument},
		{fulfill.ErrBadPageToken, codes.InvalidArgument},
		{fmt.Errorf("x: %w", fulfill.ErrUnknownStore), codes.PermissionDenied},
		{fmt.Errorf("x: %w", fulfill.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", order.ErrInvalidTransition), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", fulfill.ErrSupplierIDInUse), codes.FailedPrecondition},
		{fmt.Errorf("bigcommerce: x: %w", fulfill.ErrCredentialsRefused), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", fulfill.ErrFenced), codes.Aborted},
		{fulfill.ErrLockLost, codes.Aborted},
		{fmt.Errorf("etcd: %w: no leader", fulfill.ErrUnavailable), codes.Unavailable},
		{context.DeadlineExceeded, codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{&fulfill.RetryableError{Err: errors.New("bigcommerce 503")}, codes.Unavailable},
		{status.Error(codes.InvalidArgument, "page_size"), codes.InvalidArgument},
		{errors.New("surprise"), codes.Internal},
	} {
		if got := status.Code(toStatus(c.err)); got != c.want {
			t.Errorf("toStatus(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}

// A sweep asked for another store is refused like any other action on
// another store's orders: PermissionDenied, not a malformed request.
func TestSweepOrdersOfAnotherStore(t *testing.T) {
	s := New(nil, Info{StoreHash: "abc"})
	_, err := s.SweepOrders(context.Background(), &backorderv1.SweepOrdersRequest{StoreHash: "other"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"abc"`) {
		t.Fatalf("SweepOrders of another store: %v; want PermissionDenied naming the store served", err)
	}
}
