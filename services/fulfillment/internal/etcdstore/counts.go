package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Counts keeps one store's order counts (records in each state, queued
// orders) by watching the state index and the queue, so that reading them
// costs one small etcd read, whatever the number of records.
//
// Counting with etcd's count-only ranges (CountOrders) walks every key
// counted while holding the index lock that etcd's writes need: with a
// million records, a count takes about 65 ms on a 2-vCPU machine and every
// write waits behind it. Readiness probes (the gateway's /readyz asks
// GetServiceStatus) and metric scrapes would make that a stall every few
// seconds.
//
// Reads are consistent: Get reads etcd's current revision and answers once
// the watches have delivered every change up to it (asking etcd for a
// progress notification when nothing changed since), so a count read after
// a write includes it. Until the watches are in step (at start, after a
// compaction cut a lagging watch off, or when progress does not come within
// progressWait), Get counts directly, as CountOrders does.
type Counts struct {
	s     *Store
	store string
	log   *slog.Logger

	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	watchCtx context.Context // the watches' stream, for RequestProgress; nil: not in step
	byState  map[order.State]int64
	queued   int64
	seen     []int64       // per watch: the revision it has delivered up to
	changed  chan struct{} // closed when a seen revision moves; nil: nobody waits
}

// progressWait bounds how long Get waits for the watches to catch up with
// etcd's revision before counting directly.
const progressWait = 2 * time.Second

// progressAgain is how often Get asks again while it waits.
const progressAgain = 200 * time.Millisecond

// testHookAfterCount, when set, runs between the count and the watches.
var testHookAfterCount func()

// countedStates are the states whose index is counted.
func countedStates() []order.State {
	var states []order.State
	for st := order.Received; st <= order.Validated; st++ {
		states = append(states, st)
	}
	return states
}

// WatchCounts starts keeping store's counts until Close.
func (s *Store) WatchCounts(store string, log *slog.Logger) *Counts {
	ctx, stop := context.WithCancel(context.Background())
	c := &Counts{s: s, store: store, log: log, stop: stop, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

// Close stops the watches.
func (c *Counts) Close() {
	c.stop()
	<-c.done
}

// Get returns the number of records in each state and of queued orders, as
// of etcd's current revision.
func (c *Counts) Get(ctx context.Context) (byState map[order.State]int64, queued int64, err error) {
	// A single-key read answers with the current revision without walking
	// anything.
	r, err := c.s.cli.Get(ctx, c.s.prefix+"index/state/", clientv3.WithCountOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("count the orders of %s: %w", c.store, unavailable(err))
	}
	rev := r.Header.Revision
	timeout := time.NewTimer(progressWait)
	defer timeout.Stop()
	var ask <-chan time.Time // again and again: a request may reach the stream before its watches
	for {
		c.mu.Lock()
		wctx := c.watchCtx
		if wctx != nil && c.upTo() >= rev {
			byState = make(map[order.State]int64, len(c.byState))
			for st, n := range c.byState {
				byState[st] = n
			}
			queued = c.queued
			c.mu.Unlock()
			return byState, queued, nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		if wctx == nil {
			return c.s.CountOrders(ctx, c.store)
		}
		if ask == nil {
			// Answered once every watch of the stream has caught up, with
			// etcd's revision then: it moves quiet watches forward.
			_ = c.s.cli.RequestProgress(wctx)
			t := time.NewTicker(progressAgain)
			defer t.Stop()
			ask = t.C
		}
		select {
		case <-ask:
			_ = c.s.cli.RequestProgress(wctx)
		case <-changed:
		case <-timeout.C:
			return c.s.CountOrders(ctx, c.store)
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("count the orders of %s: %w", c.store, unavailable(ctx.Err()))
		}
	}
}

// upTo is the revision up to which every watch has delivered its changes.
func (c *Counts) upTo() int64 {
	rev := c.seen[0]
	for _, r := range c.seen[1:] {
		rev = min(rev, r)
	}
	return rev
}

func (c *Counts) run(ctx context.Context) {
	defer close(c.done)
	wait := 100 * time.Millisecond
	for {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("order counts: following etcd again", "store", c.store, "err", err, "retry_in", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// follow counts once, then applies each change the watches deliver, until
// a watch fails.
func (c *Counts) follow(ctx context.Context) error {
	// The watches get a gRPC stream of their own (clientv3 shares one
	// among contexts with the same metadata), so that a progress request
	// waits for them only, not for a lock's waiters.
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "backorder-watch", "counts"))
	defer cancel()
	byState, queued, rev, err := c.s.countAt(ctx, c.store)
	if err != nil {
		return err
	}
	if testHookAfterCount != nil {
		testHookAfterCount()
	}
	states := countedStates()
	prefixes := make([]string, 0, len(states)+1)
	for _, st := range states {
		prefixes = append(prefixes, c.s.statePrefix(st)+c.store+"/")
	}
	prefixes = append(prefixes, c.s.queuePrefix()+c.store+"/")

	c.mu.Lock()
	c.byState, c.queued = byState, queued
	c.seen = make([]int64, len(prefixes))
	for i := range c.seen {
		c.seen[i] = rev
	}
	c.watchCtx = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.watchCtx = nil
		c.wake()
		c.mu.Unlock()
	}()

	// Every watch is opened with ctx, so they share one gRPC stream and one
	// progress request reaches them all.
	errs := make(chan error, len(prefixes))
	for i, p := range prefixes {
		wch := c.s.cli.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		go func() { errs <- c.apply(wch, i, states) }()
	}
	err = <-errs
	cancel()
	for range len(prefixes) - 1 {
		<-errs
	}
	return err
}

// apply counts the changes of watch i: the state index of states[i], or
// the queue when i is past them.
func (c *Counts) apply(wch clientv3.WatchChan, i int, states []order.State) error {
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		c.mu.Lock()
		delta := int64(0)
		seen := int64(0)
		if resp.IsProgressNotify() {
			seen = resp.Header.Revision // every change up to it is delivered
		}
		for _, ev := range resp.Events {
			switch {
			case ev.Type == mvccpb.DELETE:
				delta--
			case ev.Kv.Version == 1:
				delta++ // created; a put over an existing key changes no count
			}
			seen = max(seen, ev.Kv.ModRevision)
		}
		if i < len(states) {
			c.byState[states[i]] += delta
		} else {
			c.queued += delta
		}
		if seen > c.seen[i] {
			c.seen[i] = seen
			c.wake()
		}
		c.mu.Unlock()
	}
	return errors.New("watch closed")
}

// wake lets Get's waiters look again; c.mu is held.
func (c *Counts) wake() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}
