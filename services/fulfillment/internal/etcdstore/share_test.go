package etcdstore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/etcdstore"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// sharing is one replica's ShareQueue call, and what it was last told.
type sharing struct {
	mu    sync.Mutex
	self  string
	peers []string
	done  chan error
	stop  context.CancelFunc
}

func share(t *testing.T, s *etcdstore.Store, store string) *sharing {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sh := &sharing{done: make(chan error, 1), stop: cancel}
	go func() {
		sh.done <- s.ShareQueue(ctx, store, "process", func(self string, peers []fulfill.Peer) {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			sh.self, sh.peers = self, nil
			for _, p := range peers {
				if p.Role != "process" {
					panic("peer registered with role " + p.Role)
				}
				sh.peers = append(sh.peers, p.Name)
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-sh.done })
	return sh
}

func (sh *sharing) name() string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.self
}

// waitPeers waits until sh was told exactly want (its own name included).
func (sh *sharing) waitPeers(t *testing.T, want ...*sharing) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var names []string
		for _, w := range want {
			names = append(names, w.name())
		}
		slices.Sort(names)
		sh.mu.Lock()
		got := slices.Clone(sh.peers)
		sh.mu.Unlock()
		if !slices.Contains(names, "") && slices.Equal(got, names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peers %v, want %v", got, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Processing replicas of a store see each other come and go, and not the
// replicas of another store sharing the etcd.
func TestShareQueueSeesReplicasComeAndGo(t *testing.T) {
	ep := etcdtest.Start(t)
	a := share(t, newStore(t, etcdtest.Client(t, ep)), "abc")
	b := share(t, newStore(t, etcdtest.Client(t, ep)), "abc")
	other := share(t, newStore(t, etcdtest.Client(t, ep)), "xyz")
	a.waitPeers(t, a, b)
	b.waitPeers(t, a, b)
	other.waitPeers(t, other)
	if a.name() == b.name() {
		t.Fatalf("two replicas share the name %q", a.name())
	}

	// A replica that stops leaves at once (its key is deleted, not left to
	// lapse with its lease).
	b.stop()
	if err := <-b.done; err != nil {
		t.Fatalf("ShareQueue after its ctx ended: %v", err)
	}
	b.done <- nil // for the cleanup
	a.waitPeers(t, a)
}

// A replica whose registration is removed under it (its lease lapsed
// while it was paused) says so, so that its caller registers again, and
// the others see it gone meanwhile.
func TestShareQueueEndsWhenItsKeyGoes(t *testing.T) {
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	a := share(t, newStore(t, etcdtest.Client(t, ep)), "abc")
	b := share(t, newStore(t, etcdtest.Client(t, ep)), "abc")
	a.waitPeers(t, a, b)
	key := "/t/processors/abc/" + b.name()
	if r, err := cli.Delete(context.Background(), key); err != nil || r.Deleted != 1 {
		t.Fatalf("delete %s: %+v, %v", key, r, err)
	}
	select {
	case err := <-b.done:
		if !errors.Is(err, fulfill.ErrUnavailable) {
			t.Fatalf("ShareQueue whose key went: %v, want ErrUnavailable", err)
		}
		b.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("ShareQueue went on after its key was deleted")
	}
	a.waitPeers(t, a)
}

// A replica whose lock session ends (its lease revoked, as after a pause
// past LOCK_TTL) says so, and registers again under a new name.
func TestShareQueueEndsWithItsSession(t *testing.T) {
	ep := etcdtest.Start(t)
	cli := etcdtest.Client(t, ep)
	st := newStore(t, etcdtest.Client(t, ep))
	a := share(t, st, "abc")
	a.waitPeers(t, a)
	first := a.name()
	revokeAllLeases(t, cli)
	select {
	case err := <-a.done:
		if !errors.Is(err, fulfill.ErrLockLost) && !errors.Is(err, fulfill.ErrUnavailable) {
			t.Fatalf("ShareQueue after its lease was revoked: %v, want ErrLockLost or ErrUnavailable", err)
		}
		a.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("ShareQueue went on after its lease was revoked")
	}
	// As fulfill's caller does: try again until registered. The store may
	// hand out the old session until it notices the lease is gone.
	ctx, cancel := context.WithCancel(context.Background())
	retried := make(chan struct{})
	defer func() { cancel(); <-retried }()
	names := make(chan string, 100)
	go func() {
		defer close(retried)
		for ctx.Err() == nil {
			st.ShareQueue(ctx, "abc", "all", func(self string, _ []fulfill.Peer) {
				select {
				case names <- self:
				default:
				}
			})
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case name := <-names:
		if name == first {
			t.Fatalf("registered again under the revoked lease's name %q", first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not registered again after the session was renewed")
	}
}
