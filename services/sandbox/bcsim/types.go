package bcsim

import (
	"slices"
	"time"
)

// Order is an order as the simulator keeps it. Unlike the API's order
// resource, it holds its lines and shipping addresses inline; the API serves
// them from their own sub-resources, as BigCommerce does. Its JSON form is
// what POST /_sim/orders accepts (dates in RFC 3339).
type Order struct {
	ID              uint64 `json:"id"`
	CustomerID      uint64 `json:"customer_id"`
	StatusID        uint32 `json:"status_id"`
	CustomerMessage string `json:"customer_message"`
	StaffNotes      string `json:"staff_notes"`
	// IsDeleted is an archived order: BigCommerce's DELETE archives an
	// order, which the API then returns with is_deleted true.
	IsDeleted     bool      `json:"is_deleted,omitempty"`
	DateCreated   time.Time `json:"date_created,omitzero"`
	DateModified  time.Time `json:"date_modified,omitzero"`
	CurrencyCode  string    `json:"currency_code"`
	PaymentMethod string    `json:"payment_method"`
	// Money as BigCommerce writes it: decimal strings with four places.
	SubtotalExTax  string `json:"subtotal_ex_tax"`
	SubtotalIncTax string `json:"subtotal_inc_tax"`
	TotalExTax     string `json:"total_ex_tax"`
	TotalIncTax    string `json:"total_inc_tax"`

	BillingAddress    Address           `json:"billing_address"`
	Products          []Product         `json:"products"`
	ShippingAddresses []ShippingAddress `json:"shipping_addresses"`
}

// Address is BigCommerce's address block, shared by billing and shipping
// addresses.
type Address struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	Company     string `json:"company"`
	Street1     string `json:"street_1"`
	Street2     string `json:"street_2"`
	City        string `json:"city"`
	State       string `json:"state"`
	Zip         string `json:"zip"`
	Country     string `json:"country"`
	CountryISO2 string `json:"country_iso2"`
	Phone       string `json:"phone"`
	Email       string `json:"email"`
}

// ShippingAddress is one of an order's delivery destinations.
type ShippingAddress struct {
	ID      uint64 `json:"id"`
	OrderID uint64 `json:"order_id"`
	Address
	ShippingMethod string `json:"shipping_method"`
	// ItemsTotal and ItemsShipped are computed from the lines sent to this
	// address whenever the address is served, so seeds stay consistent.
	ItemsTotal   uint32 `json:"items_total"`
	ItemsShipped uint32 `json:"items_shipped"`
	BaseCost     string `json:"base_cost"`
	CostExTax    string `json:"cost_ex_tax"`
	CostIncTax   string `json:"cost_inc_tax"`
	FormFields   []any  `json:"form_fields"`
}

// Product is one order line (BigCommerce calls them order products).
type Product struct {
	ID                   uint64          `json:"id"`
	OrderID              uint64          `json:"order_id"`
	ProductID            uint64          `json:"product_id"`
	VariantID            uint64          `json:"variant_id"`
	OrderAddressID       uint64          `json:"order_address_id"`
	Name                 string          `json:"name"`
	SKU                  string          `json:"sku"`
	Type                 string          `json:"type"`
	BasePrice            string          `json:"base_price"`
	PriceExTax           string          `json:"price_ex_tax"`
	PriceIncTax          string          `json:"price_inc_tax"`
	TotalExTax           string          `json:"total_ex_tax"`
	TotalIncTax          string          `json:"total_inc_tax"`
	Quantity             uint32          `json:"quantity"`
	QuantityShipped      uint32          `json:"quantity_shipped"`
	QuantityRefunded     uint32          `json:"quantity_refunded"`
	IsRefunded           bool            `json:"is_refunded"`
	IsBundledProduct     bool            `json:"is_bundled_product"`
	ParentOrderProductID *uint64         `json:"parent_order_product_id"`
	ProductOptions       []ProductOption `json:"product_options"`
	// QuantityBackordered is BigCommerce's backorder beta field: nil leaves it
	// out of the JSON, as on stores without the beta.
	QuantityBackordered *uint32 `json:"quantity_backordered,omitempty"`
}

// ProductOption is a chosen option of an order line (flavour, size).
type ProductOption struct {
	ID              uint64 `json:"id"`
	OptionID        uint64 `json:"option_id"`
	OrderProductID  uint64 `json:"order_product_id"`
	ProductOptionID uint64 `json:"product_option_id"`
	DisplayName     string `json:"display_name"`
	DisplayValue    string `json:"display_value"`
	Value           string `json:"value"`
	Type            string `json:"type"`
	Name            string `json:"name"`
	DisplayStyle    string `json:"display_style"`
}

// Metafield is a v3 order metafield.
type Metafield struct {
	ID            uint64    `json:"id"`
	Namespace     string    `json:"namespace"`
	Key           string    `json:"key"`
	Value         string    `json:"value"`
	PermissionSet string    `json:"permission_set"`
	Description   string    `json:"description"`
	ResourceType  string    `json:"resource_type"`
	ResourceID    uint64    `json:"resource_id"`
	DateCreated   time.Time `json:"date_created"`
	DateModified  time.Time `json:"date_modified"`
}

// Change is a state change that BigCommerce would announce with a webhook.
type Change struct {
	Scope        string // e.g. "store/order/statusUpdated"
	Store        string // store hash
	OrderID      uint64
	PrevStatusID uint32 // set for store/order/statusUpdated
	NewStatusID  uint32
}

// Webhook scopes the simulator reports through Options.OnChange.
const (
	ScopeCreated       = "store/order/created"
	ScopeUpdated       = "store/order/updated"
	ScopeStatusUpdated = "store/order/statusUpdated"
)

// Order status ids, as BigCommerce numbers them.
const (
	StatusIncomplete          uint32 = 0
	StatusPending             uint32 = 1
	StatusShipped             uint32 = 2
	StatusPartiallyShipped    uint32 = 3
	StatusRefunded            uint32 = 4
	StatusCancelled           uint32 = 5
	StatusDeclined            uint32 = 6
	StatusAwaitingPayment     uint32 = 7
	StatusAwaitingPickup      uint32 = 8
	StatusAwaitingShipment    uint32 = 9
	StatusCompleted           uint32 = 10
	StatusAwaitingFulfillment uint32 = 11
	StatusManualVerification  uint32 = 12
	StatusDisputed            uint32 = 13
	StatusPartiallyRefunded   uint32 = 14
)

var statusNames = [...]string{
	"Incomplete", "Pending", "Shipped", "Partially Shipped", "Refunded",
	"Cancelled", "Declined", "Awaiting Payment", "Awaiting Pickup",
	"Awaiting Shipment", "Completed", "Awaiting Fulfillment",
	"Manual Verification Required", "Disputed", "Partially Refunded",
}

// StatusName returns BigCommerce's name of a status id, or "" for an
// unknown id.
func StatusName(id uint32) string {
	if int(id) < len(statusNames) {
		return statusNames[id]
	}
	return ""
}

func validStatus(id uint32) bool { return int(id) < len(statusNames) }

// clone returns a deep copy, so callers never share slices with the
// simulator's state.
func (o *Order) clone() Order {
	c := *o
	c.Products = make([]Product, len(o.Products))
	for i, p := range o.Products {
		c.Products[i] = p.clone()
	}
	c.ShippingAddresses = make([]ShippingAddress, len(o.ShippingAddresses))
	for i, a := range o.ShippingAddresses {
		a.FormFields = slices.Clone(a.FormFields)
		c.ShippingAddresses[i] = a
	}
	return c
}

func (p Product) clone() Product {
	p.ProductOptions = slices.Clone(p.ProductOptions)
	if p.ParentOrderProductID != nil {
		v := *p.ParentOrderProductID
		p.ParentOrderProductID = &v
	}
	if p.QuantityBackordered != nil {
		v := *p.QuantityBackordered
		p.QuantityBackordered = &v
	}
	return p
}
