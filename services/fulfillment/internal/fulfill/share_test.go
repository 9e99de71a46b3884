package fulfill

import (
	"testing"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Every replica computes the same owner for an order; the orders are
// spread evenly; and a replica that leaves moves only its own orders.
func TestQueueShareOwner(t *testing.T) {
	three := &queueShare{peers: []string{"0000000000000a1f", "0000000000000a20", "7c3b00000000001e"}}
	two := &queueShare{peers: three.peers[:2]}
	const n = 6000
	count := map[string]int{}
	for id := range uint64(n) {
		k := order.Key{Store: "abc", ID: 100 + id}
		o := three.owner(k)
		if again := (&queueShare{peers: three.peers}).owner(k); again != o {
			t.Fatalf("order %v: owner %s, then %s", k, o, again)
		}
		count[o]++
		if o != three.peers[2] && two.owner(k) != o {
			t.Fatalf("order %v moved from %s to %s when another replica left", k, o, two.owner(k))
		}
	}
	for _, p := range three.peers {
		if c := count[p]; c < n/3*8/10 || c > n/3*12/10 {
			t.Errorf("replica %s owns %d of %d orders; want about a third: %v", p, c, n, count)
		}
	}
}

// With no other processing replica known, a replica takes everything.
func TestTakesAloneOrUnshared(t *testing.T) {
	s := &Service{}
	k := order.Key{Store: "abc", ID: 1}
	if !s.takes(k) {
		t.Error("a replica that shares nothing must take every order")
	}
	s.share.Store(&queueShare{self: "a", peers: []string{"a"}})
	if !s.takes(k) {
		t.Error("the only processing replica must take every order")
	}
	s.share.Store(&queueShare{self: "a", peers: []string{"a", "b"}})
	other := &queueShare{self: "b", peers: []string{"a", "b"}}
	if s.takes(k) == (other.owner(k) == "b") {
		t.Error("exactly one of two replicas takes an order")
	}
}
