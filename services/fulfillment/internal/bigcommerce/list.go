package bigcommerce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// modifiedJSON is what the sweep reads of one element of GET /v2/orders.
type modifiedJSON struct {
	ID           flexUint   `json:"id"`
	StatusID     flexUint   `json:"status_id"`
	DateModified flexString `json:"date_modified"`
}

// dateLayouts are the forms BigCommerce gives dates in: RFC 2822 in v2
// answers, ISO 8601 elsewhere.
var dateLayouts = []string{time.RFC1123Z, time.RFC1123, time.RFC3339Nano, "2006-01-02T15:04:05-0700"}

func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised date %q", s)
}

// ModifiedOrders lists the store's orders in status statusID that were
// modified at or after since (GET /v2/orders with status_id and
// min_date_modified). It implements fulfill.OrderLister. An order whose
// date_modified does not parse gets a zero DateModified.
//
// Pages follow each other by min_id (the last id seen, plus one), asking
// for the list sorted by id: an order that leaves the status while the
// list is read (it is being processed) cannot shift a later page and hide
// an order at a page boundary, as it can with page numbers. But min_id
// only works if the server sorts by id, which bigcommerce.md does not
// promise, and a server that does not would have its lower ids on later
// pages filtered out. So a listing of more than one page is read again by
// page number, the orders seen skipped: an order is missed only if both
// readings miss it. A page out of id order, or one that brings only
// orders seen before (min_id ignored), switches to page numbers at once.
func (c *Client) ModifiedOrders(ctx context.Context, store string, statusID uint32, since time.Time) ([]order.Modified, error) {
	l := listing{c: c, ctx: ctx, store: store, seen: map[uint64]bool{}, query: url.Values{
		"status_id":         {strconv.FormatUint(uint64(statusID), 10)},
		"min_date_modified": {since.UTC().Format(time.RFC1123Z)},
		"sort":              {"id:asc"},
		"limit":             {strconv.Itoa(c.cfg.PageLimit)},
	}}
	// By min_id.
	var minID uint64
	var first []uint64 // the first page's ids: page 1 by number
	for {
		batch, err := l.get("min_id", minID)
		if err != nil {
			return nil, err
		}
		sorted := sortedFrom(batch, minID)
		added, next, ids := l.add(batch, minID)
		if minID == 0 {
			first = ids
		}
		if !sorted || (added == 0 && len(batch) > 0) {
			break
		}
		if c.lastPage(len(batch), added) {
			if minID == 0 {
				return l.out, nil // one page holds them all, whatever the order
			}
			break
		}
		minID = next
	}
	// By page number, from page 2: page 1 is the first answer, asked
	// without min_id. Pages may bring only orders read before, so only a
	// short page, or the same page again (page ignored), ends it.
	last := first
	for page := 2; ; page++ {
		batch, err := l.get("page", uint64(page))
		if err != nil {
			return nil, err
		}
		_, _, ids := l.add(batch, 0)
		if c.shortPage(len(batch)) || slices.Equal(ids, last) {
			return l.out, nil
		}
		last = ids
	}
}

// listing is one ModifiedOrders call's state.
type listing struct {
	c     *Client
	ctx   context.Context
	store string
	query url.Values
	seen  map[uint64]bool
	out   []order.Modified
	pages int
}

// get reads one page, with the query plus name=v when v is not 0.
func (l *listing) get(name string, v uint64) ([]modifiedJSON, error) {
	if l.pages++; l.pages > maxPages {
		return nil, fmt.Errorf("bigcommerce: GET /v2/orders: more than %d pages", maxPages)
	}
	q := maps.Clone(l.query)
	if v > 0 {
		q.Set(name, strconv.FormatUint(v, 10))
	}
	var batch []modifiedJSON
	// The list has no 404 of its own: one means a wrong base URL or store
	// hash, and is reported as an unexpected answer.
	err := l.c.getJSONOr(l.ctx, l.store, request{method: http.MethodGet, path: "/v2/orders", query: q}, &batch, nil)
	if errors.As(err, new(refusedError)) && l.query.Has("sort") {
		// sort is not among bigcommerce.md's filters: a server that
		// refuses it is asked without it, from now on. The pages are
		// then checked for order, and read by page number if out of it.
		l.query.Del("sort")
		q.Del("sort")
		batch = nil
		err = l.c.getJSONOr(l.ctx, l.store, request{method: http.MethodGet, path: "/v2/orders", query: q}, &batch, nil)
	}
	return batch, err
}

// add keeps the orders of batch not seen before. It returns how many, the
// highest id plus one (at least from), and the page's ids in order.
func (l *listing) add(batch []modifiedJSON, from uint64) (added int, next uint64, ids []uint64) {
	next = from
	for _, m := range batch {
		id := uint64(m.ID)
		ids = append(ids, id)
		if id == 0 || l.seen[id] {
			continue
		}
		l.seen[id] = true
		mod, _ := parseDate(string(m.DateModified))
		l.out = append(l.out, order.Modified{ID: id, StatusID: uint32(m.StatusID), DateModified: mod})
		added++
		next = max(next, id+1)
	}
	return added, next, ids
}

// sortedFrom says whether a page is sorted by id, ascending, from minID on.
func sortedFrom(batch []modifiedJSON, minID uint64) bool {
	prev := uint64(0)
	for _, m := range batch {
		id := uint64(m.ID)
		if id == 0 {
			continue
		}
		if id < minID || id <= prev {
			return false
		}
		prev = id
	}
	return true
}
