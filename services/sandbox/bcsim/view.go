package bcsim

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DateFormat is how BigCommerce v2 writes dates: RFC 2822 / RFC 1123 with a
// numeric zone, e.g. "Tue, 20 Nov 2012 00:00:00 +0000".
const DateFormat = time.RFC1123Z

// orderView is the v2 order resource as BigCommerce serves it: lines and
// shipping addresses are links to their sub-resources, not arrays.
type orderView struct {
	ID                uint64      `json:"id"`
	CustomerID        uint64      `json:"customer_id"`
	DateCreated       string      `json:"date_created"`
	DateModified      string      `json:"date_modified"`
	DateShipped       string      `json:"date_shipped"`
	StatusID          uint32      `json:"status_id"`
	Status            string      `json:"status"`
	SubtotalExTax     string      `json:"subtotal_ex_tax"`
	SubtotalIncTax    string      `json:"subtotal_inc_tax"`
	TotalExTax        string      `json:"total_ex_tax"`
	TotalIncTax       string      `json:"total_inc_tax"`
	ItemsTotal        uint32      `json:"items_total"`
	ItemsShipped      uint32      `json:"items_shipped"`
	PaymentMethod     string      `json:"payment_method"`
	CurrencyCode      string      `json:"currency_code"`
	CustomerMessage   string      `json:"customer_message"`
	StaffNotes        string      `json:"staff_notes"`
	BillingAddress    billingView `json:"billing_address"`
	IsDeleted         bool        `json:"is_deleted"`
	OrderSource       string      `json:"order_source"`
	ChannelID         int         `json:"channel_id"`
	Products          link        `json:"products"`
	ShippingAddresses link        `json:"shipping_addresses"`
	Coupons           link        `json:"coupons"`
	// Consignments is there only when asked for with include (see
	// consignments).
	Consignments any `json:"consignments,omitempty"`
}

type billingView struct {
	Address
	FormFields []any `json:"form_fields"`
}

// link is how a v2 resource points at a sub-resource.
type link struct {
	URL      string `json:"url"`
	Resource string `json:"resource"`
}

// link points at the v2 resource res (e.g. "/orders/1/products") of the
// request's store.
func (s *Server) link(r *http.Request, res string) link {
	return link{URL: s.baseURL(r) + "/stores/" + r.PathValue("store") + "/v2" + res, Resource: res}
}

func (s *Server) orderView(r *http.Request, o *Order) orderView {
	var total, shipped uint32
	for _, p := range o.Products {
		total += p.Quantity
		shipped += p.QuantityShipped
	}
	sub := func(name string) link { return s.link(r, fmt.Sprintf("/orders/%d/%s", o.ID, name)) }
	return orderView{
		ID:                o.ID,
		CustomerID:        o.CustomerID,
		DateCreated:       o.DateCreated.UTC().Format(DateFormat),
		DateModified:      o.DateModified.UTC().Format(DateFormat),
		StatusID:          o.StatusID,
		Status:            StatusName(o.StatusID),
		SubtotalExTax:     o.SubtotalExTax,
		SubtotalIncTax:    o.SubtotalIncTax,
		TotalExTax:        o.TotalExTax,
		TotalIncTax:       o.TotalIncTax,
		ItemsTotal:        total,
		ItemsShipped:      shipped,
		PaymentMethod:     o.PaymentMethod,
		CurrencyCode:      o.CurrencyCode,
		CustomerMessage:   o.CustomerMessage,
		StaffNotes:        o.StaffNotes,
		BillingAddress:    billingView{Address: o.BillingAddress, FormFields: []any{}},
		IsDeleted:         o.IsDeleted,
		OrderSource:       "www",
		ChannelID:         1,
		Products:          sub("products"),
		ShippingAddresses: sub("shipping_addresses"),
		Coupons:           sub("coupons"),
	}
}

// consignmentsView is an order's consignments in the object structure
// (consignment_structure=object): one shipping consignment per shipping
// address with the lines sent to it, no pickups, the lines sent to no
// address as a download, and no gift certificates.
type consignmentsView struct {
	Shipping  []shippingConsignmentView `json:"shipping"`
	Pickups   []any                     `json:"pickups"`
	Downloads []downloadConsignmentView `json:"downloads"`
	Email     emailConsignmentView      `json:"email"`
}

// shippingConsignmentView is a shipping address as a consignment: its
// money as numbers, where the shipping address resource has strings.
type shippingConsignmentView struct {
	ID uint64 `json:"id"`
	Address
	ShippingMethod string  `json:"shipping_method"`
	ItemsTotal     uint32  `json:"items_total"`
	ItemsShipped   uint32  `json:"items_shipped"`
	BaseCost       float64 `json:"base_cost"`
	CostExTax      float64 `json:"cost_ex_tax"`
	CostIncTax     float64 `json:"cost_inc_tax"`
	FormFields     []any   `json:"form_fields"`
	ShippingQuotes link    `json:"shipping_quotes"`
	LineItems      []any   `json:"line_items"`
}

type emailConsignmentView struct {
	GiftCertificates []any `json:"gift_certificates"`
}

type downloadConsignmentView struct {
	RecipientEmail string `json:"recipient_email"`
	LineItems      []any  `json:"line_items"`
}

// consignments answers include=consignments (lines as links to
// /orders/{id}/products/{line id}) and include=consignments.line_items
// (lines in full, every one, as /products serves them), in the object
// structure when consignment_structure=object asks for it and otherwise in
// the legacy one, the same object in an array. It returns nil when include
// asks for neither.
func (s *Server) consignments(r *http.Request, o *Order) any {
	var lines, asked bool
	for _, v := range strings.Split(strings.Join(r.URL.Query()["include"], ","), ",") {
		switch strings.TrimSpace(v) {
		case "consignments.line_items":
			lines, asked = true, true
		case "consignments":
			asked = true
		}
	}
	if !asked {
		return nil
	}
	items := func(match func(p *Product) bool) []any {
		out := []any{}
		for i := range o.Products {
			p := &o.Products[i]
			if !match(p) {
				continue
			}
			if lines {
				out = append(out, *p)
				continue
			}
			res := fmt.Sprintf("/orders/%d/products/%d", o.ID, p.ID)
			out = append(out, s.link(r, res))
		}
		return out
	}
	c := consignmentsView{Shipping: []shippingConsignmentView{}, Pickups: []any{},
		Downloads: []downloadConsignmentView{}, Email: emailConsignmentView{GiftCertificates: []any{}}}
	shipped := map[uint64]bool{}
	money := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	for _, a := range o.ShippingAddresses {
		shipped[a.ID] = true
		total, sent := itemsTo(o, a.ID)
		res := fmt.Sprintf("/orders/%d/consignments/shipping/%d/shipping_quotes", o.ID, a.ID)
		c.Shipping = append(c.Shipping, shippingConsignmentView{
			ID: a.ID, Address: a.Address, ShippingMethod: a.ShippingMethod,
			ItemsTotal: total, ItemsShipped: sent,
			BaseCost: money(a.BaseCost), CostExTax: money(a.CostExTax), CostIncTax: money(a.CostIncTax), FormFields: []any{},
			ShippingQuotes: s.link(r, res),
			LineItems:      items(func(p *Product) bool { return p.OrderAddressID == a.ID }),
		})
	}
	if rest := items(func(p *Product) bool { return !shipped[p.OrderAddressID] }); len(rest) > 0 {
		c.Downloads = []downloadConsignmentView{{RecipientEmail: o.BillingAddress.Email, LineItems: rest}}
	}
	if r.URL.Query().Get("consignment_structure") == "object" {
		return c
	}
	return []consignmentsView{c}
}

// Layouts ParseDate accepts: BigCommerce's own RFC 2822 form and the ISO
// 8601 forms its documentation allows in date filters.
var dateLayouts = []string{
	time.RFC1123Z,
	time.RFC1123,
	"Mon, 2 Jan 2006 15:04:05 -0700",
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// unescapedPlus matches a zone offset whose '+' arrived as a space, which is
// what happens when a client puts "+0000" in a query string unescaped.
var unescapedPlus = regexp.MustCompile(`(\d\d:\d\d(?::\d\d(?:\.\d+)?)?)( ?) (\d\d:?\d\d)$`)

// ParseDate parses a date filter value in RFC 2822 or ISO 8601 form. A date
// without a zone is taken as UTC.
func ParseDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	candidates := []string{v}
	if fixed := unescapedPlus.ReplaceAllString(v, "$1$2+$3"); fixed != v {
		candidates = append(candidates, fixed)
	}
	for _, c := range candidates {
		for _, layout := range dateLayouts {
			if t, err := time.Parse(layout, c); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("bcsim: unrecognised date %q", v)
}
