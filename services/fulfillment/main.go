// Command fulfillment is the gRPC service that records BigCommerce order
// events in etcd and sends each backorder to TropShip exactly once.
//
// main only wires: configuration, etcd (a cluster, or an embedded
// single-member one when ETCD_ENDPOINTS is empty), the clients, the use case
// and the gRPC server. See the README for every setting.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/backorder/backorder/services/fulfillment/internal/app"
	"github.com/backorder/backorder/services/fulfillment/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fulfillment:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: app.LogLevel(cfg.LogLevel)}))
	return app.Run(ctx, cfg, log, nil)
}
