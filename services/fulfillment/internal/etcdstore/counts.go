package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Counts gives one store's order counts (records in each state, queued
// orders). Counting with etcd's count-only ranges (CountOrders) walks every
// key counted while holding the index lock that etcd's writes need: with a
// million records a count takes 65-80 ms on a 2-vCPU machine, and every
// write waits behind it. Readiness probes (the gateway's /readyz asks
// GetServiceStatus) and metric scrapes would make that a stall every few
// seconds. So once a count finds more than followAbove keys, Counts stops
// counting and follows the state index and the queue with etcd watches
// instead: a read then costs one single-key etcd read, whatever the number
// of records. Watching is not free either (every state change is sent to
// every replica: about 0.1 ms of CPU per order and replica, measured), so
// a store with fewer records counts directly, which holds etcd's writes
// for about a millisecond at most.
//
// Reads are consistent: when following, Get reads etcd's current revision
// and answers once the watches have delivered every change up to it
// (asking etcd for a progress notification when nothing changed since), so
// a count read after a write includes it. Until the watches are in step
// (at the switch, after a compaction cut a lagging watch off, or when
// progress does not come within progressWait), Get counts directly.
type Counts struct {
	s     *Store
	store string
	log   *slog.Logger
	// followAbove is the count past which the counts are followed, and
	// progressWait how long a read waits for the watches (tests change
	// them).
	followAbove  int64
	progressWait time.Duration

	stop context.CancelFunc
	done chan struct{} // closed when the follower has stopped

	mu        sync.Mutex
	closed    bool
	following bool            // the follower runs (once started, until Close)
	stalls    int             // reads in a row the watches did not catch up for
	watchCtx  context.Context // the watches' stream, for RequestProgress; nil: not in step
	rewatch   func()          // ends the watches, for a new count and new watches
	byState   map[order.State]int64
	queued    int64
	seen      []int64       // per watch: the revision it has delivered up to
	changed   chan struct{} // closed when a seen revision moves; nil: nobody waits
}

// followAbove is the number of keys (records and queue entries) past which
// the counts are followed, not counted: a count of 20 000 keys holds
// etcd's writes for 0.5 to 1.5 ms.
const followAbove = 20_000

// progressWait bounds how long Get waits for the watches to catch up with
// etcd's revision before counting directly (less when the caller's
// deadline is nearer: half of what is left, so the count has time).
const progressWait = 500 * time.Millisecond

// stallsToRewatch is how many reads in a row that the watches did not
// catch up in time make the follower count and watch again: a watch on a
// member that is cut off from the others gets no error, only silence.
const stallsToRewatch = 3

// progressAgain is how often Get asks again while it waits.
const progressAgain = 200 * time.Millisecond

// testHookAfterCount, when set, runs between the follower's count and its
// watches; testHookApply before each message of a watch is applied.
var (
	testHookAfterCount func()
	testHookApply      atomic.Pointer[func()]
)

// countedStates are the states whose index is counted.
func countedStates() []order.State {
	var states []order.State
	for st := order.Received; st <= order.Validated; st++ {
		states = append(states, st)
	}
	return states
}

// OrderCounts returns store's counts; Close stops following them.
func (s *Store) OrderCounts(store string, log *slog.Logger) *Counts {
	return &Counts{s: s, store: store, log: log, followAbove: followAbove, progressWait: progressWait, done: make(chan struct{})}
}

// Close stops the follower, if it runs; none starts after.
func (c *Counts) Close() {
	c.mu.Lock()
	c.closed = true
	following := c.following
	if following {
		c.stop()
	}
	c.mu.Unlock()
	if following {
		<-c.done
	}
}

// Get returns the number of records in each state and of queued orders,
// including every change made before the call. When followed, the state
// counts and the queued count are each exact at a revision at or after
// the call's start, not necessarily the same one: a save that moves an
// order's state and takes its queue entry off may show in one and not yet
// in the other.
func (c *Counts) Get(ctx context.Context) (byState map[order.State]int64, queued int64, err error) {
	c.mu.Lock()
	following := c.following
	c.mu.Unlock()
	if !following {
		return c.count(ctx)
	}
	// A single-key read answers with the current revision without walking
	// anything.
	r, err := c.s.cli.Get(ctx, c.s.stateRoot(), clientv3.WithCountOnly())
	if err != nil {
		return nil, 0, fmt.Errorf("count the orders of %s: %w", c.store, unavailable(err))
	}
	rev := r.Header.Revision
	wait := c.progressWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)/2)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var ask <-chan time.Time // again and again: a request may reach the stream before its watches
	for {
		c.mu.Lock()
		wctx := c.watchCtx
		if wctx != nil && c.upTo() >= rev {
			c.stalls = 0
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
			c.requestProgress(ctx, wctx)
			t := time.NewTicker(progressAgain)
			defer t.Stop()
			ask = t.C
		}
		select {
		case <-ask:
			c.requestProgress(ctx, wctx)
		case <-changed:
		case <-timeout.C:
			c.mu.Lock()
			if c.stalls++; c.stalls >= stallsToRewatch && c.watchCtx == wctx {
				c.stalls = 0
				c.rewatch()
				c.watchCtx, c.rewatch = nil, nil
			}
			c.mu.Unlock()
			return c.s.CountOrders(ctx, c.store)
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("count the orders of %s: %w", c.store, unavailable(ctx.Err()))
		}
	}
}

// requestProgress asks for a progress notification on the watches' stream
// (wctx's), for as long as ctx lasts: the request waits while the stream
// reconnects.
func (c *Counts) requestProgress(ctx, wctx context.Context) {
	if wctx.Err() != nil {
		return // the watches ended: a request would open a stream of its own
	}
	pctx, cancel := context.WithCancel(wctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	_ = c.s.cli.RequestProgress(pctx)
}

// count counts directly, and starts following the counts once they are
// past followAbove, from this count.
func (c *Counts) count(ctx context.Context) (map[order.State]int64, int64, error) {
	byState, queued, rev, err := c.s.countAt(ctx, c.store)
	if err != nil {
		return nil, 0, err
	}
	total := queued
	for _, n := range byState {
		total += n
	}
	if total > c.followAbove {
		c.mu.Lock()
		if !c.following && !c.closed {
			c.following = true
			var fctx context.Context
			fctx, c.stop = context.WithCancel(context.Background())
			go c.run(fctx, &counted{maps.Clone(byState), queued, rev})
			c.log.Info("order counts: past the size where counting holds etcd's writes up; following them with etcd watches from now on",
				"store", c.store, "keys", total, "follow_above", c.followAbove)
		}
		c.mu.Unlock()
	}
	return byState, queued, nil
}

// counted is a count of the store at revision rev.
type counted struct {
	byState map[order.State]int64
	queued  int64
	rev     int64
}

// upTo is the revision up to which every watch has delivered its changes.
func (c *Counts) upTo() int64 {
	rev := c.seen[0]
	for _, r := range c.seen[1:] {
		rev = min(rev, r)
	}
	return rev
}

// run follows the counts from first, and after a failure from a new
// count, until ctx ends.
func (c *Counts) run(ctx context.Context, first *counted) {
	defer close(c.done)
	const firstWait = 100 * time.Millisecond
	wait := firstWait
	for {
		started := time.Now()
		err := c.follow(ctx, first)
		first = nil
		if time.Since(started) > time.Minute {
			wait = firstWait // it followed for a while: a new failure
		}
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

// follow applies each change the watches deliver to the count from (a new
// count when nil), until a watch fails.
func (c *Counts) follow(ctx context.Context, from *counted) error {
	// The watches get a gRPC stream of their own (clientv3 shares one
	// among contexts with the same metadata), so that a progress request
	// waits for them only, not for a lock's waiters.
	// WithRequireLeader: a member cut off from the others cancels the
	// watches, which are then opened again (on another member).
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(metadata.AppendToOutgoingContext(ctx, "backorder-watch", "counts")))
	defer cancel()
	if from == nil {
		byState, queued, rev, err := c.s.countAt(ctx, c.store)
		if err != nil {
			return err
		}
		from = &counted{byState, queued, rev}
	}
	byState, queued, rev := from.byState, from.queued, from.rev
	if testHookAfterCount != nil {
		testHookAfterCount()
	}
	// Two watches: every store's state index (one watch, so that the
	// delete and the put of a state change come in one message; records of
	// other stores sharing the etcd are skipped), and this store's queue.
	prefixes := []string{c.s.stateRoot(), c.s.queuePrefix() + c.store + "/"}

	c.mu.Lock()
	c.byState, c.queued = byState, queued
	c.seen = []int64{rev, rev}
	c.watchCtx, c.rewatch = ctx, cancel
	c.mu.Unlock()

	// Both watches are opened with ctx, so they share one gRPC stream and
	// one progress request reaches them both.
	errs := make(chan error, len(prefixes))
	for i, p := range prefixes {
		wch := c.s.cli.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		go func() { errs <- c.apply(wch, i) }()
	}
	err := <-errs
	cut := ctx.Err() != nil // by rewatch (or Close), not by etcd
	// Out of step from here: no Get may use the watches' context once it
	// is cancelled.
	c.mu.Lock()
	c.watchCtx, c.rewatch = nil, nil
	c.wake()
	c.mu.Unlock()
	cancel()
	<-errs
	if cut && errors.Is(err, errWatchClosed) {
		err = errors.New("no answer from the watches' member: watching again")
	}
	return err
}

var errWatchClosed = errors.New("watch closed")

// apply counts the changes of watch i: the state index (0) or the queue.
func (c *Counts) apply(wch clientv3.WatchChan, i int) error {
	root := c.s.stateRoot()
	for resp := range wch {
		if hook := testHookApply.Load(); hook != nil {
			(*hook)()
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		c.mu.Lock()
		seen := int64(0)
		if resp.IsProgressNotify() {
			seen = resp.Header.Revision // every change up to it is delivered
		}
		for _, ev := range resp.Events {
			seen = max(seen, ev.Kv.ModRevision)
			delta := int64(0)
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				delta = -1
			case ev.IsCreate():
				delta = 1 // a put over an existing key changes no count
			default:
				continue
			}
			if i > 0 {
				c.queued += delta
				continue
			}
			// <STATE>/<store>/<id>
			parts := strings.SplitN(strings.TrimPrefix(string(ev.Kv.Key), root), "/", 3)
			if len(parts) != 3 || parts[1] != c.store {
				continue
			}
			if st, ok := order.ParseState(parts[0]); ok {
				if _, counted := c.byState[st]; counted {
					c.byState[st] += delta
				}
			}
		}
		if seen > c.seen[i] {
			c.seen[i] = seen
			c.wake()
		}
		c.mu.Unlock()
	}
	return errWatchClosed
}

// wake lets Get's waiters look again; c.mu is held.
func (c *Counts) wake() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}
