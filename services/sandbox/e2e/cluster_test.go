package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// The tests in this file run the product on a three-member etcd cluster
// (embedded members on loopback, each with its own data directory and fixed
// ports) and take members away while BigCommerce deliveries are in flight.

// retryPause stands in for BigCommerce's retry schedule (a minute and more
// between tries), compressed for a test.
const retryPause = 200 * time.Millisecond

// deliveries are BigCommerce's deliveries of many events: each is sent
// until the gateway answers 2xx, as BigCommerce retries every non-2xx
// answer, and the refusals are counted.
type deliveries struct {
	e      *env
	sender *webhook.Sender

	accepted atomic.Int64
	mu       sync.Mutex
	refusals map[string]int // "503", "error: ...": how many answers of each kind
	retried  int            // deliveries that needed more than one try
	tries    int            // failed tries in all
}

func (e *env) deliveries() *deliveries {
	s := e.sender()
	s.Client = &http.Client{Timeout: 30 * time.Second}
	return &deliveries{e: e, sender: s, refusals: map[string]int{}}
}

// deliver sends ev until it is accepted, or fails the test after a
// generous deadline.
func (d *deliveries) deliver(ev webhook.Event, deadline time.Time) error {
	failed := 0
	for {
		status, err := d.sender.Send(context.Background(), ev)
		if err == nil && status/100 == 2 {
			break
		}
		failed++
		d.mu.Lock()
		if err != nil {
			d.refusals["error"]++
		} else {
			d.refusals[strconv.Itoa(status)]++
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("delivery of %s for order %d never accepted (%d tries): status %d err %v",
				ev.Scope, ev.Data.ID, failed, status, err)
		}
		time.Sleep(retryPause)
	}
	d.accepted.Add(1)
	if failed > 0 {
		d.mu.Lock()
		d.retried++
		d.tries += failed
		d.mu.Unlock()
	}
	return nil
}

// deliverAll delivers every event, concurrency at a time, each until
// accepted.
func (d *deliveries) deliverAll(events []webhook.Event, concurrency int) {
	d.e.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	errs := make(chan error, len(events))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, ev := range events {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := d.deliver(ev, deadline); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		d.e.t.Fatalf("%v\n%s", err, d.e.logs())
	}
}

func (d *deliveries) summary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var kinds []string
	for k, n := range d.refusals {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d accepted; %d needed retries (%d refused tries: %s)",
		d.accepted.Load(), d.retried, d.tries, strings.Join(kinds, ", "))
}

// backorders adds orders ids [from, from+n) to BigCommerce, payable and
// shippable, and returns 1 to 3 deliveries for each (a created event, a
// status change, and a duplicate of the first), shuffled.
func (e *env) backorders(from uint64, n int) []webhook.Event {
	var events []webhook.Event
	for id := from; id < from+uint64(n); id++ {
		e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
		kinds := []webhook.Event{
			webhook.Created(storeHash, storeID, id),
			webhook.StatusUpdated(storeHash, storeID, id, 0, 11),
		}
		for j := range 1 + rand.IntN(3) {
			events = append(events, kinds[j%2])
		}
	}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	return events
}

// settled is the outcome of settle.
type settled struct {
	// states counts the orders by state.
	states map[string]int
	// parked are orders the supplier created exactly once but whose record
	// waits for a person (NEEDS_REVIEW) instead of holding the supplier's
	// id: nothing is duplicated or lost, but it is not done either.
	parked []parkedOrder
}

type parkedOrder struct {
	id, offlineOrderID, reason string
}

func (p parkedOrder) String() string {
	return fmt.Sprintf("order %s: NEEDS_REVIEW (the supplier created %s): %s", p.id, p.offlineOrderID, p.reason)
}

// settle waits until no order of ids has work pending. It fails the test if
// the supplier has a duplicate, or has no live order for one of ids, or if
// an order is neither SUBMITTED (with the supplier's id) nor parked for
// review; it returns what it found.
func (e *env) settle(ids []uint64) settled {
	e.t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	final := map[uint64]*backorderv1.Order{}
	for time.Now().Before(deadline) && len(final) < len(ids) {
		for _, id := range ids {
			if final[id] != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
			cancel()
			if err != nil || r.GetOrder().GetPending() {
				continue
			}
			switch r.GetOrder().GetState() {
			case backorderv1.OrderState_ORDER_STATE_RECEIVED, backorderv1.OrderState_ORDER_STATE_SUBMITTING,
				backorderv1.OrderState_ORDER_STATE_RETRY_SCHEDULED:
				continue // not final, whatever the queue says
			}
			final[id] = r.GetOrder()
		}
		if len(final) < len(ids) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	l := e.ts.Ledger()
	out := settled{states: map[string]int{}}
	var bad []string
	for _, id := range ids {
		ref := fmt.Sprintf("BC-%s-%d", storeHash, id)
		live := l.OrdersFor(ref)
		o := final[id]
		switch {
		case o == nil:
			out.states["NOT SETTLED"]++
			bad = append(bad, fmt.Sprintf("order %d did not settle", id))
			continue
		case len(live) != 1:
			bad = append(bad, fmt.Sprintf("order %d (%v): the supplier has %d live orders for %s", id, o.GetState(), len(live), ref))
		case o.GetOfflineOrderId() != "" && o.GetOfflineOrderId() != live[0].OfflineOrderID:
			bad = append(bad, fmt.Sprintf("order %d: record holds %q, supplier created %q", id, o.GetOfflineOrderId(), live[0].OfflineOrderID))
		case o.GetState() == backorderv1.OrderState_ORDER_STATE_NEEDS_REVIEW:
			out.parked = append(out.parked, parkedOrder{strconv.FormatUint(id, 10), live[0].OfflineOrderID, o.GetReviewReason()})
		case o.GetOfflineOrderId() == "":
			bad = append(bad, fmt.Sprintf("order %d: %v without a supplier id, review %q, last error %q",
				id, o.GetState(), o.GetReviewReason(), o.GetLastError()))
		}
		out.states[o.GetState().String()]++
	}
	e.t.Logf("orders by state: %v; supplier: %d live orders, %d extra, %d duplicated references",
		out.states, len(l.Orders), l.ExtraOrders, l.DuplicateReferences)
	if l.ExtraOrders != 0 || l.DuplicateReferences != 0 {
		bad = append(bad, fmt.Sprintf("DUPLICATES at the supplier: %d extra orders, %d references with more than one",
			l.ExtraOrders, l.DuplicateReferences))
	}
	if len(l.Orders) != len(ids) {
		bad = append(bad, fmt.Sprintf("supplier has %d live orders; want %d", len(l.Orders), len(ids)))
	}
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
		}
		e.t.Fatalf("%s\n%s", strings.Join(bad, "\n"), e.logs())
	}
	return out
}

func idRange(from uint64, n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = from + uint64(i)
	}
	return ids
}

// TestClusterMemberLostDuringRun: one member of three (the leader) dies
// while 500 orders' deliveries, with duplicates, are in flight. The other
// two keep a quorum: refused deliveries are accepted on BigCommerce's
// retry, and every order reaches the supplier exactly once.
func TestClusterMemberLostDuringRun(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	e := newEnv(t, options{replicas: 3, mode: "live", etcd: c.Endpoints()})
	const n = 500
	const from = 30000
	events := e.backorders(from, n)
	// A supplier that takes its time, as a real one does: when the member
	// goes, many orders are between their stored intent and their stored
	// result.
	e.ts.SetFaults(tropsim.Faults{Latency: 300 * time.Millisecond})

	d := e.deliveries()
	stopped, quit := make(chan struct{}), make(chan struct{})
	defer close(quit)
	go func() {
		defer close(stopped)
		// Once a quarter of the deliveries were accepted, while the rest
		// are in flight and orders are being submitted.
		for d.accepted.Load() < int64(len(events)/4) {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		victim, role := c.Leader(), "the leader"
		if victim < 0 {
			victim, role = 0, "no leader known"
		}
		c.Stop(victim)
		t.Logf("stopped member %d (%s) after %d of %d deliveries were accepted",
			victim, role, d.accepted.Load(), len(events))
	}()
	start := time.Now()
	d.deliverAll(events, 32)
	<-stopped
	t.Logf("%d deliveries for %d orders in %s: %s", len(events), n, time.Since(start).Round(time.Millisecond), d.summary())

	r := e.settle(idRange(from, n))
	t.Logf("settled %s after the first delivery", time.Since(start).Round(time.Millisecond))
	var out strings.Builder
	for _, p := range e.replicas {
		out.WriteString(p.Output())
	}
	t.Logf("replicas logged %d processing failures, %d supplier answers not stored",
		strings.Count(out.String(), `"msg":"processing failed`),
		strings.Count(out.String(), `"msg":"the supplier created the order but its id could not be stored"`))
	if len(r.parked) == 0 {
		return
	}
	// Nothing was duplicated or lost (settle checked that), but orders wait
	// for a person. The one known cause: the product had the supplier's
	// answer and failed to store it once.
	var lines []string
	for _, p := range r.parked {
		lines = append(lines, p.String())
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, `"order_id":`+p.id+`,`) {
				lines = append(lines, "    "+l)
			}
		}
		if !strings.Contains(p.reason, "ended before its answer was stored") ||
			!strings.Contains(out.String(), `"msg":"the supplier created the order but its id could not be stored","store":"`+storeHash+`","order_id":`+p.id+`,`) {
			t.Fatalf("%s: parked for another reason than the known bug\n%s", p, e.logs())
		}
	}
	t.Logf("%s", strings.Join(lines, "\n"))
	t.Fatalf("%d of %d orders left NEEDS_REVIEW after one etcd member (the leader) was lost: "+
		"the supplier created each and answered, but the one fenced save of its id failed during the "+
		"leader election (etcdserver: request timed out) and was not retried; the next run found the order "+
		"SUBMITTING and parked it for a person. A single member loss must not need one.", len(r.parked), n)
}

// TestClusterQuorumLost: two members of three die. New deliveries are
// refused with 503 and Retry-After within the gateway's deadline (nothing
// hangs); a retry of an event recorded before the outage is answered 200 as
// a duplicate, since the surviving member holds its committed dedupe key and
// nothing needs writing. Once the members are back, BigCommerce's retries
// are accepted, the orders
// accepted before the outage are processed without anyone's help (the lock
// sessions that expired meanwhile are renewed), and every order reaches
// the supplier exactly once.
func TestClusterQuorumLost(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	e := newEnv(t, options{replicas: 3, mode: "live", etcd: c.Endpoints()})

	// Before the outage: orders accepted and queued, but not yet
	// submitted, because BigCommerce's API is failing (no supplier call
	// is in flight when the quorum goes).
	const before, during = 60, 40
	const fromBefore, fromDuring = 40000, 41000
	e.bc.SetFaults(bcsim.Faults{Rate: 1})
	early := e.backorders(fromBefore, before)
	d := e.deliveries()
	d.deliverAll(early, 16)
	t.Logf("before the outage: %s", d.summary())
	e.waitParked(idRange(fromBefore, before))

	// The outage: the leader and one more member. The one left must hold
	// every dedupe key recorded before it, so wait until each member has
	// applied all that was committed (a write commits on two of three).
	c.WaitApplied(time.Minute)
	leader := c.WaitLeader(30 * time.Second)
	other := (leader + 1) % 3
	c.Stop(leader)
	c.Stop(other)
	outage := time.Now()
	e.bc.SetFaults(bcsim.Faults{})
	t.Logf("stopped members %d (leader) and %d", leader, other)

	// New orders are refused with 503 and Retry-After; BigCommerce's
	// retries of events accepted before are answered as duplicates.
	late := e.backorders(fromDuring, during)
	probe := append(append([]webhook.Event{}, late...), early[:10]...)
	type answer struct {
		status     int
		retryAfter string
		took       time.Duration
		err        error
	}
	answers := make([]answer, len(probe))
	type ack struct{ Recorded, Duplicate bool }
	acks := make([]ack, len(probe))
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i, ev := range probe {
		wg.Go(func() {
			req, err := e.sender().Request(context.Background(), ev)
			if err != nil {
				answers[i].err = err
				return
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			answers[i].took = time.Since(t0)
			if err != nil {
				answers[i].err = err
				return
			}
			_ = json.NewDecoder(resp.Body).Decode(&acks[i])
			resp.Body.Close()
			answers[i].status, answers[i].retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		})
	}
	wg.Wait()
	var slowest time.Duration
	for i, a := range answers {
		slowest = max(slowest, a.took)
		var te interface{ Timeout() bool }
		switch {
		case a.err != nil && errors.As(a.err, &te) && te.Timeout():
			t.Errorf("BUG? delivery %d hung past 30 s without quorum (the gateway's deadline is 5 s): %v", i, a.err)
		case a.err != nil:
			t.Errorf("delivery %d without quorum: %v", i, a.err)
		case i >= len(late):
			if a.status != http.StatusOK || !acks[i].Duplicate {
				t.Errorf("retry %d of an event recorded before the outage: status %d %+v, want 200 duplicate", i, a.status, acks[i])
			}
		case a.status != http.StatusServiceUnavailable:
			t.Errorf("delivery %d without quorum: status %d, want 503", i, a.status)
		case a.retryAfter == "":
			t.Errorf("delivery %d without quorum: 503 without Retry-After", i)
		default:
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s <= 0 {
				t.Errorf("delivery %d without quorum: Retry-After %q, want a positive number of seconds", i, a.retryAfter)
			}
		}
	}
	t.Logf("without quorum: %d new deliveries refused, %d retries answered as duplicates, slowest answer %s",
		len(late), len(probe)-len(late), slowest.Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}
	// Keep the outage longer than the lock sessions' lease (LOCK_TTL 5s),
	// so that every replica must renew its session afterwards.
	if wait := 12*time.Second - time.Since(outage); wait > 0 {
		time.Sleep(wait)
	}

	c.Restart(leader)
	c.Restart(other)
	t.Logf("quorum back after %s", time.Since(outage).Round(time.Millisecond))

	// BigCommerce retries what was refused.
	d2 := e.deliveries()
	d2.deliverAll(probe, 16)
	t.Logf("after the outage: %s", d2.summary())

	if r := e.settle(append(idRange(fromBefore, before), idRange(fromDuring, during)...)); len(r.parked) > 0 {
		// No supplier call was in flight when the quorum went: nothing
		// may be ambiguous.
		t.Errorf("%v\n%s", r.parked, e.logs())
	}
	t.Logf("settled %s after the outage began", time.Since(outage).Round(time.Millisecond))
}

// waitParked waits until every order of ids was looked at and left queued
// after a BigCommerce failure.
func (e *env) waitParked(ids []uint64) {
	e.t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for _, id := range ids {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
			cancel()
			if err == nil && r.GetOrder().GetLastError() != "" && r.GetOrder().GetPending() {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("order %d was not left queued after a BigCommerce failure: %v (err %v)\n%s",
					id, r.GetOrder(), err, e.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
