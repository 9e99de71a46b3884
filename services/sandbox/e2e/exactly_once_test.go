package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

func (e *env) sender() *webhook.Sender {
	return &webhook.Sender{URL: e.webhookURL(), ClientSecret: clientSecret, Client: &http.Client{Timeout: 30 * time.Second}}
}

// sendAll delivers events in parallel and fails the test unless every one
// was acknowledged 2xx, as BigCommerce needs.
func (e *env) sendAll(events []webhook.Event, concurrency int) {
	e.t.Helper()
	res := e.sender().SendParallel(context.Background(), events, concurrency)
	for i, r := range res {
		if r.Err != nil || r.Status/100 != 2 {
			e.t.Fatalf("delivery %d (%s): status %d err %v\n%s", i, events[i].Scope, r.Status, r.Err, e.logs())
		}
	}
}

func TestFiftyDeliveriesThreeReplicasOneLiveOrder(t *testing.T) {
	e := newEnv(t, options{replicas: 3, mode: "live"})
	const id = 250
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(3)...))
	kinds := []webhook.Event{
		webhook.Created(storeHash, storeID, id),
		webhook.StatusUpdated(storeHash, storeID, id, 0, 11),
		webhook.Updated(storeHash, storeID, id),
	}
	var events []webhook.Event
	for i := range 50 {
		events = append(events, kinds[i%len(kinds)]) // the same Event again is an exact duplicate
	}
	e.sendAll(events, 50)

	o := e.waitState(id, writtenBack)
	l := e.ts.Ledger()
	ref := fmt.Sprintf("BC-%s-%d", storeHash, id)
	if got := l.References[ref]; got != 1 || l.ExtraOrders != 0 {
		t.Fatalf("supplier has %d live orders for %s (extra %d); want exactly 1", got, ref, l.ExtraOrders)
	}
	if want := l.OrdersFor(ref)[0].OfflineOrderID; o.GetOfflineOrderId() != want {
		t.Fatalf("record holds %q, supplier created %q", o.GetOfflineOrderId(), want)
	}
	if len(o.GetEvents()) != 3 {
		t.Fatalf("record lists %d events, want the 3 distinct ones: %v", len(o.GetEvents()), o.GetEvents())
	}
	// Step 9, once: the id is on the BigCommerce order, written by one
	// replica, whatever the fifty deliveries did.
	e.checkWrittenBack(o)
	if st := e.bc.Stats(); st.MetafieldsPost != 1 {
		t.Fatalf("%d metafield writes, want 1", st.MetafieldsPost)
	}
}

func TestTwoHundredOrdersRandomDuplicates(t *testing.T) {
	e := newEnv(t, options{replicas: 3, mode: "live"})
	const n = 200
	var events []webhook.Event
	for id := uint64(1000); id < 1000+n; id++ {
		e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
		kinds := []webhook.Event{
			webhook.Created(storeHash, storeID, id),
			webhook.StatusUpdated(storeHash, storeID, id, 0, 11),
		}
		for j := range 1 + rand.IntN(5) {
			events = append(events, kinds[j%2])
		}
	}
	rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	e.sendAll(events, 32)
	for id := uint64(1000); id < 1000+n; id++ {
		e.checkWrittenBack(e.waitState(id, writtenBack))
	}
	l := e.ts.Ledger()
	if len(l.Orders) != n || l.ExtraOrders != 0 || l.DuplicateReferences != 0 {
		t.Fatalf("supplier: %d live orders, %d extra, %d duplicated references; want %d, 0, 0",
			len(l.Orders), l.ExtraOrders, l.DuplicateReferences, n)
	}
	t.Logf("%d deliveries for %d orders -> %d live supplier orders", len(events), n, len(l.Orders))
}

func TestAwaitingPaymentThenAwaitingFulfillment(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live"})
	const id = 77
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingPayment, bcsim.Lines(1)...))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
	o := e.waitState(id, backorderv1.OrderState_ORDER_STATE_INELIGIBLE)
	if o.GetIneligibleReason() == "" || len(e.ts.Ledger().Orders) != 0 {
		t.Fatalf("ineligible order: %v; supplier orders %d", o, len(e.ts.Ledger().Orders))
	}
	if err := e.bc.SetStatus(storeHash, id, bcsim.StatusAwaitingFulfillment); err != nil {
		t.Fatal(err)
	}
	ev := webhook.StatusUpdated(storeHash, storeID, id, 7, 11)
	e.sendAll([]webhook.Event{ev, ev, ev}, 3)
	e.waitState(id, writtenBack)
	if l := e.ts.Ledger(); len(l.Orders) != 1 {
		t.Fatalf("supplier orders = %d, want 1", len(l.Orders))
	}
}

// An order the merchant archived (BigCommerce's DELETE) is still returned by
// the API, in its last status, with is_deleted: it is never sent.
func TestArchivedOrderIsNotSent(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live"})
	const id = 78
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))
	if err := e.bc.Archive(storeHash, id); err != nil {
		t.Fatal(err)
	}
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
	o := e.waitState(id, backorderv1.OrderState_ORDER_STATE_INELIGIBLE)
	if !strings.Contains(o.GetIneligibleReason(), "archived") || len(e.ts.Ledger().Orders) != 0 {
		t.Fatalf("archived order: %v; supplier orders %d", o, len(e.ts.Ledger().Orders))
	}
}

func TestValidateModeThenLiveOnce(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "validate"})
	const id = 31
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id), webhook.Created(storeHash, storeID, id)}, 2)
	e.waitState(id, backorderv1.OrderState_ORDER_STATE_VALIDATED)
	if l := e.ts.Ledger(); len(l.Orders) != 0 || l.Validations == 0 {
		t.Fatalf("validate mode: %d live orders, %d validations; want 0 and at least 1", len(l.Orders), l.Validations)
	}
	ctx := context.Background()
	st, err := e.client.GetServiceStatus(ctx, &backorderv1.GetServiceStatusRequest{})
	if err != nil || st.GetSupplierMode() != backorderv1.SupplierMode_SUPPLIER_MODE_VALIDATE {
		t.Fatalf("status: %v %v", st, err)
	}

	// The operator switches to live: the same order is submitted once,
	// however often it is asked for or announced.
	e.replicas[0].Stop()
	e.replicas, e.client = nil, nil
	e.startReplica("live")
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			e.client.ProcessOrder(ctx, &backorderv1.ProcessOrderRequest{StoreHash: storeHash, OrderId: id})
		})
	}
	wg.Wait()
	e.waitState(id, writtenBack)
	ev := webhook.Updated(storeHash, storeID, id)
	e.gateway.Stop()
	e.startGateway()
	e.sendAll([]webhook.Event{ev, ev}, 2)
	if l := e.ts.Ledger(); len(l.Orders) != 1 {
		t.Fatalf("after switching to live: %d live orders, want 1", len(l.Orders))
	}
}
