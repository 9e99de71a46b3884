package main

import (
	"context"
	"net"
	"testing"
	"time"
)

// The README's first command: the demo builds and starts everything, sends
// one backorder's webhooks five times each in parallel, and fails unless the
// supplier's ledger holds exactly one order for it and its id is written
// back to BigCommerce. Here on free ports, stopping after its check.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	addr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	args := []string{
		"-gateway-addr", addr(), "-fulfillment-addr", addr(), "-bigcommerce-addr", addr(),
		"-tropship-addr", addr(), "-etcd-url", "http://" + addr(), "-metrics-addr", addr(), "-exit",
	}
	if err := runDemo(ctx, args); err != nil {
		t.Fatalf("demo %v: %v", args, err)
	}
}
