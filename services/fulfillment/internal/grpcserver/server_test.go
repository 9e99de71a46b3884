package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// The quota and the backlog in GetServiceStatus: a spent quota shows 0
// left, an unknown one nothing, and a backlog etcd cannot count is left
// out rather than shown as a number.
func TestStatusQuotaAndBacklog(t *testing.T) {
	resets := time.Unix(1_700_000_030, 0)
	s := &Server{info: Info{
		Quota:  func() Quota { return Quota{ResetsAt: resets, HeldUntil: resets, Burst: 10} },
		Queued: func(context.Context) (int64, error) { return 0, errors.New("etcd unreachable") },
	}}
	q := s.quota()
	if q.RequestsLeft == nil || q.GetRequestsLeft() != 0 || !q.GetHeldUntil().AsTime().Equal(resets) || q.SpacingMs != nil || q.GetBurst() != 10 {
		t.Errorf("spent: %v; want 0 left shown, held until the reset, no spacing, burst 10", q)
	}
	if n := s.queued(context.Background()); n != nil {
		t.Errorf("queued with etcd unreachable = %d, want left out", *n)
	}
	s.info.Quota = func() Quota { return Quota{Left: 450, ResetsAt: resets, Spacing: 66_666_666, Burst: 10} }
	s.info.Queued = func(context.Context) (int64, error) { return 0, nil }
	if q := s.quota(); q.GetRequestsLeft() != 450 || q.GetSpacingMs() != 66 || q.HeldUntil != nil {
		t.Errorf("spread: %v; want 450 left, 66 ms apart, no hold", q)
	}
	if n := s.queued(context.Background()); n == nil || *n != 0 {
		t.Errorf("queued = %v, want 0 shown", n)
	}
	s.info.Quota = func() Quota { return Quota{Burst: 10} }
	if q := s.quota(); q.RequestsLeft != nil || q.ResetsAt != nil || q.GetBurst() != 10 {
		t.Errorf("before any answer: %v; want only the burst", q)
	}
}

// The TropShip breaker in GetServiceStatus: left out when it is off; when
// on, its setting, closed, nothing held.
func TestStatusBreaker(t *testing.T) {
	off := &Server{svc: fulfill.New(fulfill.Config{Store: "abc"}, nil, nil, nil, nil)}
	if b := off.breaker(); b != nil {
		t.Errorf("breaker off: %v, want left out", b)
	}
	on := &Server{svc: fulfill.New(fulfill.Config{Store: "abc", Breaker: 3}, nil, nil, nil, nil)}
	if b := on.breaker(); b == nil || b.GetAfter() != 3 || b.GetOpen() || b.ProbeAt != nil || b.GetHeldRuns() != 0 {
		t.Errorf("breaker on: %v, want after 3, closed", b)
	}
}

// GetServiceStatus names the replica's ROLE.
func TestStatusRole(t *testing.T) {
	for role, want := range map[fulfill.Role]backorderv1.ReplicaRole{
		fulfill.RoleAll:     backorderv1.ReplicaRole_REPLICA_ROLE_ALL,
		fulfill.RoleIntake:  backorderv1.ReplicaRole_REPLICA_ROLE_INTAKE,
		fulfill.RoleProcess: backorderv1.ReplicaRole_REPLICA_ROLE_PROCESS,
	} {
		s := &Server{svc: fulfill.New(fulfill.Config{Store: "abc", Role: role}, nil, nil, nil, nil)}
		if got := s.role(); got != want {
			t.Errorf("ROLE=%s: status role %v, want %v", role, got, want)
		}
	}
}
