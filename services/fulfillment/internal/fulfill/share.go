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
// replica's sweep that finds it still due after an earlier sweep left it
// to its owner.
type queueShare struct {
	self  string
	peers []string // sorted, self among them
}

// owner is the replica among peers that takes k: the one whose name,
// hashed with k, gives the highest value.
func (q *queueShare) owner(k order.Key) string {
	var best string
	var bestSum uint64
	id := strconv.FormatUint(k.ID, 10)
	for _, p := range q.peers {
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

// takes reports whether this replica takes k when its queue entry is
// written: always, unless it shares the queue with other processing
// replicas and another owns k.
func (s *Service) takes(k order.Key) bool {
	q := s.share.Load()
	return q == nil || len(q.peers) < 2 || q.owner(k) == q.self
}

// QueueShare reports how many replicas that process orders divide the
// store's queue, as this replica sees them (0: it shares nothing, not
// registered yet or its registration lost, or ROLE=intake, and takes
// every due order it hears of).
func (s *Service) QueueShare() int {
	if q := s.share.Load(); q != nil {
		return len(q.peers)
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
	for {
		err := s.store.ShareQueue(ctx, s.cfg.Store, func(self string, peers []string) {
			old := s.share.Swap(&queueShare{self: self, peers: peers})
			s.sharedOnce.Do(func() { close(s.shared) })
			if old == nil || !slices.Equal(old.peers, peers) {
				s.log.InfoContext(ctx, "replicas dividing the queue", "self", self, "replicas", peers)
			}
		})
		s.share.Store(nil)
		if ctx.Err() != nil {
			return
		}
		s.log.WarnContext(ctx, "dividing the queue with the other replicas failed; this replica takes every due order meanwhile", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
