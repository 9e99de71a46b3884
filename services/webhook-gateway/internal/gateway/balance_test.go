package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// A replica that ran out of time is passed over for stallCooldown, then let
// through by one trial call at a time; an answer (any answer) clears it, a
// trial that runs out of time again starts a new cooldown.
func TestStalls(t *testing.T) {
	s := &stalls{m: map[string]*stall{}}
	t0 := time.Unix(1_000_000, 0)
	timeout := status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	if !s.admit("a", t0) {
		t.Fatal("a replica nothing is known of was passed over")
	}
	s.done("a", timeout, t0)
	if s.admit("a", t0.Add(stallCooldown-time.Millisecond)) {
		t.Fatal("admitted within its cooldown")
	}
	after := t0.Add(stallCooldown)
	if !s.admit("a", after) {
		t.Fatal("no trial call after the cooldown")
	}
	if s.admit("a", after) {
		t.Fatal("a second call admitted while the trial is in flight")
	}
	if !s.admit("a", after.Add(stallCooldown)) {
		t.Fatal("a trial that never ended bars the replica for good")
	}
	s.done("a", timeout, after)
	if s.admit("a", after.Add(time.Second)) {
		t.Fatal("admitted right after its trial ran out of time")
	}
	again := after.Add(stallCooldown)
	if !s.admit("a", again) {
		t.Fatal("no trial call after the second cooldown")
	}
	s.done("a", status.Error(codes.Canceled, "the caller went away"), again)
	if !s.admit("a", again) {
		t.Fatal("a cancelled trial says nothing: the next call should be the trial")
	}
	// Unavailable may be a broken connection: it ends the trial, and says
	// nothing more.
	s.done("a", status.Error(codes.Unavailable, "connection reset"), again)
	if !s.admit("a", again) {
		t.Fatal("no trial after an Unavailable one")
	}
	// Any other answer, an error one included, means the replica answers.
	s.done("a", status.Error(codes.InvalidArgument, "bad"), again)
	for range 3 {
		if !s.admit("a", again) {
			t.Fatal("a replica that answered is still passed over")
		}
	}
}

// Only a delivery's call is tried again, only after running out of time,
// and at most maxTries times.
func TestTryElsewhere(t *testing.T) {
	intercept := tryElsewhere(50*time.Millisecond, nil)
	for _, tc := range []struct {
		name   string
		method string
		errs   []error
		want   codes.Code
		tries  int
	}{
		{"answered", backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName, []error{nil}, codes.OK, 1},
		{"timed out once", backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName,
			[]error{status.Error(codes.DeadlineExceeded, "x"), nil}, codes.OK, 2},
		{"timed out every time", backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName,
			[]error{status.Error(codes.DeadlineExceeded, "x"), status.Error(codes.DeadlineExceeded, "x"), status.Error(codes.DeadlineExceeded, "x"), nil},
			codes.DeadlineExceeded, maxTries},
		{"a replica's own Unavailable", backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName,
			[]error{status.Error(codes.Unavailable, "etcd down"), nil}, codes.Unavailable, 1},
		{"an operator action", backorderv1.FulfillmentService_ProcessOrder_FullMethodName,
			[]error{status.Error(codes.DeadlineExceeded, "x"), nil}, codes.DeadlineExceeded, 1},
	} {
		tries := 0
		invoker := func(ctx context.Context, method string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			if method == backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName {
				if d, ok := ctx.Deadline(); !ok || time.Until(d) > 50*time.Millisecond {
					t.Errorf("%s: try %d has no deadline of its own", tc.name, tries+1)
				}
			}
			err := tc.errs[tries]
			tries++
			return err
		}
		err := intercept(context.Background(), tc.method, nil, nil, nil, invoker)
		if status.Code(err) != tc.want || tries != tc.tries {
			t.Errorf("%s: %v after %d tries, want %s after %d", tc.name, err, tries, tc.want, tc.tries)
		}
	}
	// The call's own deadline ends the tries.
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	err := intercept(ctx, backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName, nil, nil, nil,
		func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			tries++
			cancel()
			return status.Error(codes.DeadlineExceeded, "x")
		})
	if tries != 1 || !errors.Is(ctx.Err(), context.Canceled) || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("after the call's context ended: %d tries, %v", tries, err)
	}
}
