package e2e_test

import (
	"context"
	"testing"
	"time"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// SIGTERM while a live TropShip call is in flight (a rolling restart): the
// replica lets the call finish and stores the supplier's id before it
// exits, whether a worker or an operator's ProcessOrder started the call.
// Cutting the call off would leave an order the supplier created, charged,
// and unknown here (NEEDS_REVIEW at best).
func TestSigtermDuringALiveCallStoresTheAnswer(t *testing.T) {
	for _, via := range []string{"webhook", "ProcessOrder"} {
		t.Run(via, func(t *testing.T) {
			tap := newSupplierTap(holdNothing)
			e := newBareEnv(t, options{mode: "live"}, tap)
			p := e.startReplica("live")
			e.startGateway()
			// The supplier answers 3 s after the whole request is in.
			e.ts.SetFaults(tropsim.Faults{Latency: 3 * time.Second})
			const id = 5150
			e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...))

			rpc := make(chan error, 1)
			if via == "webhook" {
				e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
			} else {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					_, err := e.client.ProcessOrder(ctx, &backorderv1.ProcessOrderRequest{StoreHash: storeHash, OrderId: id})
					rpc <- err
				}()
			}
			waitFor(t, e, tap.posted, "the live submission")
			if err := p.Stop(); err != nil { // SIGTERM, and wait for the exit
				t.Errorf("replica exit: %v\n%s", err, e.logs())
			}
			if via == "ProcessOrder" {
				if err := <-rpc; err != nil {
					t.Errorf("ProcessOrder during the shutdown: %v", err)
				}
			}

			// The stopped replica stored the answer and left the write-back
			// (step 9) queued: a new one finds the order SUBMITTED, with the
			// supplier's one order, and writes it back without resending.
			e.replaceReplica("live")
			o := e.waitState(id, writtenBack)
			l := e.ts.Ledger()
			checkNoDuplicates(t, l)
			if len(l.Orders) != 1 || o.GetOfflineOrderId() != l.Orders[0].OfflineOrderID {
				t.Fatalf("record %v; supplier orders %v; want the one order's id stored", o, l.Orders)
			}
			e.checkWrittenBack(o)
		})
	}
}
