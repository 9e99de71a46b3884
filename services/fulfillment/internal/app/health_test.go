package app

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// watch runs the service's etcd watch (its read, its health setter) against
// cli quickly, until the test ends; it returns the health server and a
// count of the reads that succeeded.
func watch(t *testing.T, cli *clientv3.Client) (*health.Server, *atomic.Int64) {
	t.Helper()
	hs := health.NewServer()
	set := healthSetter(hs)
	set(true)
	var ok atomic.Int64
	ping := etcdPing(cli, "/t/")
	w := etcdWatch{
		ping: func(ctx context.Context) error {
			err := ping(ctx)
			if err == nil {
				ok.Add(1)
			}
			return err
		},
		set: set, every: 20 * time.Millisecond, timeout: 500 * time.Millisecond, failures: 2,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return hs, &ok
}

// status is what the gateway's health checks read: the server's and the
// service's, which must agree.
func status(t *testing.T, hs *health.Server) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	var got []healthpb.HealthCheckResponse_ServingStatus
	for _, svc := range []string{"", backorderv1.FulfillmentService_ServiceDesc.ServiceName} {
		r, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.GetStatus())
	}
	if got[0] != got[1] {
		t.Fatalf("server %v and service %v disagree", got[0], got[1])
	}
	return got[0]
}

func waitStatus(t *testing.T, hs *health.Server, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for status(t, hs) != want {
		if time.Now().After(deadline) {
			t.Fatalf("health never became %v", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The service says NOT_SERVING while etcd cannot be read, so that the
// gateway sends deliveries elsewhere, and SERVING again once it can.
func TestHealthFollowsEtcd(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	hs, _ := watch(t, c.Client())
	c.Stop(0)
	waitStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
	c.Restart(0)
	waitStatus(t, hs, healthpb.HealthCheckResponse_SERVING)
}

// An etcd that lost quorum but still answers keeps the replica in service:
// deliveries seen before are still answered as duplicates from its data.
// Only when no member answers does it leave.
func TestHealthStaysWhileAMemberAnswersWithoutQuorum(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Endpoint(0)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	hs, ok := watch(t, cli)
	c.Stop(1)
	c.Stop(2) // member 0 alone: no quorum
	after := ok.Load()
	deadline := time.Now().Add(60 * time.Second)
	for ok.Load() < after+5 {
		if time.Now().After(deadline) {
			t.Fatal("member 0 stopped answering the watch's reads without quorum")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Serving (a read slower than the watch's timeout on a loaded machine
	// may flip it briefly; the next one sets it back).
	waitStatus(t, hs, healthpb.HealthCheckResponse_SERVING)
	c.Stop(0)
	waitStatus(t, hs, healthpb.HealthCheckResponse_NOT_SERVING)
}
