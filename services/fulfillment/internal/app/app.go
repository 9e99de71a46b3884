// Package app wires the fulfillment service from its configuration: etcd,
// the BigCommerce and TropShip clients, the use case, and the gRPC server
// with health and reflection. It owns start-up and graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/backorder/backorder/services/fulfillment/internal/bigcommerce"
	"github.com/backorder/backorder/services/fulfillment/internal/config"
	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/grpcserver"
	"github.com/backorder/backorder/services/fulfillment/internal/metrics"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/fulfillment/internal/tropship"
	"github.com/backorder/backorder/services/internal/debugserver"
)

// LogLevel turns LOG_LEVEL into a slog level.
func LogLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
}

// Run serves until ctx ends, then shuts down gracefully: the workers stop
// taking work and the gRPC server drains, while runs committed to a
// supplier call finish it; then the etcd session (releasing its locks), the
// client and the embedded etcd close. ready, when not nil, receives
// the listening address once the service accepts calls.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- net.Addr) error {
	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %q: %w", cfg.ListenAddr, err)
	}
	defer lis.Close()
	if _, err := debugserver.Start(ctx, cfg.DebugAddr, log); err != nil {
		return err
	}

	endpoints, embedded := cfg.EtcdEndpoints, false
	if len(endpoints) == 0 {
		e, err := etcdstore.StartEmbedded(ctx, cfg.EtcdDataDir, cfg.EtcdEmbedURL)
		if err != nil {
			return err
		}
		defer e.Close()
		endpoints, embedded = []string{e.Endpoint}, true
		log.Info("embedded single-member etcd started (set ETCD_ENDPOINTS to use a cluster)",
			"data_dir", cfg.EtcdDataDir, "endpoint", e.Endpoint)
	}
	m := metrics.New()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: cfg.EtcdDialTimeout, Logger: zap.NewNop(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(m.EtcdInterceptor())},
	})
	if err != nil {
		return fmt.Errorf("ETCD_ENDPOINTS %v: %w", endpoints, err)
	}
	defer cli.Close()
	// The client connects lazily: ask once, so that a wrong endpoint stops
	// the service now with a message naming the setting.
	pctx, cancel := context.WithTimeout(ctx, cfg.EtcdDialTimeout)
	_, err = cli.Get(pctx, cfg.EtcdPrefix+"ping")
	cancel()
	if err != nil {
		return fmt.Errorf("ETCD_ENDPOINTS %v: etcd unreachable within ETCD_DIAL_TIMEOUT (%s): %w",
			endpoints, cfg.EtcdDialTimeout, err)
	}
	store, err := etcdstore.New(ctx, cli, etcdstore.Options{Prefix: cfg.EtcdPrefix, LockTTL: cfg.LockTTL})
	if err != nil {
		return err
	}
	defer store.Close()

	bc, err := bigcommerce.New(bigcommerce.Config{
		BaseURL: cfg.BigCommerceURL, StoreHash: cfg.BigCommerceStore,
		AccessToken: cfg.BigCommerceToken, Timeout: cfg.BigCommerceTimeout,
		QuotaBurst: cfg.BigCommerceQuotaBurst, PlainOrders: !cfg.BigCommerceSideLoad,
		HTTPClient: pooledClient(cfg.Workers, 0),
	})
	if err != nil {
		return fmt.Errorf("BigCommerce client: %w", err)
	}
	ts, err := tropship.New(tropship.Config{
		BaseURL: cfg.TropShipURL, TokenPath: cfg.TropShipTokenPath, OrdersPath: cfg.TropShipOrdersPath,
		ClientID: cfg.TropShipClientID, ClientSecret: cfg.TropShipClientSecret, Timeout: cfg.TropShipTimeout,
		HTTPClient: pooledClient(cfg.Workers, supplierIdleTimeout),
	})
	if err != nil {
		return fmt.Errorf("TropShip client: %w", err)
	}
	announceMode(log, cfg)
	m.BigCommerce(func() metrics.BigCommerceStats {
		s := bc.Stats()
		return metrics.BigCommerceStats{Requests: s.Requests, RateLimited: s.RateLimited, PacedWaits: s.PacedWaits, SpreadWaits: s.SpreadWaits,
			SideLoaded: s.SideLoaded, ReadApart: s.ReadApart}
	})

	svc := fulfill.New(fulfill.Config{
		Role:  cfg.Role,
		Store: cfg.BigCommerceStore, Mode: cfg.TropShipMode, ValidateFirst: cfg.TropShipValidateFirst,
		Breaker:   cfg.TropShipBreaker,
		WriteBack: cfg.BigCommerceWriteBack,
		Policy:    cfg.Policy, Retry: cfg.Retry, Workers: cfg.Workers,
		SweepInterval: cfg.SweepInterval, SweepGrace: cfg.SweepGrace,
		SupplierTimeout: cfg.TropShipTimeout,
		OrdersSweep:     cfg.OrdersSweep, Lister: bc,
	}, store, m.Storefront(bc), m.Supplier(ts), log)
	if _, on := svc.BreakerState(); on {
		m.SupplierBreaker(func() fulfill.BreakerState { st, _ := svc.BreakerState(); return st })
	}
	if cfg.Role != fulfill.RoleIntake {
		m.QueueShare(svc.QueueShare)
	}
	counts := store.OrderCounts(cfg.BigCommerceStore, log)
	defer counts.Close()
	m.Store(counts.Get, svc.OrdersSweepStatus)
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		addr, err := debugserver.Serve(ctx, metrics.EnvAddr, cfg.MetricsAddr, mux, log)
		if err != nil {
			return err
		}
		log.Info("metrics listener started", "addr", addr.String(), "path", "/metrics")
	}

	host, _ := os.Hostname()
	// WaitForHandlers: even a forced Stop waits for handlers to return, so
	// that a ProcessOrder whose live call is in flight stores its answer
	// before the etcd session (and its locks) is closed below.
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(m.Interceptor(), logCalls(log)), grpc.WaitForHandlers(true),
		grpc.NumStreamWorkers(streamWorkers))
	grpcserver.New(svc, grpcserver.Info{
		Replica: fmt.Sprintf("%s/%d", host, os.Getpid()), EmbeddedEtcd: embedded,
		StoreHash: cfg.BigCommerceStore, StartedAt: time.Now(),
		Quota: func() grpcserver.Quota {
			q := bc.Quota("")
			return grpcserver.Quota{Left: q.Left, ResetsAt: q.ResetsAt, HeldUntil: q.HeldUntil, Spacing: q.Spacing, Burst: q.Burst}
		},
		Queued: func(ctx context.Context) (int64, error) {
			_, queued, err := counts.Get(ctx)
			return queued, err
		},
	}).Register(srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	setHealth := healthSetter(hs)
	setHealth(true)

	g, gctx := errgroup.WithContext(ctx)
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	g.Go(func() error { return svc.Run(workCtx) })
	g.Go(func() error {
		etcdWatch{
			ping: etcdPing(cli, cfg.EtcdPrefix),
			set:  setHealth, every: etcdPingEvery, timeout: etcdPingTimeout, failures: 2, log: log,
		}.run(gctx)
		return nil
	})
	g.Go(func() error {
		log.Info("fulfillment listening", "addr", lis.Addr().String(), "supplier_mode", cfg.TropShipMode.String())
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	if ready != nil {
		ready <- lis.Addr()
	}
	g.Go(func() error {
		<-gctx.Done()
		// Workers take no new work from now on, and every run not yet
		// committed to a supplier call stops (operator calls' included);
		// runs already committed finish it (svc.Run returns when they
		// have, and WaitForHandlers waits for the calls').
		stopWork()
		svc.Stop()
		hs.Shutdown()
		stopAll(srv, cfg.ShutdownTimeout)
		return nil
	})
	err = g.Wait()
	log.Info("fulfillment stopped")
	return err
}

// supplierIdleTimeout is how long an idle connection to TropShip is kept.
// A server closes idle connections after its own keep-alive timeout (5 s
// in Node.js and Apache): a live order written on a connection the server
// is closing at that moment fails after it was sent, which is an ambiguous
// outcome (a lookup or a person) for an order the supplier never saw.
// Closing ours first avoids the race; under load connections are busy and
// still reused.
const supplierIdleTimeout = 4 * time.Second

// pooledClient keeps up to one idle connection per worker to each host.
// net/http's default keeps two, so under load every concurrent call beyond
// two opened a new TCP connection and closed it afterwards. A non-zero
// idle closes idle connections after that long (net/http's default is
// 90 s).
func pooledClient(workers int, idle time.Duration) *http.Client {
	t := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	if d, ok := http.DefaultTransport.(*http.Transport); ok {
		t = d.Clone()
	}
	t.MaxIdleConnsPerHost = max(workers, 2)
	t.MaxIdleConns = max(t.MaxIdleConns, 2*t.MaxIdleConnsPerHost)
	if idle > 0 {
		t.IdleConnTimeout = idle
	}
	return &http.Client{Transport: t}
}

// stopAll drains in-flight calls, then forces the rest after timeout.
func stopAll(srv *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		srv.Stop()
	}
}

// announceMode says loudly whether orders are created and charged.
func announceMode(log *slog.Logger, cfg config.Config) {
	switch cfg.Role {
	case fulfill.RoleIntake:
		log.Info("ROLE=intake: events are recorded and queued for the replicas with ROLE=process; no order is processed here unless an operator's ProcessOrder asks")
	case fulfill.RoleProcess:
		log.Info("ROLE=process: events are recorded and processed, and the queue is followed for the intake replicas' events, divided with the other ROLE=process replicas")
	}
	if cfg.TropShipMode == order.ModeLive {
		log.Warn("TROPSHIP_MODE=live: orders are CREATED at TropShip and CHARGED to the account's card",
			"tropship", cfg.TropShipURL)
		return
	}
	log.Warn("TROPSHIP_MODE=validate: orders are only validated (validate_only=true); nothing is created or charged. Set TROPSHIP_MODE=live to submit.",
		"tropship", cfg.TropShipURL)
}

// logCalls logs each call once, with its code and duration.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		lvl := slog.LevelDebug
		if err != nil {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "rpc", "method", info.FullMethod, "duration", time.Since(start), "err", err)
		return resp, err
	}
}

var _ fulfill.Store = (*etcdstore.Store)(nil)

// etcd is read every etcdPingEvery for the health status; two reads in a
// row that fail (or take etcdPingTimeout) make the service NOT_SERVING.
const (
	etcdPingEvery   = 5 * time.Second
	etcdPingTimeout = 3 * time.Second
)

// streamWorkers is how many goroutines of the gRPC server are kept to run
// calls. A call that finds them all busy gets a goroutine of its own, as
// without the pool. Reused goroutines keep the stacks they grew: a fresh
// goroutine per webhook call grew its stack through the interceptors and
// the etcd client every time, 8 % of this process's CPU in a load run.
const streamWorkers = 64
