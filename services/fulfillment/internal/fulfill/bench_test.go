package fulfill_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// BenchmarkDuplicateOfSubmitted is a new delivery for an order the supplier
// already has: one serializable read and one write in etcd (an exact
// duplicate would skip the write), no BigCommerce or TropShip call, nothing
// queued.
func BenchmarkDuplicateOfSubmitted(b *testing.B) {
	h := start(b, 1, order.ModeLive)
	h.sf.set(1, 11)
	k := order.Key{Store: "abc", ID: 1}
	if _, err := h.svc[0].Process(context.Background(), k, fulfill.ProcessOptions{Force: true}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		r, err := h.svc[0].Intake(context.Background(), delivery(1, "store/order/updated", 0, fmt.Sprint("u", i)))
		if err != nil || !r.Recorded {
			b.Fatal(r, err)
		}
	}
	b.StopTimer()
	if o, _ := h.svc[0].Get(context.Background(), k); o.Pending {
		b.Fatal("a duplicate of a submitted order queued work")
	}
	if h.sup.live["BC-abc-1"] != 1 {
		b.Fatalf("supplier orders %v", h.sup.live)
	}
}

// BenchmarkExactDuplicate is a delivery seen before (BigCommerce's retry,
// or a parallel copy): one serializable etcd read, no write, nothing queued.
func BenchmarkExactDuplicate(b *testing.B) {
	h := start(b, 1, order.ModeLive)
	d := delivery(1, "store/order/created", 0, "h1")
	if r, err := h.svc[0].Intake(context.Background(), d); err != nil || !r.Recorded {
		b.Fatal(r, err)
	}
	for b.Loop() {
		r, err := h.svc[0].Intake(context.Background(), d)
		if err != nil || !r.Duplicate {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkOneOrder is the whole flow of one fresh order under its lock:
// lock, load, storefront read, intent, supplier call, result, unlock
// (storefront and supplier in memory, etcd real); with the write-back, also
// the metafield write and one more etcd write.
func BenchmarkOneOrder(b *testing.B) {
	for _, wb := range []bool{false, true} {
		want := order.Submitted
		if wb {
			want = order.WrittenBack
		}
		b.Run(fmt.Sprintf("write-back=%v", wb), func(b *testing.B) {
			h := start(b, 1, order.ModeLive, func(c *fulfill.Config) { c.WriteBack = wb })
			i := uint64(0)
			for b.Loop() {
				i++
				h.sf.set(i, 11)
				o, err := h.svc[0].Process(context.Background(), order.Key{Store: "abc", ID: i}, fulfill.ProcessOptions{Force: true})
				if err != nil || o.State != want {
					b.Fatal(o, err)
				}
			}
		})
	}
}
