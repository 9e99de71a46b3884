package bigcommerce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// The v2 API is loose with types: ids and quantities are numbers, but some
// numbers arrive as strings and text fields may arrive as numbers. These
// types accept either, and null, so that a change of representation does
// not stop orders.

// flexUint is a non-negative integer given as a number or a string.
type flexUint uint64

func (n *flexUint) UnmarshalJSON(b []byte) error {
	s, null, err := scalar(b)
	if err != nil || null {
		*n = 0
		return err
	}
	v, err := parseInt(s)
	if err != nil || v < 0 {
		return fmt.Errorf("not a non-negative integer: %s", b)
	}
	*n = flexUint(v)
	return nil
}

// flexInt is an integer given as a number or a string.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s, null, err := scalar(b)
	if err != nil || null {
		*n = 0
		return err
	}
	v, err := parseInt(s)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = flexInt(v)
	return nil
}

// flexBool is a boolean given as true/false, "true"/"false" or 0/1.
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	s, null, err := scalar(b)
	if err != nil || null {
		*v = false
		return err
	}
	switch strings.ToLower(s) {
	case "true", "1":
		*v = true
	case "false", "0", "":
		*v = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

// flexString is text given as a string, a number or a boolean.
type flexString string

func (v *flexString) UnmarshalJSON(b []byte) error {
	s, _, err := scalar(b)
	*v = flexString(s)
	return err
}

// scalar returns the text of a JSON string, number or boolean, and whether it
// was null.
func scalar(b []byte) (string, bool, error) {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return "", true, nil
	case len(b) > 0 && b[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		return strings.TrimSpace(s), false, err
	case len(b) > 0 && (b[0] == '{' || b[0] == '['):
		return "", false, fmt.Errorf("expected a scalar, got %.20s", b)
	}
	return string(b), false, nil
}

// parseInt accepts "12", "12.0" and "" (zero).
func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("not an integer: %q", s)
	}
	return int64(f), nil
}

// orderJSON is GET /v2/orders/{id}, the fields this service uses.
type orderJSON struct {
	ID              flexUint    `json:"id"`
	IsDeleted       flexBool    `json:"is_deleted"`
	StatusID        flexUint    `json:"status_id"`
	Status          flexString  `json:"status"`
	CustomerMessage flexString  `json:"customer_message"`
	BillingAddress  addressJSON `json:"billing_address"`
	// ItemsTotal and Consignments are what include=consignments.line_items
	// side-loads: the number of items in the order, and its consignments
	// (a link, or nothing, from a server that ignores include). They are
	// decoded apart, by contents, so that a shape this client does not
	// know costs the two requests of Contents, never the order.
	ItemsTotal   json.RawMessage `json:"items_total"`
	Consignments json.RawMessage `json:"consignments"`
}

// consignmentsJSON is an order's consignments in the object structure
// (consignment_structure=object); the legacy structure is the same object
// in an array. Gift certificates (key "email") are not read: an order with
// one is read from its own resources if items_total counts it.
type consignmentsJSON struct {
	Shipping  []json.RawMessage `json:"shipping"`
	Pickups   []json.RawMessage `json:"pickups"`
	Downloads []json.RawMessage `json:"downloads"`
}

// shippingConsignmentJSON is a shipping address (same id as in
// GET /v2/orders/{id}/shipping_addresses, and items_total the items sent
// to it) with the lines sent to it.
type shippingConsignmentJSON struct {
	addressJSON
	lineItemsJSON
}

// lineItemsJSON is a consignment's lines.
type lineItemsJSON struct {
	LineItems oneOrMany `json:"line_items"`
}

// oneOrMany is a list given as an array or as one value (BigCommerce's
// examples give a download's line_items as one object).
type oneOrMany []json.RawMessage

func (m *oneOrMany) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*m = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var list []json.RawMessage
		err := json.Unmarshal(b, &list)
		*m = list
		return err
	}
	*m = oneOrMany{append(json.RawMessage(nil), b...)}
	return nil
}

// The fields a side-loaded line and shipping consignment must have (not
// null) to be taken: every field the eligibility decision and the
// submission use. A zero value is taken; a missing one is not, since the
// API has been reported to leave fields of side-loaded items out.
var (
	sideLoadedLine     = []string{"id", "sku", "quantity", "quantity_shipped", "quantity_refunded", "order_address_id"}
	sideLoadedShipping = []string{"id", "first_name", "last_name", "company", "street_1", "street_2", "city", "state",
		"zip", "country_iso2", "phone", "email", "items_total", "line_items"}
)

// contents returns the lines and shipping address side-loaded with the
// order, and ok=false unless they are the whole order: every line in full,
// with every field the decision uses, each shipping consignment's lines
// adding up to its items_total and all lines to the order's, and exactly
// one shipping address. Anything else (a server that ignored include,
// consignments or lines as links, lines or fields left out, no address or
// several, a shape this client does not know) is read from the order's
// own resources, which is never wrong, only dearer; and so every decision
// against an order (no address, several, no line) rests on those.
func (o orderJSON) contents() (lines []order.Line, shipping []order.Address, ok bool) {
	// A total that is null (read as 0) never matches: lines must have a
	// quantity, and there must be some.
	var total flexInt
	if len(o.ItemsTotal) == 0 || json.Unmarshal(o.ItemsTotal, &total) != nil {
		return nil, nil, false
	}
	raw := bytes.TrimSpace(o.Consignments)
	if len(raw) > 0 && raw[0] == '[' {
		var legacy []json.RawMessage
		if json.Unmarshal(raw, &legacy) != nil || len(legacy) != 1 {
			return nil, nil, false
		}
		raw = legacy[0]
	}
	var c consignmentsJSON
	if len(raw) == 0 || json.Unmarshal(raw, &c) != nil {
		return nil, nil, false
	}
	seen := map[uint64]bool{}
	// add takes a consignment's lines and returns their items.
	add := func(batch oneOrMany) (int, bool) {
		n := 0
		for _, raw := range batch {
			var l lineJSON
			if !decodeWhole(raw, sideLoadedLine, &l) || l.ID == 0 || l.Quantity <= 0 || seen[uint64(l.ID)] {
				return 0, false
			}
			seen[uint64(l.ID)] = true
			lines = append(lines, l.domain())
			n += int(l.Quantity)
		}
		return n, true
	}
	items := 0
	for _, raw := range c.Shipping {
		var s shippingConsignmentJSON
		if !decodeWhole(raw, sideLoadedShipping, &s) {
			return nil, nil, false
		}
		n, ok := add(s.LineItems)
		if !ok || n != int(*s.ItemsTotal) {
			return nil, nil, false
		}
		items += n
		shipping = append(shipping, s.domain())
	}
	for _, raw := range slices.Concat(c.Pickups, c.Downloads) {
		var p lineItemsJSON
		if !decodeWhole(raw, []string{"line_items"}, &p) {
			return nil, nil, false
		}
		n, ok := add(p.LineItems)
		if !ok {
			return nil, nil, false
		}
		items += n
	}
	if len(shipping) != 1 || len(lines) == 0 || items != int(total) {
		return nil, nil, false
	}
	return lines, shipping, true
}

// decodeWhole decodes raw, a JSON object, into v if it has every one of
// fields, not null.
func decodeWhole(raw json.RawMessage, fields []string, v any) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	for _, f := range fields {
		if x, ok := m[f]; !ok || bytes.Equal(bytes.TrimSpace(x), []byte("null")) {
			return false
		}
	}
	return json.Unmarshal(raw, v) == nil
}

// lineJSON is one element of GET /v2/orders/{id}/products.
type lineJSON struct {
	ID               flexUint   `json:"id"`
	ProductID        flexUint   `json:"product_id"`
	SKU              flexString `json:"sku"`
	Name             flexString `json:"name"`
	Quantity         flexInt    `json:"quantity"`
	QuantityShipped  flexInt    `json:"quantity_shipped"`
	QuantityRefunded flexInt    `json:"quantity_refunded"`
	// QuantityBackordered is a beta field: nil when absent or null.
	QuantityBackordered *flexInt `json:"quantity_backordered"`
	OrderAddressID      flexUint `json:"order_address_id"`
	IsBundledProduct    flexBool `json:"is_bundled_product"`
}

// addressJSON is a billing address or an element of
// GET /v2/orders/{id}/shipping_addresses.
type addressJSON struct {
	ID          flexUint   `json:"id"`
	FirstName   flexString `json:"first_name"`
	LastName    flexString `json:"last_name"`
	Company     flexString `json:"company"`
	Street1     flexString `json:"street_1"`
	Street2     flexString `json:"street_2"`
	City        flexString `json:"city"`
	State       flexString `json:"state"`
	Zip         flexString `json:"zip"`
	Country     flexString `json:"country"`
	CountryISO2 flexString `json:"country_iso2"`
	Phone       flexString `json:"phone"`
	Email       flexString `json:"email"`
	// ItemsTotal is the number of items to ship to a shipping address
	// (nil when absent): the check of an order's lines cut short by a 404.
	ItemsTotal *flexInt `json:"items_total"`
}

func (a addressJSON) domain() order.Address {
	return order.Address{
		ID:          uint64(a.ID),
		FirstName:   string(a.FirstName),
		LastName:    string(a.LastName),
		Company:     string(a.Company),
		Street1:     string(a.Street1),
		Street2:     string(a.Street2),
		City:        string(a.City),
		State:       string(a.State),
		Zip:         string(a.Zip),
		Country:     string(a.Country),
		CountryISO2: string(a.CountryISO2),
		Phone:       string(a.Phone),
		Email:       string(a.Email),
	}
}

func (l lineJSON) domain() order.Line {
	line := order.Line{
		ID:               uint64(l.ID),
		ProductID:        uint64(l.ProductID),
		SKU:              string(l.SKU),
		Name:             string(l.Name),
		Quantity:         int(l.Quantity),
		QuantityShipped:  int(l.QuantityShipped),
		QuantityRefunded: int(l.QuantityRefunded),
		OrderAddressID:   uint64(l.OrderAddressID),
		IsBundledProduct: bool(l.IsBundledProduct),
	}
	if l.QuantityBackordered != nil {
		q := int(*l.QuantityBackordered)
		line.QuantityBackordered = &q
	}
	return line
}

// metafieldJSON is one v3 order metafield.
type metafieldJSON struct {
	ID            flexUint   `json:"id"`
	Namespace     flexString `json:"namespace"`
	Key           flexString `json:"key"`
	Value         flexString `json:"value"`
	PermissionSet flexString `json:"permission_set,omitempty"`
	Description   flexString `json:"description,omitempty"`
}

// metafieldsJSON is the v3 list envelope.
type metafieldsJSON struct {
	Data []metafieldJSON `json:"data"`
	Meta struct {
		Pagination struct {
			CurrentPage flexInt `json:"current_page"`
			TotalPages  flexInt `json:"total_pages"`
		} `json:"pagination"`
	} `json:"meta"`
}

// metafieldWrite is the body of POST and PUT /v3/orders/{id}/metafields.
type metafieldWrite struct {
	PermissionSet string `json:"permission_set"`
	Namespace     string `json:"namespace"`
	Key           string `json:"key"`
	Value         string `json:"value"`
	Description   string `json:"description"`
}
