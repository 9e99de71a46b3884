package app

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// etcdWatch keeps the service's health in step with etcd, which every call
// that records or changes anything needs.
type etcdWatch struct {
	// ping reads etcd once. A serializable read: it fails when no member
	// answers. Without quorum a member still answers, and the replica stays
	// in service: a delivery seen before is then still answered as a
	// duplicate from the member's data, while a new one gets a 503.
	ping func(context.Context) error
	// set is told whether the service can do its work.
	set func(serving bool)
	// every is the time between reads; timeout bounds each read.
	every, timeout time.Duration
	// failures is how many failed reads in a row make the service
	// NOT_SERVING: one slow read under load must not turn it away.
	failures int
	log      *slog.Logger
}

// run pings etcd until ctx ends. Once failures reads in a row have failed,
// the service reports NOT_SERVING: the gateway's client-side health checking
// then sends deliveries to replicas that can record them, and /readyz says
// the replica is not ready. One read that succeeds makes it SERVING again.
// Both changes are logged.
func (w etcdWatch) run(ctx context.Context) {
	serving, failed := true, 0
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := w.ping(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failed = 0
			if !serving {
				serving = true
				w.set(true)
				w.log.Info("etcd reachable again: serving")
			}
		default:
			failed++
			if serving && failed >= w.failures {
				serving = false
				w.set(false)
				w.log.Error("etcd unreachable: health is NOT_SERVING until it answers again",
					"failed_reads", failed, "err", err)
			}
		}
	}
}

// etcdPing is the watch's read: serializable, so that it fails only when no
// member answers (see etcdWatch.ping).
func etcdPing(cli *clientv3.Client, prefix string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := cli.Get(ctx, prefix+"ping", clientv3.WithSerializable())
		return err
	}
}

// healthSetter sets the status of the server as a whole ("", which the
// gateway's client-side health checking asks) and of the service.
func healthSetter(hs *health.Server) func(serving bool) {
	return func(serving bool) {
		st := healthpb.HealthCheckResponse_SERVING
		if !serving {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(backorderv1.FulfillmentService_ServiceDesc.ServiceName, st)
	}
}
