package gateway_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// call is one RPC the fake fulfillment service received.
type call struct {
	method string
	req    proto.Message
	md     metadata.MD
}

// fakeFulfillment is a real gRPC server on 127.0.0.1:0 standing in for the
// fulfillment service. It records every call and answers with err when set.
type fakeFulfillment struct {
	backorderv1.UnimplementedFulfillmentServiceServer

	addr   string
	name   string
	srv    *grpc.Server
	health *health.Server

	mu    sync.Mutex
	calls []call
	err   error
	// hold, when set, holds every webhook call until it is closed or the
	// call's context ends, as a frozen replica would: its connection and
	// its health stay up, and nothing is answered.
	hold chan struct{}
	// delay, when set, delays every webhook answer, as a replica whose
	// etcd is slow would.
	delay time.Duration
}

// freeze makes the fake hold webhook calls until the returned func is
// called.
func (f *fakeFulfillment) freeze() (thaw func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := make(chan struct{})
	f.hold = h
	return sync.OnceFunc(func() {
		f.mu.Lock()
		f.hold = nil
		f.mu.Unlock()
		close(h)
	})
}

func startFake(t *testing.T, name string) *fakeFulfillment {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &fakeFulfillment{addr: ln.Addr().String(), name: name, srv: grpc.NewServer(), health: health.NewServer()}
	backorderv1.RegisterFulfillmentServiceServer(f.srv, f)
	healthpb.RegisterHealthServer(f.srv, f.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.srv.Serve(ln) // returns when stopped
	}()
	t.Cleanup(func() {
		f.srv.Stop()
		<-done
	})
	return f
}

// stop takes the fake down, as a crashed fulfillment service.
func (f *fakeFulfillment) stop() { f.srv.Stop() }

// reset forgets the calls and sets the error the next calls return.
func (f *fakeFulfillment) reset(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.err = nil, err
}

func (f *fakeFulfillment) record(ctx context.Context, method string, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method: method, req: proto.Clone(req), md: md.Copy()})
	return f.err
}

func (f *fakeFulfillment) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeFulfillment) HandleOrderWebhook(ctx context.Context, req *backorderv1.HandleOrderWebhookRequest) (*backorderv1.HandleOrderWebhookResponse, error) {
	if err := f.record(ctx, "HandleOrderWebhook", req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	hold, delay := f.hold, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &backorderv1.HandleOrderWebhookResponse{Recorded: true}, nil
}

func (f *fakeFulfillment) GetOrder(ctx context.Context, req *backorderv1.GetOrderRequest) (*backorderv1.GetOrderResponse, error) {
	if err := f.record(ctx, "GetOrder", req); err != nil {
		return nil, err
	}
	return &backorderv1.GetOrderResponse{Order: &backorderv1.Order{
		StoreHash: req.GetStoreHash(),
		OrderId:   req.GetOrderId(),
		State:     backorderv1.OrderState_ORDER_STATE_SUBMITTED,
	}}, nil
}

func (f *fakeFulfillment) ProcessOrder(ctx context.Context, req *backorderv1.ProcessOrderRequest) (*backorderv1.ProcessOrderResponse, error) {
	if err := f.record(ctx, "ProcessOrder", req); err != nil {
		return nil, err
	}
	return &backorderv1.ProcessOrderResponse{}, nil
}

func (f *fakeFulfillment) ListOrders(ctx context.Context, req *backorderv1.ListOrdersRequest) (*backorderv1.ListOrdersResponse, error) {
	if err := f.record(ctx, "ListOrders", req); err != nil {
		return nil, err
	}
	return &backorderv1.ListOrdersResponse{}, nil
}

func (f *fakeFulfillment) GetServiceStatus(context.Context, *backorderv1.GetServiceStatusRequest) (*backorderv1.GetServiceStatusResponse, error) {
	return &backorderv1.GetServiceStatusResponse{
		SupplierMode: backorderv1.SupplierMode_SUPPLIER_MODE_VALIDATE,
		Replica:      f.name,
		StoreHash:    "abc123",
	}, nil
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
