package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// shareTimeout bounds ShareQueue's registration.
const shareTimeout = 10 * time.Second

func (s *Store) processorsPrefix(store string) string {
	return s.prefix + "processors/" + store + "/"
}

// ShareQueue implements fulfill.Store. The replica is registered by a key
// of its own, processors/<store>/<name>, whose value is its role, on its
// lock session's lease: the key goes when the replica stops (deleted) or
// dies (the lease lapses after LOCK_TTL), and with it the replica's share.
// A renewed lock session ends the call, and the next registers again under
// the new lease's name.
func (s *Store) ShareQueue(ctx context.Context, store, role string, set func(self string, peers []fulfill.Peer)) error {
	// Registering is bounded, as a sweep's read is: with etcd unreachable
	// the client would wait for ever, and the caller never say so.
	rctx, cancel := context.WithTimeout(ctx, shareTimeout)
	defer cancel()
	sess, err := s.currentSession(rctx)
	if err != nil {
		return fmt.Errorf("share the queue: %w", err)
	}
	prefix := s.processorsPrefix(store)
	self := fmt.Sprintf("%016x", int64(sess.Lease()))
	key := prefix + self
	if _, err := s.cli.Put(rctx, key, role, clientv3.WithLease(sess.Lease())); err != nil {
		return fmt.Errorf("share the queue: register %s: %w", key, unavailable(err))
	}
	defer func() {
		// Leave at once, so that the others take this replica's share
		// now, not when its lease lapses.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = s.cli.Delete(dctx, key)
	}()
	resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("share the queue: %w", unavailable(err))
	}
	peers := map[string]string{} // name: role
	for _, kv := range resp.Kvs {
		peers[strings.TrimPrefix(string(kv.Key), prefix)] = string(kv.Value)
	}
	if _, ok := peers[self]; !ok {
		// Gone already (the lease lapsed since the put): the watch,
		// which starts after this read, would never say so.
		return fmt.Errorf("share the queue: %w: %s was removed", fulfill.ErrUnavailable, key)
	}
	report := func() {
		list := make([]fulfill.Peer, 0, len(peers))
		for name, role := range peers {
			list = append(list, fulfill.Peer{Name: name, Role: role})
		}
		slices.SortFunc(list, func(a, b fulfill.Peer) int { return strings.Compare(a.Name, b.Name) })
		set(self, list)
	}
	report()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	w := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return fmt.Errorf("share the queue: %w", fulfill.ErrLockLost)
		case wr, ok := <-w:
			if ctx.Err() != nil {
				return nil
			}
			if !ok {
				return fmt.Errorf("share the queue: %w: the watch ended", fulfill.ErrUnavailable)
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("share the queue: %w", unavailable(err))
			}
			for _, ev := range wr.Events {
				name := strings.TrimPrefix(string(ev.Kv.Key), prefix)
				if ev.Type == clientv3.EventTypeDelete {
					delete(peers, name)
				} else {
					peers[name] = string(ev.Kv.Value)
				}
			}
			if _, ok := peers[self]; !ok {
				// Our key went (deleted by hand, or the lease lapsed while
				// the session has not noticed yet): register again.
				return fmt.Errorf("share the queue: %w: %s was removed", fulfill.ErrUnavailable, key)
			}
			report()
		}
	}
}
