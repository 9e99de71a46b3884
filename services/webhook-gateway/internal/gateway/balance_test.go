package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// A replica that ran out of time is passed over for stallCooldown, then let
// through by one trial call at a time; an answer clears it, a trial that
// runs out of time again starts a new cooldown, and the others share the
// calls evenly meanwhile.
func TestStalls(t *testing.T) {
	s := &stalls{m: map[string]*stall{}}
	addrs := []string{"a", "b", "c"}
	t0 := time.Unix(1_000_000, 0)
	timeout := balancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "context deadline exceeded")}
	answered := balancer.DoneInfo{BytesReceived: true}
	count := func(now time.Time, n int) map[string]int {
		got := map[string]int{}
		for i := range n {
			got[addrs[s.choose(addrs, uint32(i), now)]]++
		}
		return got
	}
	if got := count(t0, 30); got["a"] != 10 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("no replica passed over: %v, want 10 each", got)
	}
	s.done("b", timeout, t0)
	if got := count(t0.Add(stallCooldown-time.Millisecond), 30); got["b"] != 0 || got["a"] != 15 || got["c"] != 15 {
		t.Fatalf("b passed over: %v, want a and c 15 each, b none", got)
	}
	after := t0.Add(stallCooldown)
	if i := s.choose(addrs, 0, after); addrs[i] != "b" {
		t.Fatalf("after the cooldown the next call went to %s, want b's trial", addrs[i])
	}
	if got := count(after, 10); got["b"] != 0 {
		t.Fatalf("calls admitted to b while its trial is in flight: %v", got)
	}
	if i := s.choose(addrs, 0, after.Add(stallCooldown)); addrs[i] != "b" {
		t.Fatal("a trial that never ended bars the replica for good")
	}
	s.done("b", timeout, after.Add(stallCooldown))
	if got := count(after.Add(stallCooldown+time.Second), 10); got["b"] != 0 {
		t.Fatalf("b admitted right after its trial ran out of time: %v", got)
	}
	again := after.Add(3 * stallCooldown)
	for _, d := range []balancer.DoneInfo{
		{Err: status.Error(codes.Canceled, "the caller went away")},
		{Err: status.Error(codes.Unavailable, "connection reset")},
		{}, // picked, never sent: gRPC reports no error and no bytes
	} {
		if i := s.choose(addrs, 0, again); addrs[i] != "b" {
			t.Fatalf("after a trial ending %v, the next call went to %s, want another trial of b", d, addrs[i])
		}
		s.done("b", d, again)
	}
	if i := s.choose(addrs, 0, again); addrs[i] != "b" {
		t.Fatal("no trial of b")
	}
	s.done("b", answered, again)
	if got := count(again, 30); got["b"] != 10 {
		t.Fatalf("b answered but is still passed over: %v", got)
	}
	// Any error a replica answers with means it answers.
	s.done("c", timeout, again)
	s.done("c", balancer.DoneInfo{Err: status.Error(codes.InvalidArgument, "bad")}, again)
	if got := count(again, 30); got["c"] != 10 {
		t.Fatalf("c answered an error but is still passed over: %v", got)
	}
	// Every replica passed over: all are used.
	for _, a := range addrs {
		s.done(a, timeout, again)
	}
	if got := count(again.Add(time.Second), 30); got["a"] != 10 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("every replica passed over: %v, want 10 each", got)
	}
}

// Only a delivery's call is tried again, only after running out of time,
// and once: the second try has the rest of the call's deadline.
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
			[]error{status.Error(codes.DeadlineExceeded, "x"), status.Error(codes.DeadlineExceeded, "x"), nil},
			codes.DeadlineExceeded, 2},
		{"a replica's own Unavailable", backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName,
			[]error{status.Error(codes.Unavailable, "etcd down"), nil}, codes.Unavailable, 1},
		{"an operator action", backorderv1.FulfillmentService_ProcessOrder_FullMethodName,
			[]error{status.Error(codes.DeadlineExceeded, "x"), nil}, codes.DeadlineExceeded, 1},
	} {
		tries := 0
		invoker := func(ctx context.Context, method string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			if method == backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName {
				// The first try has a deadline of its own; the second
				// the call's (here none).
				d, ok := ctx.Deadline()
				if first := tries == 0; first != ok || ok && time.Until(d) > 50*time.Millisecond {
					t.Errorf("%s: try %d has deadline %v (%v)", tc.name, tries+1, d, ok)
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
