// Package etcdstore keeps the order records, delivery dedupe, the queue of
// pending work and the per-order mutexes in etcd, the product's only store.
//
// Layout under the prefix (default /backorder/):
//
//	orders/<store>/<id>             the record (JSON of order.Order)
//	deliveries/<store>/<id>/<key>   one webhook event, on a ~72 h lease (dedupe)
//	queue/<store>/<id>              pending work; the value is the due time
//	index/state/<STATE>/<store>/<id> an index of records by state
//	locks/<store>/<id>/             the concurrency.Mutex prefix
package etcdstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

var _ fulfill.Store = (*Store)(nil)

// Options tune a Store.
type Options struct {
	// Prefix of every key (default "/backorder/").
	Prefix string
	// LockTTL is the lease of the process's lock session (default 10 s): a
	// process that stops keeping it alive loses its locks after this long.
	LockTTL time.Duration
	// DeliveryTTL is how long a delivery is remembered for dedupe (default
	// 72 h, longer than BigCommerce's 48 h retry horizon).
	DeliveryTTL time.Duration
}

// Store is the etcd implementation of fulfill.Store.
type Store struct {
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration

	// The lock session is renewed when its lease is lost (a long pause, a
	// partition): locks of the old session are void, and every fenced write
	// made under them fails.
	sessMu      sync.Mutex
	session     *concurrency.Session
	sessionCtx  context.Context // lives as long as the store: until Close
	stopSession context.CancelFunc
	lockTTL     int
	local       localLocks

	leaseMu      sync.Mutex
	lease        clientv3.LeaseID
	leaseGranted time.Time
}

// New opens a store on cli and its long-lived lock session.
func New(ctx context.Context, cli *clientv3.Client, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = "/backorder/"
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 10 * time.Second
	}
	if opts.DeliveryTTL <= 0 {
		opts.DeliveryTTL = 72 * time.Hour
	}
	ttl := int(opts.LockTTL / time.Second)
	if ttl < 1 {
		ttl = 1
	}
	// The lock session outlives ctx: it ends with Close, after the caller
	// has let its in-flight runs finish. Ending it with ctx (a shutdown
	// signal) would cut a live supplier call off half-way and leave its
	// outcome unknown.
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Store{cli: cli, prefix: opts.Prefix, ttl: opts.DeliveryTTL, sessionCtx: sctx, stopSession: stop, lockTTL: ttl}
	if _, err := s.currentSession(ctx); err != nil {
		stop()
		return nil, err
	}
	return s, nil
}

// currentSession returns the live lock session, starting a new one when the
// last one ended.
func (s *Store) currentSession(ctx context.Context) (*concurrency.Session, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.session != nil {
		select {
		case <-s.session.Done():
		default:
			return s.session, nil
		}
	}
	// Grant under the caller's deadline, keep alive for the store's life.
	g, err := s.cli.Grant(ctx, int64(s.lockTTL))
	if err != nil {
		return nil, fmt.Errorf("etcd lock session: %w", unavailable(err))
	}
	// The TTL bounds Close's revoke: without it, a Close with etcd
	// unreachable waits etcd's default 60 s, past any shutdown grace
	// period; the lease lapses by itself after LOCK_TTL anyway.
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(g.ID), concurrency.WithTTL(s.lockTTL),
		concurrency.WithContext(s.sessionCtx))
	if err != nil {
		return nil, fmt.Errorf("etcd lock session: %w", unavailable(err))
	}
	s.session = sess
	return sess, nil
}

// Close ends the lock session, releasing every lock this process holds.
func (s *Store) Close() error {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	defer s.stopSession()
	if s.session == nil {
		return nil
	}
	return s.session.Close()
}

// Client returns the etcd client (for health checks).
func (s *Store) Client() *clientv3.Client { return s.cli }

func (s *Store) orderKey(k order.Key) string {
	return fmt.Sprintf("%sorders/%s/%d", s.prefix, k.Store, k.ID)
}
func (s *Store) queuePrefix() string { return s.prefix + "queue/" }
func (s *Store) queueKey(k order.Key) string {
	return fmt.Sprintf("%s%s/%d", s.queuePrefix(), k.Store, k.ID)
}
func (s *Store) lockKey(k order.Key) string {
	return fmt.Sprintf("%slocks/%s/%d/", s.prefix, k.Store, k.ID)
}
func (s *Store) deliveryPrefix(k order.Key) string {
	return fmt.Sprintf("%sdeliveries/%s/%d/", s.prefix, k.Store, k.ID)
}

// supplierKey indexes a store's records by the supplier's offline_order_id.
func (s *Store) supplierKey(store, offlineOrderID string) string {
	return s.prefix + "index/supplier/" + store + "/" + url.PathEscape(offlineOrderID)
}
func (s *Store) stateRoot() string { return s.prefix + "index/state/" }
func (s *Store) statePrefix(st order.State) string {
	return s.stateRoot() + st.String() + "/"
}
func (s *Store) stateKey(st order.State, k order.Key) string {
	return fmt.Sprintf("%s%s/%d", s.statePrefix(st), k.Store, k.ID)
}

// deliveryLease returns a lease for delivery keys. One lease is shared by
// the deliveries of an hour, so dedupe costs one grant an hour, not one per
// delivery, and each key lives between DeliveryTTL-1h and DeliveryTTL.
func (s *Store) deliveryLease(ctx context.Context) (clientv3.LeaseID, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.lease != 0 && time.Since(s.leaseGranted) < time.Hour {
		return s.lease, nil
	}
	g, err := s.cli.Grant(ctx, int64(s.ttl/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant delivery lease: %w", unavailable(err))
	}
	s.lease, s.leaseGranted = g.ID, time.Now()
	return s.lease, nil
}

// RecordDelivery implements fulfill.Store. A duplicate costs one
// serializable read; a new delivery one transaction, which writes its key
// and, unless the record is in a skip state, the queue entry.
//
// The queue entry is never made due sooner than it was: an order waiting
// for a backoff, a lookup or the TropShip breaker keeps its due time, and
// the event is only remembered (queued=false), for the run that comes when
// it is due. The entry is still rewritten (same value, new revision), so a
// run that loaded it before this event never takes it off the queue
// (locked.save's Done).
func (s *Store) RecordDelivery(ctx context.Context, k order.Key, ev order.Event, due time.Time, skip []order.State) (recorded, queued bool, err error) {
	return s.recordDelivery(ctx, k, ev, due, skip, false)
}

func (s *Store) recordDelivery(ctx context.Context, k order.Key, ev order.Event, due time.Time, skip []order.State, retried bool) (recorded, queued bool, err error) {
	dk := s.deliveryPrefix(k) + ev.Key
	// A serializable read is answered from the member's own applied state,
	// with no round of consensus and no wait behind a WAL fsync. A key it
	// has is committed, so "seen" is always right; a member that lags may
	// miss a key, and then the transaction's compare still refuses to
	// write it twice.
	seen, err := s.cli.Get(ctx, dk, clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		return false, false, fmt.Errorf("record delivery: %w", unavailable(err))
	}
	if seen.Count > 0 {
		return false, false, nil
	}
	lease, err := s.deliveryLease(ctx)
	if err != nil {
		return false, false, err
	}
	val, err := json.Marshal(ev)
	if err != nil {
		return false, false, err
	}
	// The queue entry is put only while the record is in none of the skip
	// states; the state index is written in the same transaction as the
	// record, so it is exact.
	notSkipped := make([]clientv3.Cmp, 0, len(skip))
	for _, st := range skip {
		notSkipped = append(notSkipped, clientv3.Compare(clientv3.CreateRevision(s.stateKey(st, k)), "=", 0))
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(dk), "=", 0)).Then(
		clientv3.OpPut(dk, string(val), clientv3.WithLease(lease)),
		clientv3.OpTxn(notSkipped, []clientv3.Op{s.queueAtLeast(k, due)}, nil),
	).Commit()
	if err != nil {
		if isLeaseNotFound(err) && !retried {
			// The shared lease expired or was revoked: take a new one (unless
			// a concurrent delivery already did) and try once more.
			s.leaseMu.Lock()
			if s.lease == lease {
				s.lease = 0
			}
			s.leaseMu.Unlock()
			return s.recordDelivery(ctx, k, ev, due, skip, true)
		}
		return false, false, fmt.Errorf("record delivery: %w", unavailable(err))
	}
	if !resp.Succeeded {
		return false, false, nil
	}
	held := resp.Responses[1].GetResponseTxn()
	if !held.GetSucceeded() {
		return true, false, nil // a skip state: remembered, no work
	}
	later := held.GetResponses()[0].GetResponseTxn().GetSucceeded()
	return true, !later, nil
}

// queueAtLeast is the op that queues an order due at due, unless its entry
// is due later already: that entry keeps its time and gets a new revision
// (a put of its own value). Its Succeeded says the entry was due later.
func (s *Store) queueAtLeast(k order.Key, due time.Time) clientv3.Op {
	qk, v := s.queueKey(k), dueValue(due)
	return clientv3.OpTxn(
		// A missing key fails a value compare: it is queued at due.
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(qk), ">", v)},
		[]clientv3.Op{clientv3.OpPut(qk, "", clientv3.WithIgnoreValue())},
		[]clientv3.Op{clientv3.OpPut(qk, v)})
}

// queueAtMost is the op that makes an order's queue entry due no later
// than at; a missing entry stays missing.
func (s *Store) queueAtMost(k order.Key, at time.Time) clientv3.Op {
	qk, v := s.queueKey(k), dueValue(at)
	return clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(qk), ">", v)},
		[]clientv3.Op{clientv3.OpPut(qk, v)}, nil)
}

// dueValue is a queue entry's value: the due time in Unix nanoseconds,
// zero-padded to 19 digits so that etcd's byte-wise compare of two values
// orders them as times (queueAtLeast). Every time from 2001 to 2262 has 19
// digits anyway; the padding only matters for a clock set before 2001.
func dueValue(t time.Time) string {
	return fmt.Sprintf("%019d", max(t.UnixNano(), 0))
}

// Get implements fulfill.Store.
func (s *Store) Get(ctx context.Context, k order.Key) (*order.Order, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.orderKey(k)),
		clientv3.OpGet(s.deliveryPrefix(k), clientv3.WithPrefix()),
		clientv3.OpGet(s.queueKey(k), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("get order %s: %w", k, unavailable(err))
	}
	rec, evs := resp.Responses[0].GetResponseRange(), resp.Responses[1].GetResponseRange()
	queued := resp.Responses[2].GetResponseRange().Count > 0
	var o *order.Order
	switch {
	case len(rec.Kvs) > 0:
		if o, err = decodeOrder(rec.Kvs[0].Value); err != nil {
			return nil, err
		}
	case len(evs.Kvs) > 0 || queued:
		// Recorded but not processed yet (its dedupe keys may even have
		// expired, leaving only the queue entry): show it as received.
		o = order.New(k, time.Time{})
	default:
		return nil, fmt.Errorf("order %s: %w", k, fulfill.ErrNotFound)
	}
	events, err := decodeEvents(evs.Kvs)
	if err != nil {
		return nil, err
	}
	o.AddEvents(events...)
	if o.CreatedAt.IsZero() && len(o.Events) > 0 {
		o.CreatedAt, o.UpdatedAt = o.Events[0].ReceivedAt, o.Events[len(o.Events)-1].ReceivedAt
	}
	o.Pending = queued
	return o, nil
}

// List implements fulfill.Store. Pending walks the queue (so orders whose
// events are recorded but have no record yet are listed too); a state, the
// state index; otherwise the records themselves.
func (s *Store) List(ctx context.Context, f fulfill.ListFilter) ([]*order.Order, string, error) {
	if f.PageSize <= 0 {
		f.PageSize = 50
	}
	var base string // keys are base + "<store>/<id>"
	switch {
	case f.Pending:
		base = s.queuePrefix()
	case f.State != order.StateUnspecified:
		base = s.statePrefix(f.State)
	default:
		base = s.prefix + "orders/"
	}
	prefix := base
	if f.Store != "" {
		prefix += f.Store + "/"
	}
	start := prefix
	if f.PageToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.PageToken)
		if err != nil || !strings.HasPrefix(string(after), prefix) {
			return nil, "", fulfill.ErrBadPageToken
		}
		start = string(after) + "\x00"
	}
	resp, err := s.cli.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(f.PageSize)))
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", unavailable(err))
	}
	out := make([]*order.Order, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if !f.Pending && f.State == order.StateUnspecified {
			o, err := decodeOrder(kv.Value)
			if err != nil {
				return nil, "", err
			}
			out = append(out, o)
			continue
		}
		k, ok := parseKeySuffix(strings.TrimPrefix(string(kv.Key), base))
		if !ok {
			continue
		}
		o, err := s.Get(ctx, k)
		if errors.Is(err, fulfill.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		// The index or the queue may lag a concurrent write.
		if (f.State == order.StateUnspecified || o.State == f.State) && (!f.Pending || o.Pending) {
			out = append(out, o)
		}
	}
	next := ""
	if resp.More && len(resp.Kvs) > 0 {
		next = base64.RawURLEncoding.EncodeToString(resp.Kvs[len(resp.Kvs)-1].Key)
	}
	return out, next, nil
}

// Due implements fulfill.Store: it reads only the store's queue, never
// every record.
func (s *Store) Due(ctx context.Context, store string, now time.Time, limit int) ([]fulfill.DueEntry, error) {
	resp, err := s.cli.Get(ctx, s.queuePrefix()+store+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", unavailable(err))
	}
	var keys []fulfill.DueEntry
	for _, kv := range resp.Kvs {
		due, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err == nil && due > now.UnixNano() {
			continue
		}
		k, ok := parseKeySuffix(strings.TrimPrefix(string(kv.Key), s.queuePrefix()))
		if !ok {
			continue
		}
		keys = append(keys, fulfill.DueEntry{Key: k, Rev: kv.ModRevision})
		if len(keys) >= limit {
			break
		}
	}
	return keys, nil
}

// FollowQueue implements fulfill.Store with a watch on the store's queue
// (puts only).
func (s *Store) FollowQueue(ctx context.Context, store string, ready func(), fn func(k order.Key, due time.Time, rev int64)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, s.queuePrefix()+store+"/", clientv3.WithPrefix(), clientv3.WithFilterDelete(), clientv3.WithCreatedNotify()) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("follow the queue: %w", unavailable(err))
		}
		if resp.Created {
			ready()
		}
		for _, ev := range resp.Events {
			k, ok := parseKeySuffix(strings.TrimPrefix(string(ev.Kv.Key), s.queuePrefix()))
			n, err := strconv.ParseInt(string(ev.Kv.Value), 10, 64)
			if ok && err == nil {
				fn(k, time.Unix(0, n), ev.Kv.ModRevision)
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("follow the queue: %w: the watch ended", fulfill.ErrUnavailable)
}

// parseKeySuffix reads "<store>/<id>".
func parseKeySuffix(s string) (order.Key, bool) {
	store, id, ok := strings.Cut(s, "/")
	if !ok {
		return order.Key{}, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return order.Key{}, false
	}
	return order.Key{Store: store, ID: n}, true
}

func decodeOrder(b []byte) (*order.Order, error) {
	var o order.Order
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode order record: %w", err)
	}
	return &o, nil
}

func decodeEvents(kvs []*mvccpb.KeyValue) ([]order.Event, error) {
	events := make([]order.Event, 0, len(kvs))
	for _, kv := range kvs {
		var ev order.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode delivery %s: %w", kv.Key, err)
		}
		events = append(events, ev)
	}
	// Deliveries are keyed by dedupe key, not time: order them as received.
	sortEvents(events)
	return events, nil
}

// CountOrders counts a store's records in each state (from the state
// index) and its queued orders, in one read-only transaction of count-only
// reads, so the figures are of one revision. Records whose state index is
// missing (written before the index existed) are not counted. etcd walks
// every key counted: Counts keeps the same figures at the cost of a watch.
func (s *Store) CountOrders(ctx context.Context, store string) (byState map[order.State]int64, queued int64, err error) {
	byState, queued, _, err = s.countAt(ctx, store)
	return byState, queued, err
}

// countAt is CountOrders with the revision counted at.
func (s *Store) countAt(ctx context.Context, store string) (byState map[order.State]int64, queued, rev int64, err error) {
	states := countedStates()
	ops := make([]clientv3.Op, 0, len(states)+1)
	for _, st := range states {
		ops = append(ops, clientv3.OpGet(s.statePrefix(st)+store+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	ops = append(ops, clientv3.OpGet(s.queuePrefix()+store+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("count the orders of %s: %w", store, unavailable(err))
	}
	byState = map[order.State]int64{}
	for i, st := range states {
		byState[st] = resp.Responses[i].GetResponseRange().GetCount()
	}
	return byState, resp.Responses[len(states)].GetResponseRange().GetCount(), resp.Header.Revision, nil
}

// SupplierOrderOf returns the order of store whose record holds the
// supplier's offlineOrderID (found=false: none recorded). Stores in a
// shared etcd may use different supplier accounts, so each has its own ids.
func (s *Store) SupplierOrderOf(ctx context.Context, store, offlineOrderID string) (order.Key, bool, error) {
	kv, err := s.supplierIndex(ctx, store, offlineOrderID)
	if err != nil || kv == nil {
		return order.Key{}, false, err
	}
	return kv.owner, true, nil
}

// indexEntry is an entry of the supplier-id index: the order that holds
// the id, and the entry's mod revision.
type indexEntry struct {
	owner order.Key
	rev   int64
}

// supplierIndex reads the supplier-id index entry of an id (nil: none).
func (s *Store) supplierIndex(ctx context.Context, store, offlineOrderID string) (*indexEntry, error) {
	resp, err := s.cli.Get(ctx, s.supplierKey(store, offlineOrderID))
	if err != nil {
		return nil, fmt.Errorf("look up supplier order %s: %w", offlineOrderID, unavailable(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	k, ok := parseKeySuffix(string(resp.Kvs[0].Value))
	if !ok {
		return nil, fmt.Errorf("supplier order %s: damaged index entry %q", offlineOrderID, resp.Kvs[0].Value)
	}
	return &indexEntry{owner: k, rev: resp.Kvs[0].ModRevision}, nil
}
