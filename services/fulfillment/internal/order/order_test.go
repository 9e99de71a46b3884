package order_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

func TestReference(t *testing.T) {
	long := strings.Repeat("s", 200)
	tests := []struct {
		name string
		key  order.Key
		want string // "" checks only the properties below
	}{
		{"short", order.Key{Store: "abc123", ID: 100}, "BC-abc123-100"},
		{"zero id", order.Key{Store: "abc123", ID: 0}, "BC-abc123-0"},
		{"exactly 50", order.Key{Store: strings.Repeat("x", 43), ID: 100}, "BC-" + strings.Repeat("x", 43) + "-100"},
		{"51 chars: store cut", order.Key{Store: strings.Repeat("x", 44), ID: 100}, "BC-" + strings.Repeat("x", 43) + "-100"},
		{"very long store", order.Key{Store: long, ID: 123456}, ""},
		{"very long store, max id", order.Key{Store: long, ID: math.MaxUint64}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := order.Reference(tt.key)
			if tt.want != "" && ref != tt.want {
				t.Errorf("Reference(%v) = %q, want %q", tt.key, ref, tt.want)
			}
			if len(ref) > 50 {
				t.Errorf("Reference(%v) = %q: %d characters, want at most 50", tt.key, ref, len(ref))
			}
			id := "-" + strconv.FormatUint(tt.key.ID, 10)
			if !strings.HasSuffix(ref, id) {
				t.Errorf("Reference(%v) = %q does not end with the whole order id %q", tt.key, ref, id)
			}
			if !strings.HasPrefix(ref, "BC-") {
				t.Errorf("Reference(%v) = %q does not start with BC-", tt.key, ref)
			}
			if again := order.Reference(tt.key); again != ref {
				t.Errorf("Reference is not deterministic: %q then %q", ref, again)
			}
		})
	}
}

func TestReferenceDistinguishesOrders(t *testing.T) {
	long := strings.Repeat("s", 200)
	for _, store := range []string{"abc123", long} {
		seen := map[string]uint64{}
		for _, id := range []uint64{1, 10, 11, 100, 101, 1000, 99999, math.MaxUint64} {
			ref := order.Reference(order.Key{Store: store, ID: id})
			if other, dup := seen[ref]; dup {
				t.Errorf("orders %d and %d of store %.10s... share reference %q", other, id, store, ref)
			}
			seen[ref] = id
		}
	}
}

func ev(key string) order.Event {
	return order.Event{Key: key, Scope: "store/order/statusUpdated", ReceivedAt: time.Unix(0, 0)}
}

func evs(prefix string, n int) []order.Event {
	out := make([]order.Event, n)
	for i := range out {
		out[i] = ev(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func keys(events []order.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Key
	}
	return out
}

func TestAddEvents(t *testing.T) {
	tests := []struct {
		name      string
		have      []order.Event
		add       []order.Event
		wantAdded bool
		wantKeys  []string
	}{
		{"none to none", nil, nil, false, []string{}},
		{"first", nil, []order.Event{ev("a")}, true, []string{"a"}},
		{"already seen", []order.Event{ev("a")}, []order.Event{ev("a")}, false, []string{"a"}},
		{"one new of two", []order.Event{ev("a")}, []order.Event{ev("a"), ev("b")}, true, []string{"a", "b"}},
		{"duplicate in one call", nil, []order.Event{ev("a"), ev("b"), ev("a")}, true, []string{"a", "b"}},
		{"order kept", []order.Event{ev("c")}, []order.Event{ev("b"), ev("a")}, true, []string{"c", "b", "a"}},
		{"exactly MaxEvents", nil, evs("e", order.MaxEvents), true, keys(evs("e", order.MaxEvents))},
		{
			"over MaxEvents keeps the newest",
			evs("old", order.MaxEvents), []order.Event{ev("new1"), ev("new2")}, true,
			append(keys(evs("old", order.MaxEvents))[2:], "new1", "new2"),
		},
		{
			"many at once keeps the newest",
			[]order.Event{ev("x")}, evs("e", 3*order.MaxEvents), true,
			keys(evs("e", 3*order.MaxEvents))[2*order.MaxEvents:],
		},
		{"full and nothing new", evs("e", order.MaxEvents), []order.Event{ev("e0"), ev("e49")}, false, keys(evs("e", order.MaxEvents))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := order.New(order.Key{Store: "s", ID: 1}, time.Unix(0, 0))
			o.Events = append([]order.Event(nil), tt.have...)
			if got := o.AddEvents(tt.add...); got != tt.wantAdded {
				t.Errorf("AddEvents = %v, want %v", got, tt.wantAdded)
			}
			got := keys(o.Events)
			if len(got) > order.MaxEvents {
				t.Errorf("%d events kept, want at most %d", len(got), order.MaxEvents)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("events = %v, want %v", got, tt.wantKeys)
			}
		})
	}
}

// Trimming must copy: the dropped events' backing array must not be shared
// with a slice the caller still holds.
func TestAddEventsDoesNotAliasCallerSlice(t *testing.T) {
	o := order.New(order.Key{Store: "s", ID: 1}, time.Unix(0, 0))
	o.AddEvents(evs("e", order.MaxEvents)...)
	before := o.Events
	o.AddEvents(ev("new"))
	if before[0].Key != "e0" {
		t.Errorf("slice held before AddEvents changed: first key %q, want e0", before[0].Key)
	}
}

func TestNew(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	k := order.Key{Store: "abc", ID: 7}
	o := order.New(k, now)
	if o.Key != k || o.State != order.Received || !o.CreatedAt.Equal(now) || !o.UpdatedAt.Equal(now) {
		t.Errorf("New = %+v", o)
	}
	if o.HasSupplierOrder() {
		t.Error("a new order has a supplier order")
	}
	o.OfflineOrderID = "TW-1"
	if !o.HasSupplierOrder() {
		t.Error("an order with an offline_order_id has no supplier order")
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{order.Key{Store: "abc", ID: 7}.String(), "abc/7"},
		{order.ModeValidate.String(), "validate"},
		{order.ModeLive.String(), "live"},
		{order.ModeUnspecified.String(), "unspecified"},
		{order.Created.String(), "created"},
		{order.Ambiguous.String(), "ambiguous"},
		{order.StatusName(7), "Awaiting Payment"},
		{order.StatusName(11), "Awaiting Fulfillment"},
		{order.StatusName(99), "unknown"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
