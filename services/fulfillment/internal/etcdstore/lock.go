package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Lock implements fulfill.Store with a concurrency.Mutex on the process's
// one long-lived session.
func (s *Store) Lock(ctx context.Context, k order.Key) (fulfill.Locked, error) {
	return s.lock(ctx, k, false)
}

// TryLock implements fulfill.Store: Lock without waiting.
func (s *Store) TryLock(ctx context.Context, k order.Key) (fulfill.Locked, error) {
	return s.lock(ctx, k, true)
}

func (s *Store) lock(ctx context.Context, k order.Key, noWait bool) (fulfill.Locked, error) {
	m, sess, unlockLocal, err := s.acquire(ctx, s.lockKey(k), "order "+k.String(), noWait)
	if err != nil {
		return nil, err
	}
	return &locked{s: s, k: k, m: m, sess: sess, unlockLocal: unlockLocal}, nil
}

// acquire takes the process-local lock and the concurrency.Mutex on key
// (what, e.g. "order abc/7", names it in errors), on the process's lock
// session. Errors: fulfill.ErrLocked (with noWait, held elsewhere),
// fulfill.ErrLockLost (the session ended), else ErrUnavailable.
func (s *Store) acquire(ctx context.Context, key, what string, noWait bool) (*concurrency.Mutex, *concurrency.Session, func(), error) {
	unlockLocal, ok, err := s.local.lock(ctx, key, noWait)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lock %s: %w", what, unavailable(err))
	}
	if !ok {
		return nil, nil, nil, fmt.Errorf("%s: %w", what, fulfill.ErrLocked)
	}
	sess, err := s.currentSession(ctx)
	if err != nil {
		unlockLocal()
		return nil, nil, nil, err
	}
	m := concurrency.NewMutex(sess, key)
	if noWait {
		err = m.TryLock(ctx)
	} else {
		err = m.Lock(ctx)
	}
	if err != nil {
		unlockLocal()
		switch {
		case errors.Is(err, concurrency.ErrLocked):
			return nil, nil, nil, fmt.Errorf("%s: %w", what, fulfill.ErrLocked)
		case errors.Is(err, concurrency.ErrSessionExpired):
			return nil, nil, nil, fulfill.ErrLockLost
		}
		return nil, nil, nil, fmt.Errorf("lock %s: %w", what, unavailable(err))
	}
	return m, sess, unlockLocal, nil
}

// locked is one held mutex and the revisions read under it, which every
// write compares: IsOwner() fences a holder whose lease ended, and the
// record's mod revision fences any other writer.
type locked struct {
	s    *Store
	k    order.Key
	m    *concurrency.Mutex
	sess *concurrency.Session // the session m belongs to
	// unlockLocal releases the process-local lock taken with the mutex.
	unlockLocal func()
	released    bool  // SaveAndUnlock deleted the mutex key
	unlocked    bool  // Unlock was called
	recRev      int64 // mod revision of the record at Load (0: none)
	queueRev    int64 // mod revision of the queue entry at Load (0: none), or at this holder's last rewrite of it
	eventSince  bool  // the entry changed since the first Load under another hand: an event was recorded
	loaded      bool  // Load was called
	state       order.State
	// claim is a supplier id ClaimSupplierID found free (or this order's),
	// and claimRev the mod revision of its index key then (0: none): the
	// save that stores it compares that revision.
	claim    string
	claimRev int64
}

func (l *locked) Done() <-chan struct{} { return l.sess.Done() }

// Unlock releases the mutex. A second call does nothing (releasing the
// process-local lock twice would block for ever).
func (l *locked) Unlock(ctx context.Context) error {
	if l.unlocked {
		return nil
	}
	l.unlocked = true
	defer l.unlockLocal()
	if l.released {
		return nil
	}
	return l.m.Unlock(ctx)
}

// Check implements fulfill.Locked with a read-only transaction comparing
// the mutex's ownership.
func (l *locked) Check(ctx context.Context) error {
	select {
	case <-l.sess.Done():
		return fulfill.ErrLockLost
	default:
	}
	resp, err := l.s.cli.Txn(ctx).If(l.m.IsOwner()).Commit()
	if err != nil {
		return fmt.Errorf("check lock of order %s: %w", l.k, unavailable(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("lock of order %s: %w", l.k, fulfill.ErrFenced)
	}
	return nil
}

// Load implements fulfill.Locked.
func (l *locked) Load(ctx context.Context) (fulfill.Loaded, error) {
	resp, err := l.s.cli.Txn(ctx).Then(
		clientv3.OpGet(l.s.orderKey(l.k)),
		clientv3.OpGet(l.s.deliveryPrefix(l.k), clientv3.WithPrefix()),
		clientv3.OpGet(l.s.queueKey(l.k)),
	).Commit()
	if err != nil {
		return fulfill.Loaded{}, fmt.Errorf("load order %s: %w", l.k, unavailable(err))
	}
	out := fulfill.Loaded{Revision: resp.Header.Revision}
	// A second Load in one run (reading back a write whose answer was
	// lost) keeps what the first told about events: an entry changed
	// since this holder last knew it may hold an event, so it counts as
	// one (at worst the order runs once more).
	knewRev, again := l.queueRev, l.loaded
	l.recRev, l.queueRev, l.state, l.loaded = 0, 0, order.StateUnspecified, true
	if rec := resp.Responses[0].GetResponseRange(); len(rec.Kvs) > 0 {
		if out.Order, err = decodeOrder(rec.Kvs[0].Value); err != nil {
			return fulfill.Loaded{}, err
		}
		l.recRev, l.state = rec.Kvs[0].ModRevision, out.Order.State
	}
	if out.Events, err = decodeEvents(resp.Responses[1].GetResponseRange().Kvs); err != nil {
		return fulfill.Loaded{}, err
	}
	if q := resp.Responses[2].GetResponseRange(); len(q.Kvs) > 0 {
		out.Queued, l.queueRev = true, q.Kvs[0].ModRevision
	}
	if again && l.queueRev != knewRev {
		l.eventSince = true
	}
	return out, nil
}

// ClaimSupplierID implements fulfill.Locked.
func (l *locked) ClaimSupplierID(ctx context.Context, id string) (order.Key, bool, error) {
	l.claim, l.claimRev = "", 0
	kv, err := l.s.supplierIndex(ctx, l.k.Store, id)
	if err != nil {
		return order.Key{}, false, err
	}
	var rev int64
	if kv != nil {
		if kv.owner != l.k {
			return kv.owner, true, nil
		}
		rev = kv.rev
	}
	l.claim, l.claimRev = id, rev
	return order.Key{}, false, nil
}

// Save implements fulfill.Locked: one fenced transaction writes the record,
// its state index and the queue entry.
func (l *locked) Save(ctx context.Context, o *order.Order, q fulfill.QueueOp) error {
	return l.save(ctx, o, q, false)
}

// SaveAndUnlock implements fulfill.Locked: Save's transaction also deletes
// the mutex key, which is all that concurrency.Mutex.Unlock does, so the
// next holder (waiting on that key's deletion) goes on at once.
func (l *locked) SaveAndUnlock(ctx context.Context, o *order.Order, q fulfill.QueueOp) error {
	return l.save(ctx, o, q, true)
}

func (l *locked) save(ctx context.Context, o *order.Order, q fulfill.QueueOp, release bool) error {
	select {
	case <-l.sess.Done():
		return fulfill.ErrLockLost
	default:
	}
	val, err := json.Marshal(o)
	if err != nil {
		return err
	}
	ok := l.s.orderKey(l.k)
	ops := []clientv3.Op{clientv3.OpPut(ok, string(val))}
	if l.state != o.State {
		if l.state != order.StateUnspecified {
			ops = append(ops, clientv3.OpDelete(l.s.stateKey(l.state, l.k)))
		}
		ops = append(ops, clientv3.OpPut(l.s.stateKey(o.State, l.k), ""))
	}
	if o.OfflineOrderID != "" {
		// The index of supplier ids, for ResolveOrder's check; written by
		// the first save of a record with an id (records from before the
		// index get theirs when next saved), and never moved to another
		// order: an id found for a second order (a lookup, a metafield)
		// leaves the index naming the first, whose claim it is.
		sk := l.s.supplierKey(l.k.Store, o.OfflineOrderID)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(sk), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(sk, l.k.String())}, nil))
	}
	// An event recorded since Load rewrites the queue entry (intake), so
	// its mod revision tells: a Done then keeps the entry, due no later
	// than q.At, and the order is looked at again for that event. A save
	// that reschedules the entry (the intent) notes it first, since its
	// own put hides the event's revision from the saves after it.
	qk := l.s.queueKey(l.k)
	unchanged := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(qk), "=", l.queueRev)}
	qop := -1 // index of the queue's op in ops: its Succeeded says unchanged
	switch {
	case q.Done:
		var keep []clientv3.Op
		if !q.At.IsZero() {
			keep = append(keep, l.s.queueAtMost(l.k, q.At))
		}
		if l.eventSince {
			ops = append(ops, keep...)
			break
		}
		qop = len(ops)
		ops = append(ops, clientv3.OpTxn(unchanged, []clientv3.Op{clientv3.OpDelete(qk)}, keep))
	case !q.At.IsZero():
		put := clientv3.OpPut(qk, dueValue(q.At))
		qop = len(ops)
		ops = append(ops, clientv3.OpTxn(unchanged, []clientv3.Op{put}, []clientv3.Op{put}))
	}
	if release {
		ops = append(ops, clientv3.OpDelete(l.m.Key()))
	}
	cmps := []clientv3.Cmp{l.m.IsOwner(), clientv3.Compare(clientv3.ModRevision(ok), "=", l.recRev)}
	var orElse []clientv3.Op
	claimKey := ""
	if l.claim != "" && o.OfflineOrderID == l.claim {
		// A claimed id is stored only if no other order took it since
		// ClaimSupplierID read its index key.
		claimKey = l.s.supplierKey(l.k.Store, l.claim)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(claimKey), "=", l.claimRev))
		orElse = append(orElse, clientv3.OpGet(claimKey))
	}
	resp, err := l.s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
	if err != nil {
		return fmt.Errorf("save order %s: %w", l.k, unavailable(err))
	}
	if !resp.Succeeded {
		if claimKey != "" {
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 && kvs[0].ModRevision != l.claimRev {
				if owner, ok := parseKeySuffix(string(kvs[0].Value)); ok && owner != l.k {
					return fmt.Errorf("save order %s: %w: %s was taken by %s meanwhile", l.k, fulfill.ErrSupplierIDInUse, l.claim, owner)
				}
			}
		}
		return fmt.Errorf("save order %s: %w", l.k, fulfill.ErrFenced)
	}
	if claimKey != "" {
		l.claim, l.claimRev = "", 0 // stored: the index entry is this order's now
	}
	l.recRev, l.state = resp.Header.Revision, o.State
	l.released = l.released || release
	if qop >= 0 && !resp.Responses[qop].GetResponseTxn().GetSucceeded() {
		l.eventSince = true
	}
	switch {
	case q.Done && !l.eventSince:
		l.queueRev = 0 // deleted
	case !q.Done && !q.At.IsZero():
		l.queueRev = resp.Header.Revision // rewritten by this transaction
	}
	return nil
}

// unavailable marks etcd errors that mean "try again later" (no quorum,
// no connection, deadline) so callers answer 503 and BigCommerce retries.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) || errors.Is(err, rpctypes.ErrLeaderChanged) ||
		errors.Is(err, rpctypes.ErrStopped) || errors.Is(err, rpctypes.ErrNotCapable) {
		return fmt.Errorf("%w: %w", fulfill.ErrUnavailable, err)
	}
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", fulfill.ErrUnavailable, err)
	}
	return err
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound)
}

func sortEvents(events []order.Event) {
	slices.SortStableFunc(events, func(a, b order.Event) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
}
