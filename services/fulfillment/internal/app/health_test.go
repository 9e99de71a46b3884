package app

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// The service says NOT_SERVING while etcd cannot be read, and SERVING again
// once it can: the gateway routes deliveries by it.
func TestHealthFollowsEtcd(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	cli := c.Client()
	var mu sync.Mutex
	var states []bool
	changed := make(chan struct{}, 10)
	w := etcdWatch{
		ping: func(ctx context.Context) error { _, err := cli.Get(ctx, "/t/ping"); return err },
		set: func(s bool) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
			changed <- struct{}{}
		},
		every: 20 * time.Millisecond, timeout: 500 * time.Millisecond, failures: 2,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(want bool) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(60 * time.Second):
			t.Fatalf("health never became serving=%v", want)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := states[len(states)-1]; got != want {
			t.Fatalf("health changes %v, want the last to be serving=%v", states, want)
		}
	}
	c.Stop(0)
	wait(false)
	c.Restart(0)
	wait(true)
	mu.Lock()
	defer mu.Unlock()
	if len(states) != 2 {
		t.Fatalf("health changes %v, want exactly not serving, then serving", states)
	}
}
