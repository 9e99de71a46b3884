package fulfill

import (
	"strings"
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

// With no other processing replica known, a replica takes everything;
// of two, exactly one takes each order.
func TestTakesAloneOrUnshared(t *testing.T) {
	a, b := &Service{}, &Service{}
	k := order.Key{Store: "abc", ID: 1}
	if !a.takes(k) {
		t.Error("a replica that shares nothing must take every order")
	}
	a.share.Store(&queueShare{self: "a", peers: []string{"a"}})
	if !a.takes(k) {
		t.Error("the only processing replica must take every order")
	}
	a.share.Store(&queueShare{self: "a", peers: []string{"a", "b"}})
	b.share.Store(&queueShare{self: "b", peers: []string{"a", "b"}})
	var na int
	for id := range uint64(1000) {
		k := order.Key{Store: "abc", ID: id}
		if a.takes(k) == b.takes(k) {
			t.Fatalf("order %v: taken by a %v, by b %v; want exactly one", k, a.takes(k), b.takes(k))
		}
		if a.takes(k) {
			na++
		}
	}
	if na < 400 || na > 600 {
		t.Errorf("a takes %d of 1000 orders; want about half", na)
	}
}

// The owner of an order must not change between builds: replicas of two
// builds, during a rolling upgrade, must agree.
func TestQueueShareOwnerIsStable(t *testing.T) {
	q := &queueShare{peers: []string{"0000000000000a1f", "0000000000000a20", "7c3b00000000001e"}}
	var got []string
	for id := uint64(1); id <= 6; id++ {
		got = append(got, q.owner(order.Key{Store: "abc", ID: id})[12:])
	}
	if want := "0a20 0a1f 001e 001e 0a1f 0a1f"; strings.Join(got, " ") != want {
		t.Errorf("owners of orders 1 to 6: %q, want %q", strings.Join(got, " "), want)
	}
}
