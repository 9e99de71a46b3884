package etcdstore

import (
	"context"
	"sync"
)

// localLocks serialises goroutines of this process per order. It is needed
// because a concurrency.Mutex is keyed by its session's lease: two Mutexes
// of one session on one prefix share one key, so the etcd mutex alone does
// not exclude goroutines of the same process from each other.
type localLocks struct {
	mu sync.Mutex
	m  map[string]*localLock
}

type localLock struct {
	ch   chan struct{} // holds one token while the order is locked
	refs int
}

// lock waits for the order's local lock or for ctx to end. With noWait it
// returns ok=false at once instead of waiting.
func (l *localLocks) lock(ctx context.Context, key string, noWait bool) (unlock func(), ok bool, err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*localLock{}
	}
	e := l.m[key]
	if e == nil {
		e = &localLock{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	if noWait {
		select {
		case e.ch <- struct{}{}:
			return func() { <-e.ch; release() }, true, nil
		default:
			release()
			return nil, false, nil
		}
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, true, nil
	case <-ctx.Done():
		release()
		return nil, false, ctx.Err()
	}
}
