package order

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// StorefrontOrder is what the BigCommerce Orders API says of an order. Nothing
// but the order id and store is ever taken from a webhook.
type StorefrontOrder struct {
	ID uint64
	// Archived is BigCommerce's is_deleted: the merchant archived
	// ("deleted") the order, which the API still returns.
	Archived        bool
	StatusID        uint32
	Status          string
	CustomerMessage string
	Billing         Address
	Lines           []Line
	Shipping        []Address
	// ContentsRead: Lines and Shipping came with the order itself (one
	// request where the API side-loads them); otherwise they are read
	// apart, once the order's status makes them worth reading.
	ContentsRead bool
}

// Modified is what the Orders API list says of an order: enough to know
// that it changed, and when.
type Modified struct {
	ID           uint64
	StatusID     uint32
	DateModified time.Time
}

// Line is one order line (BigCommerce order product).
type Line struct {
	ID                  uint64
	ProductID           uint64
	SKU                 string
	Name                string
	Quantity            int
	QuantityShipped     int
	QuantityRefunded    int
	QuantityBackordered *int // beta field: nil when absent
	OrderAddressID      uint64
	IsBundledProduct    bool
}

// Address is a BigCommerce billing or shipping address.
type Address struct {
	ID          uint64
	FirstName   string
	LastName    string
	Company     string
	Street1     string
	Street2     string
	City        string
	State       string
	Zip         string
	Country     string
	CountryISO2 string
	Phone       string
	Email       string
}

// Submission is what is sent to the supplier for one order.
type Submission struct {
	Reference string
	Delivery  Delivery
	Lines     []SupplierLine
	Notes     string
}

// Delivery is the supplier's delivery address.
type Delivery struct {
	Name        string
	Company     string
	Line1       string
	Line2       string
	City        string
	County      string
	Postcode    string
	CountryCode string
	Phone       string
	Email       string
}

// SupplierLine is one product line for the supplier.
type SupplierLine struct {
	ProductCode string
	Quantity    int
}

// Policy decides which orders, lines and destinations go to the supplier.
type Policy struct {
	// EligibleStatuses are the BigCommerce status ids that may be sent
	// (default: 11, Awaiting Fulfillment).
	EligibleStatuses []uint32
	// Countries are the ISO 3166-1 alpha-2 delivery countries the supplier
	// ships to (default: GB).
	Countries []string
	// SKUPrefix, when set, marks the supplier's lines: only lines whose SKU
	// starts with it are sent, with the prefix removed.
	SKUPrefix string
}

// DefaultPolicy is status 11 and UK delivery, every line.
func DefaultPolicy() Policy {
	return Policy{EligibleStatuses: []uint32{11}, Countries: []string{"GB"}}
}

// statusNames are BigCommerce's order status ids, for readable reasons.
var statusNames = map[uint32]string{
	0: "Incomplete", 1: "Pending", 2: "Shipped", 3: "Partially Shipped", 4: "Refunded",
	5: "Cancelled", 6: "Declined", 7: "Awaiting Payment", 8: "Awaiting Pickup",
	9: "Awaiting Shipment", 10: "Completed", 11: "Awaiting Fulfillment",
	12: "Manual Verification Required", 13: "Disputed", 14: "Partially Refunded",
}

// StatusName returns BigCommerce's name of a status id.
func StatusName(id uint32) string {
	if n, ok := statusNames[id]; ok {
		return n
	}
	return "unknown"
}

// StatusReason returns why an order is not for the supplier now, from what
// the order itself says (archived, or its status), or "" when it may be. It
// needs only the order itself, so an order in another status is decided
// before its lines and addresses are read.
func (p Policy) StatusReason(o StorefrontOrder) string {
	if o.Archived {
		return "the order is archived (deleted) in BigCommerce"
	}
	if slices.Contains(p.EligibleStatuses, o.StatusID) {
		return ""
	}
	return fmt.Sprintf("status %d (%s) is not eligible; eligible: %v",
		o.StatusID, StatusName(o.StatusID), p.EligibleStatuses)
}

// Decide returns the submission for an order, or a non-empty reason why the
// order is not for the supplier now.
func (p Policy) Decide(k Key, o StorefrontOrder) (Submission, string) {
	if reason := p.StatusReason(o); reason != "" {
		return Submission{}, reason
	}
	if len(o.Shipping) == 0 {
		return Submission{}, "order has no shipping address"
	}
	if len(o.Shipping) > 1 {
		return Submission{}, fmt.Sprintf("order ships to %d addresses; the supplier takes one per order", len(o.Shipping))
	}
	addr := o.Shipping[0]
	country := strings.ToUpper(strings.TrimSpace(addr.CountryISO2))
	if !slices.Contains(p.Countries, country) {
		return Submission{}, fmt.Sprintf("delivery country %q is not shipped by the supplier; allowed: %v", country, p.Countries)
	}
	var lines []SupplierLine
	index := map[string]int{}
	for _, l := range o.Lines {
		code := strings.TrimSpace(l.SKU)
		if p.SKUPrefix != "" {
			if !strings.HasPrefix(code, p.SKUPrefix) {
				continue
			}
			code = strings.TrimPrefix(code, p.SKUPrefix)
		}
		qty := l.Quantity - l.QuantityShipped - l.QuantityRefunded
		if code == "" || qty <= 0 {
			continue
		}
		if i, ok := index[code]; ok {
			lines[i].Quantity += qty
			continue
		}
		index[code] = len(lines)
		lines = append(lines, SupplierLine{ProductCode: code, Quantity: qty})
	}
	if len(lines) == 0 {
		return Submission{}, "no line of the order is shipped by the supplier"
	}
	name := strings.TrimSpace(addr.FirstName + " " + addr.LastName)
	return Submission{
		Reference: Reference(k),
		Delivery: Delivery{
			Name: name, Company: addr.Company, Line1: addr.Street1, Line2: addr.Street2,
			City: addr.City, County: addr.State, Postcode: addr.Zip, CountryCode: country,
			Phone: addr.Phone, Email: addr.Email,
		},
		Lines: lines,
		Notes: fmt.Sprintf("BigCommerce order %d", k.ID),
	}, ""
}
