package fulfill

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// queueShare is how the replicas of a store that process orders (ROLE=all
// and ROLE=process; not intake) divide its queue. Each order has one owner
// among them, by rendezvous hashing of the order with each replica's name.
// Only its owner takes it when a sweep finds it due, or (ROLE=process)
// when its entry is written; without it, every replica would race for
// every due order's lock (a retry's time, the breaker's hold ending, a
// replica that died), and all but one would lose, with a write and a
// delete each. A replica that joins or leaves moves only its own share.
// An event's fresh entry is not divided: the replica that recorded it
// runs it. Nothing depends on the division for safety (the order's mutex
// does that), only for not racing: an order its owner did not take (the
// owner died, hung, or the set changed meanwhile) is taken by any
// replica's sweep that still finds it due a sweep interval and a half
// after its first sweep left it to its owner (takesDue).
type queueShare struct {
	self string
	// all are the names of the replicas that process orders, sorted, self
	// among them: they divide what sweeps find due. watchers are those
	// of them that follow the queue (ROLE=process): they divide the
	// entries written due at once (by intake replicas).
	all, watchers []string
}

func newQueueShare(self string, peers []Peer) *queueShare {
	q := &queueShare{self: self}
	for _, p := range peers {
		q.all = append(q.all, p.Name)
		if p.Role == RoleProcess.String() {
			q.watchers = append(q.watchers, p.Name)
		}
	}
	return q
}

// owner is the replica among names that takes k: the one whose name,
// hashed with k, gives the highest value.
func owner(k order.Key, names []string) string {
	var best string
	var bestSum uint64
	id := strconv.FormatUint(k.ID, 10)
	for _, p := range names {
		h := fnv.New64a()
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write([]byte(k.Store))
		h.Write([]byte{0})
		h.Write([]byte(id))
		if sum := mix64(h.Sum64()); best == "" || sum > bestSum {
			best, bestSum = p, sum
		}
	}
	return best
}

// mix64 is splitmix64's finalizer: FNV's last bytes move its high bits
// too little for names and ids that differ only at the end.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// takesDue reports whether this replica takes k, found due by a sweep,
// now. Alone or undivided, it takes everything; divided, it takes its own
// share, and another's only if first left to it at least one and a half
// sweep intervals before (passed: when each order was first left) — a
// replica's sweep timer is not in step with its owner's. A replica whose
// TropShip breaker is open takes nothing from a divided queue: the others
// take its share, rather than it holding them too.
func (s *Service) takesDue(k order.Key, now time.Time, passed map[order.Key]time.Time) bool {
	q := s.share.Load()
	switch {
	case q == nil || len(q.all) < 2:
		return true
	case s.holdingLive():
		return false
	case owner(k, q.all) == q.self:
		return true
	}
	first, ok := passed[k]
	return ok && now.Sub(first) >= s.cfg.SweepInterval*3/2
}

// takesWritten reports whether this replica (ROLE=process) takes k when
// the watch tells of its entry written due at once: its share among the
// replicas that watch. The others' it leaves to them, and to sweeps.
func (s *Service) takesWritten(k order.Key) bool {
	q := s.share.Load()
	switch {
	case q == nil || len(q.watchers) < 2 || !slices.Contains(q.watchers, q.self):
		return q == nil || len(q.all) < 2 || !s.holdingLive()
	case s.holdingLive():
		return false
	}
	return owner(k, q.watchers) == q.self
}

// holdingLive says whether this replica's TropShip breaker is open and
// holds live orders back now (a 429's wait is the account's, and does not
// count: see Breaker.OpenNow).
func (s *Service) holdingLive() bool {
	if s.breaker == nil || s.cfg.Mode != order.ModeLive {
		return false
	}
	return s.breaker.OpenNow()
}

// QueueShare reports how many replicas that process orders divide the
// store's queue, as this replica sees them (0: it shares nothing, not
// registered yet or its registration lost, or ROLE=intake, and takes
// every due order it hears of).
func (s *Service) QueueShare() int {
	if q := s.share.Load(); q != nil {
		return len(q.all)
	}
	return 0
}

// shareWait bounds how long Run's first sweep waits for the replica to
// know the others.
const shareWait = 5 * time.Second

// shareQueue keeps this replica registered among the store's replicas
// that process orders, and the division of the queue up to date, until
// ctx ends. While it cannot, the replica takes every due order it hears
// of, as if alone: more races for the orders' locks, nothing missed.
func (s *Service) shareQueue(ctx context.Context) {
	s.keepUp(ctx, "dividing the queue with the other replicas failed; this replica takes every due order meanwhile", func() error {
		err := s.store.ShareQueue(ctx, s.cfg.Store, s.cfg.Role.String(), func(self string, peers []Peer) {
			q := newQueueShare(self, peers)
			old := s.share.Swap(q)
			s.sharedOnce.Do(func() { close(s.shared) })
			if old != nil && slices.Equal(old.all, q.all) {
				return
			}
			s.log.InfoContext(ctx, "replicas dividing the queue", "self", self, "replicas", q.all)
			if old != nil && slices.ContainsFunc(old.all, func(n string) bool { return !slices.Contains(q.all, n) }) {
				// A replica left: its share is someone else's now.
				select {
				case s.sweepNow <- struct{}{}:
				default:
				}
			}
		})
		s.share.Store(nil)
		return err
	})
}
