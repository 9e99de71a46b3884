package etcdstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
)

// BenchmarkRecordDelivery is the intake write: one transaction per new
// delivery, against a real embedded etcd.
func BenchmarkRecordDelivery(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, etcdtest.Client(b, etcdtest.Start(b)))
	i := 0
	for b.Loop() {
		i++
		k := order.Key{Store: "s", ID: uint64(i)}
		if _, _, err := s.RecordDelivery(ctx, k, order.Event{Key: fmt.Sprint("h", i), Scope: "store/order/created", ReceivedAt: time.Now()}, time.Now(), order.SupplierHolds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordDeliveryDuplicate is a delivery seen before: one
// serializable read, and nothing is written.
func BenchmarkRecordDeliveryDuplicate(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, etcdtest.Client(b, etcdtest.Start(b)))
	k := order.Key{Store: "s", ID: 1}
	ev := order.Event{Key: "h", Scope: "store/order/created", ReceivedAt: time.Now()}
	s.RecordDelivery(ctx, k, ev, time.Now(), order.SupplierHolds)
	for b.Loop() {
		if rec, _, err := s.RecordDelivery(ctx, k, ev, time.Now(), order.SupplierHolds); err != nil || rec {
			b.Fatal(rec, err)
		}
	}
}
