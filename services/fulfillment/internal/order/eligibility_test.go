package order_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

func ukAddress() order.Address {
	return order.Address{
		ID: 9, FirstName: "Ada", LastName: "Lovelace", Company: "Analytical Ltd",
		Street1: "1 Engine Row", Street2: "Flat 2", City: "London", State: "Greater London",
		Zip: "N1 9GU", Country: "United Kingdom", CountryISO2: "GB",
		Phone: "+44 20 7946 0000", Email: "ada@example.com",
	}
}

func line(sku string, qty, shipped, refunded int) order.Line {
	return order.Line{SKU: sku, Quantity: qty, QuantityShipped: shipped, QuantityRefunded: refunded}
}

func TestPolicyDecide(t *testing.T) {
	key := order.Key{Store: "abc123", ID: 100}
	base := func(mod func(*order.StorefrontOrder)) order.StorefrontOrder {
		o := order.StorefrontOrder{
			ID: 100, StatusID: 11, Status: "Awaiting Fulfillment",
			Lines:    []order.Line{line("SKU-1", 2, 0, 0)},
			Shipping: []order.Address{ukAddress()},
		}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		name   string
		policy order.Policy
		order  order.StorefrontOrder
		// Either a reason (every fragment must appear) or the lines sent.
		reason    []string
		wantLines []order.SupplierLine
	}{
		{
			name: "awaiting payment", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.StatusID = 7 }),
			reason: []string{"7", "Awaiting Payment"},
		},
		{
			name: "unknown status", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.StatusID = 99 }),
			reason: []string{"99", "not eligible"},
		},
		{
			name: "awaiting fulfillment UK", policy: order.DefaultPolicy(), order: base(nil),
			wantLines: []order.SupplierLine{{ProductCode: "SKU-1", Quantity: 2}},
		},
		{
			name: "other eligible status", policy: order.Policy{EligibleStatuses: []uint32{9, 11}, Countries: []string{"GB"}},
			order:     base(func(o *order.StorefrontOrder) { o.StatusID = 9 }),
			wantLines: []order.SupplierLine{{ProductCode: "SKU-1", Quantity: 2}},
		},
		{
			name: "quantities: ordered minus shipped minus refunded", policy: order.DefaultPolicy(),
			order: base(func(o *order.StorefrontOrder) {
				o.Lines = []order.Line{
					line("A", 5, 1, 1),  // 3 left
					line("B", 2, 2, 0),  // all shipped: dropped
					line("C", 2, 0, 2),  // all refunded: dropped
					line("D", 0, 0, 0),  // zero quantity: dropped
					line("E", 1, 0, 3),  // over-refunded: dropped
					line("F", 1, 0, 0),  // 1
					line("  ", 4, 0, 0), // no SKU: dropped
				}
			}),
			wantLines: []order.SupplierLine{{ProductCode: "A", Quantity: 3}, {ProductCode: "F", Quantity: 1}},
		},
		{
			name: "duplicate SKUs merged in first-seen order", policy: order.DefaultPolicy(),
			order: base(func(o *order.StorefrontOrder) {
				o.Lines = []order.Line{line("A", 1, 0, 0), line("B", 2, 0, 0), line(" A ", 3, 1, 0), line("B", 1, 1, 0)}
			}),
			wantLines: []order.SupplierLine{{ProductCode: "A", Quantity: 3}, {ProductCode: "B", Quantity: 2}},
		},
		{
			name: "non-GB country", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.Shipping[0].CountryISO2 = "FR" }),
			reason: []string{`"FR"`, "GB"},
		},
		{
			name: "no country", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.Shipping[0].CountryISO2 = "" }),
			reason: []string{"country"},
		},
		{
			name: "lower-case gb accepted", policy: order.DefaultPolicy(),
			order:     base(func(o *order.StorefrontOrder) { o.Shipping[0].CountryISO2 = " gb " }),
			wantLines: []order.SupplierLine{{ProductCode: "SKU-1", Quantity: 2}},
		},
		{
			name: "several shipping addresses", policy: order.DefaultPolicy(),
			order: base(func(o *order.StorefrontOrder) {
				o.Shipping = append(o.Shipping, ukAddress())
			}),
			reason: []string{"2 addresses"},
		},
		{
			name: "no shipping address", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.Shipping = nil }),
			reason: []string{"no shipping address"},
		},
		{
			name: "SKU prefix filters and strips", policy: order.Policy{EligibleStatuses: []uint32{11}, Countries: []string{"GB"}, SKUPrefix: "TW-"},
			order: base(func(o *order.StorefrontOrder) {
				o.Lines = []order.Line{
					line("TW-100", 1, 0, 0),
					line("OWN-1", 5, 0, 0),    // not the supplier's
					line("tw-200", 1, 0, 0),   // prefix is case-sensitive
					line(" TW-300 ", 2, 0, 0), // trimmed before matching
					line("TW-", 1, 0, 0),      // nothing after the prefix
					line("XTW-400", 1, 0, 0),  // prefix only at the start
					line("TW-100", 2, 0, 0),   // merged after stripping
				}
			}),
			wantLines: []order.SupplierLine{{ProductCode: "100", Quantity: 3}, {ProductCode: "300", Quantity: 2}},
		},
		{
			name: "SKU prefix matches no line", policy: order.Policy{EligibleStatuses: []uint32{11}, Countries: []string{"GB"}, SKUPrefix: "TW-"},
			order:  base(func(o *order.StorefrontOrder) { o.Lines = []order.Line{line("OWN-1", 1, 0, 0)} }),
			reason: []string{"no line"},
		},
		{
			name: "no lines at all", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.Lines = nil }),
			reason: []string{"no line"},
		},
		{
			name: "every line shipped", policy: order.DefaultPolicy(),
			order:  base(func(o *order.StorefrontOrder) { o.Lines = []order.Line{line("A", 2, 2, 0)} }),
			reason: []string{"no line"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, reason := tt.policy.Decide(key, tt.order)
			if tt.reason != nil {
				if reason == "" {
					t.Fatalf("Decide = %+v with no reason; want a reason", sub)
				}
				for _, frag := range tt.reason {
					if !strings.Contains(reason, frag) {
						t.Errorf("reason %q does not mention %q", reason, frag)
					}
				}
				if !reflect.DeepEqual(sub, order.Submission{}) {
					t.Errorf("submission with a reason: %+v", sub)
				}
				return
			}
			if reason != "" {
				t.Fatalf("Decide reason = %q, want a submission", reason)
			}
			if !reflect.DeepEqual(sub.Lines, tt.wantLines) {
				t.Errorf("lines = %+v, want %+v", sub.Lines, tt.wantLines)
			}
			if sub.Reference != order.Reference(key) {
				t.Errorf("reference = %q, want %q", sub.Reference, order.Reference(key))
			}
			if sub.Delivery.CountryCode != "GB" {
				t.Errorf("country code = %q, want GB", sub.Delivery.CountryCode)
			}
		})
	}
}

func TestPolicyDecideDelivery(t *testing.T) {
	key := order.Key{Store: "abc123", ID: 100}
	tests := []struct {
		name string
		addr func(*order.Address)
		want order.Delivery
	}{
		{
			name: "every field",
			want: order.Delivery{
				Name: "Ada Lovelace", Company: "Analytical Ltd", Line1: "1 Engine Row", Line2: "Flat 2",
				City: "London", County: "Greater London", Postcode: "N1 9GU", CountryCode: "GB",
				Phone: "+44 20 7946 0000", Email: "ada@example.com",
			},
		},
		{
			name: "first name only, lower-case country",
			addr: func(a *order.Address) { a.LastName, a.CountryISO2, a.Company, a.Street2 = "", "gb", "", "" },
			want: order.Delivery{
				Name: "Ada", Line1: "1 Engine Row", City: "London", County: "Greater London",
				Postcode: "N1 9GU", CountryCode: "GB", Phone: "+44 20 7946 0000", Email: "ada@example.com",
			},
		},
		{
			name: "last name only",
			addr: func(a *order.Address) { a.FirstName = "" },
			want: order.Delivery{
				Name: "Lovelace", Company: "Analytical Ltd", Line1: "1 Engine Row", Line2: "Flat 2",
				City: "London", County: "Greater London", Postcode: "N1 9GU", CountryCode: "GB",
				Phone: "+44 20 7946 0000", Email: "ada@example.com",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := ukAddress()
			if tt.addr != nil {
				tt.addr(&addr)
			}
			o := order.StorefrontOrder{
				ID: 100, StatusID: 11, Lines: []order.Line{line("A", 1, 0, 0)},
				Shipping: []order.Address{addr},
			}
			sub, reason := order.DefaultPolicy().Decide(key, o)
			if reason != "" {
				t.Fatalf("Decide reason = %q", reason)
			}
			if sub.Delivery != tt.want {
				t.Errorf("delivery = %+v\nwant       %+v", sub.Delivery, tt.want)
			}
			if !strings.Contains(sub.Notes, "100") {
				t.Errorf("notes %q do not name the order", sub.Notes)
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	want := order.Policy{EligibleStatuses: []uint32{11}, Countries: []string{"GB"}}
	if got := order.DefaultPolicy(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultPolicy() = %+v, want %+v", got, want)
	}
}
