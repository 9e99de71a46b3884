package bcsim

import (
	"fmt"
	"net/http"
	"regexp"
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

func (s *Server) orderView(r *http.Request, o *Order) orderView {
	var total, shipped uint32
	for _, p := range o.Products {
		total += p.Quantity
		shipped += p.QuantityShipped
	}
	sub := func(name string) link {
		res := fmt.Sprintf("/orders/%d/%s", o.ID, name)
		return link{URL: s.baseURL(r) + "/stores/" + r.PathValue("store") + "/v2" + res, Resource: res}
	}
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
