// Command webhook-gateway receives BigCommerce order webhooks over HTTPS,
// verifies them, and hands them to the fulfillment service over gRPC. It also
// serves the operator API (the same RPCs as JSON over HTTP, behind
// ADMIN_TOKEN), /healthz and /readyz.
//
// Configuration is by environment variable; see internal/config and the
// README. main only wires: everything it builds lives in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/backorder/backorder/services/internal/debugserver"
	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
	"github.com/backorder/backorder/services/webhook-gateway/internal/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var level slog.LevelVar
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: &level}))
	err := run(ctx, os.Getenv, logger, &level)
	stop()
	if err != nil {
		logger.Error("webhook gateway failed", "error", err)
		os.Exit(1)
	}
}

// run loads and validates the configuration, sets level (when not nil) to
// LOG_LEVEL, opens the listener, builds the gateway and serves until ctx is
// done.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger, level *slog.LevelVar) (err error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if level != nil {
		level.Set(cfg.LogLevel)
	}
	// The listener comes first so that a taken port fails fast, and port 0
	// works: Serve logs the address actually bound.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", cfg.ListenAddr, config.EnvListenAddr, err)
	}
	if _, err := debugserver.Start(ctx, cfg.DebugAddr, logger); err != nil {
		return errors.Join(err, ln.Close())
	}
	srv, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	defer func() { err = errors.Join(err, srv.Close()) }()
	return srv.Serve(ctx, ln)
}
