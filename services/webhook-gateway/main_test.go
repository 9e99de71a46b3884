package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
)

func TestRunRejectsBadConfig(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}[k]
	}
	err := run(t.Context(), getenv, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "BIGCOMMERCE_CLIENT_SECRET") {
		t.Fatalf("run = %v, want a config error naming BIGCOMMERCE_CLIENT_SECRET", err)
	}
}

// TestRunServesAndStops runs the whole command on port 0: it must log the
// address it bound, serve /healthz, and return nil after ctx is cancelled.
func TestRunServesAndStops(t *testing.T) {
	env := map[string]string{
		"LISTEN_ADDR":               "127.0.0.1:0",
		"FULFILLMENT_ADDR":          "127.0.0.1:1", // never called by /healthz
		"BIGCOMMERCE_CLIENT_SECRET": "secret",
	}
	pr, pw := io.Pipe()
	logger := slog.New(slog.NewJSONHandler(pw, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, logger, nil)
		pw.Close()
	}()

	addr := make(chan string, 1)
	go func() {
		// Keep draining so the logger never blocks on the pipe.
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "webhook gateway listening" {
				addr <- line.Addr
			}
		}
	}()

	select {
	case a := <-addr:
		resp, err := http.Get("http://" + a + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz = %d", resp.StatusCode)
		}
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no listening address logged")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
}
