package bcsim

import (
	"fmt"
	"strconv"
	"strings"
)

// Line describes one order line for NewUKOrder.
type Line struct {
	SKU      string
	Name     string // default: derived from the SKU
	Quantity uint32 // default 1
	Price    string // unit price including VAT, like "12.0000"; default (also for a malformed price) "12.0000"
	// Backordered, when set, fills the line's quantity_backordered.
	Backordered *uint32
}

// Lines returns n lines with SKUs APP001, APP002, ... and quantities 1 to 3,
// enough to exercise paging of order products.
func Lines(n int) []Line {
	lines := make([]Line, n)
	for i := range lines {
		lines[i] = Line{SKU: fmt.Sprintf("APP%03d", i+1), Quantity: uint32(i%3 + 1)}
	}
	return lines
}

// NewUKOrder returns a realistic order of a UK customer: billing and one
// shipping address in Leeds (GB), prices in GBP including 20 % VAT, and one
// product line per Line. Pass it to AddOrder; an id of 0 lets the store
// assign one.
func NewUKOrder(id uint64, statusID uint32, lines ...Line) Order {
	addr := Address{
		FirstName: "Jo", LastName: "Bloggs", Company: "",
		Street1: "1 High St", Street2: "Flat 2", City: "Leeds", State: "West Yorkshire",
		Zip: "LS1 1AA", Country: "United Kingdom", CountryISO2: "GB",
		Phone: "01130000000", Email: "jo@example.com",
	}
	o := Order{
		ID: id, CustomerID: 1, StatusID: statusID,
		CurrencyCode: "GBP", PaymentMethod: "Credit Card",
		BillingAddress: addr,
		ShippingAddresses: []ShippingAddress{{
			Address:        addr,
			ShippingMethod: "Royal Mail Tracked 48",
			BaseCost:       "3.9900", CostExTax: "3.3250", CostIncTax: "3.9900",
		}},
	}
	var subtotal int64
	for i, l := range lines {
		p := lineProduct(i, l)
		total, _ := parseMoney(p.TotalIncTax)
		subtotal += total
		o.Products = append(o.Products, p)
	}
	const shipping = 39900 // 3.99
	o.SubtotalIncTax, o.SubtotalExTax = formatMoney(subtotal), formatMoney(exVAT(subtotal))
	o.TotalIncTax, o.TotalExTax = formatMoney(subtotal+shipping), formatMoney(exVAT(subtotal+shipping))
	return o
}

func lineProduct(i int, l Line) Product {
	if l.Quantity == 0 {
		l.Quantity = 1
	}
	if l.Name == "" {
		l.Name = "Sports supplement " + l.SKU
	}
	unit, ok := parseMoney(l.Price)
	if !ok {
		unit = 120000
	}
	total := unit * int64(l.Quantity)
	return Product{
		ProductID:           uint64(1000 + i),
		VariantID:           uint64(2000 + i),
		Name:                l.Name,
		SKU:                 l.SKU,
		BasePrice:           formatMoney(unit),
		PriceIncTax:         formatMoney(unit),
		PriceExTax:          formatMoney(exVAT(unit)),
		TotalIncTax:         formatMoney(total),
		TotalExTax:          formatMoney(exVAT(total)),
		Quantity:            l.Quantity,
		QuantityBackordered: l.Backordered,
	}
}

// Money is kept in ten-thousandths, BigCommerce's four decimal places.
func parseMoney(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 4 {
		return 0, false
	}
	frac = (frac + "0000")[:4]
	w, err1 := strconv.ParseUint(whole, 10, 32)
	f, err2 := strconv.ParseUint(frac, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return int64(w)*10000 + int64(f), true
}

func formatMoney(v int64) string { return fmt.Sprintf("%d.%04d", v/10000, v%10000) }

// exVAT removes UK VAT at 20 %, rounding to the nearest unit.
func exVAT(v int64) int64 { return (v*5 + 3) / 6 }
