package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// Keys of a store's Orders API sweep: its mutex prefix and its progress.
func (s *Store) sweepLockKey(store string) string  { return s.prefix + "sweeps/" + store + "/lock/" }
func (s *Store) sweepStateKey(store string) string { return s.prefix + "sweeps/" + store + "/state" }

// BeginSweep implements fulfill.Store with a concurrency.Mutex on the
// process's lock session, taken without waiting.
func (s *Store) BeginSweep(ctx context.Context, store string) (fulfill.Sweep, error) {
	m, _, unlockLocal, err := s.acquire(ctx, s.sweepLockKey(store), "the orders sweep of "+store, true)
	if err != nil {
		return nil, err
	}
	w := &sweep{s: s, store: store, m: m, unlockLocal: unlockLocal}
	if w.state, err = s.SweepState(ctx, store); err != nil {
		w.Release(ctx)
		return nil, err
	}
	return w, nil
}

// SweepState implements fulfill.Store. A damaged record reads as never
// swept, so that it cannot stop the sweep for good: the next sweep sets
// the cursor anew.
func (s *Store) SweepState(ctx context.Context, store string) (fulfill.SweepState, error) {
	var st fulfill.SweepState
	resp, err := s.cli.Get(ctx, s.sweepStateKey(store))
	if err != nil {
		return st, fmt.Errorf("read the orders sweep of %s: %w", store, unavailable(err))
	}
	if len(resp.Kvs) > 0 && json.Unmarshal(resp.Kvs[0].Value, &st) != nil {
		st = fulfill.SweepState{}
	}
	return st, nil
}

// sweep is a claimed Orders API sweep.
type sweep struct {
	s           *Store
	store       string
	m           *concurrency.Mutex
	unlockLocal func()
	state       fulfill.SweepState
}

func (w *sweep) State() fulfill.SweepState { return w.state }

func (w *sweep) Finish(ctx context.Context, st fulfill.SweepState) error {
	defer w.unlockLocal()
	val, err := json.Marshal(st)
	if err != nil {
		return err
	}
	resp, err := w.s.cli.Txn(ctx).If(w.m.IsOwner()).Then(
		clientv3.OpPut(w.s.sweepStateKey(w.store), string(val)),
		clientv3.OpDelete(w.m.Key()),
	).Commit()
	if err != nil {
		return fmt.Errorf("store the orders sweep of %s: %w", w.store, unavailable(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("orders sweep of %s: %w", w.store, fulfill.ErrFenced)
	}
	return nil
}

func (w *sweep) Release(ctx context.Context) {
	defer w.unlockLocal()
	_ = w.m.Unlock(ctx)
}
