package bigcommerce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Order reads an order (one request) and, where the API side-loads them,
// its lines and shipping addresses with it (ContentsRead): BigCommerce does
// with include=consignments.line_items. Otherwise Contents reads them. It
// returns an error wrapping fulfill.ErrOrderNotFound when the store has no
// such order, a *fulfill.RetryableError for failures worth retrying, and
// an error wrapping ErrUnauthorized when the access token is refused.
func (c *Client) Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error) {
	var o orderJSON
	req := request{method: http.MethodGet, path: orderPath(k)}
	if !c.cfg.PlainOrders && time.Now().UnixNano() >= c.plainUntil.Load() && !c.sideLoadFailed.has(k) {
		req.query = sideLoad
	}
	err := c.getJSON(ctx, k.Store, req, &o)
	if req.query != nil {
		err = c.orderPlainly(ctx, k, err, &o)
	}
	if err != nil {
		return order.StorefrontOrder{}, err
	}
	so := order.StorefrontOrder{
		ID:              uint64(o.ID),
		Archived:        bool(o.IsDeleted),
		StatusID:        uint32(o.StatusID),
		Status:          string(o.Status),
		CustomerMessage: string(o.CustomerMessage),
		Billing:         o.BillingAddress.domain(),
	}
	if so.ID == 0 {
		so.ID = k.ID
	}
	if so.ID != k.ID {
		return order.StorefrontOrder{}, fmt.Errorf("bigcommerce: asked for order %d, got order %d", k.ID, so.ID)
	}
	if so.Lines, so.Shipping, so.ContentsRead = o.contents(); so.ContentsRead {
		c.stats.sideLoaded.Add(1)
	}
	return so, nil
}

// orderPlainly follows a side-loaded read of order k that failed with err:
// it reads the order plainly into o at once when the side-load was refused,
// could not be decoded or was answered 404 (which only the plain read may
// say of an order), and marks the order to be read plainly for a while when
// the side-load may be what fails for it. It returns the error to report.
func (c *Client) orderPlainly(ctx context.Context, k order.Key, err error, o *orderJSON) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	refused := errors.As(err, new(refusedError))
	undecodable := errors.As(err, new(undecodableError))
	if undecodable || errors.As(err, new(exchangeError)) {
		c.sideLoadFailed.add(k)
	}
	if !refused && !undecodable && !errors.Is(err, fulfill.ErrOrderNotFound) {
		return err // retried later, as any failure
	}
	*o = orderJSON{}
	if err = c.getJSON(ctx, k.Store, request{method: http.MethodGet, path: orderPath(k)}, o); err == nil && refused {
		c.plainUntil.Store(time.Now().Add(plainOrdersFor).UnixNano())
	}
	return err
}

// plainOrdersFor is how long orders are read without the side-load once a
// server refused it and answered the plain read, and how long one order is
// once its side-loaded read failed.
const plainOrdersFor = time.Hour

// failedReads is a set of orders with the time each was added, kept for
// plainOrdersFor and bounded: when full, it starts afresh.
type failedReads struct {
	mu sync.Mutex
	at map[order.Key]time.Time
}

const maxFailedReads = 10_000

func (f *failedReads) add(k order.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at == nil || len(f.at) >= maxFailedReads {
		f.at = map[order.Key]time.Time{}
	}
	f.at[k] = time.Now()
}

func (f *failedReads) has(k order.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.at[k]
	if ok && time.Since(t) >= plainOrdersFor {
		delete(f.at, k)
		ok = false
	}
	return ok
}

// sideLoad asks GET /v2/orders/{id} for the order's consignments with
// their lines: its shipping addresses and lines in the same request, in
// the object structure (the array one is legacy).
var sideLoad = url.Values{
	"include":               {"consignments.line_items"},
	"consignment_structure": {"object"},
}

// Contents reads all pages of an order's lines and its shipping addresses
// (two or more requests). The order exists: a 404 from these sub-resources
// is an unexpected answer (retried later), never "no such order".
func (c *Client) Contents(ctx context.Context, k order.Key) ([]order.Line, []order.Address, error) {
	c.stats.readApart.Add(1)
	base := orderPath(k)
	lines, cut, err := c.lines(ctx, k.Store, base+"/products")
	if err != nil {
		return nil, nil, err
	}
	var addrs []addressJSON
	if err := c.getJSONOr(ctx, k.Store, request{method: http.MethodGet, path: base + "/shipping_addresses"}, &addrs, nil); err != nil {
		return nil, nil, err
	}
	if cut > 0 {
		if err := checkLineCount(lines, addrs, cut); err != nil {
			return nil, nil, fmt.Errorf("bigcommerce: order %d: %w", k.ID, err)
		}
	}
	var shipping []order.Address
	for _, a := range addrs {
		shipping = append(shipping, a.domain())
	}
	return lines, shipping, nil
}

func orderPath(k order.Key) string { return "/v2/orders/" + strconv.FormatUint(k.ID, 10) }

// checkLineCount accepts lines whose list ended with a 404 for page cut
// only if they add up to the items the order's shipping addresses expect:
// a 404 in the middle of the list would otherwise send, and charge, an
// order with lines missing.
func checkLineCount(lines []order.Line, addrs []addressJSON, cut int) error {
	want, known := 0, len(addrs) > 0
	for _, a := range addrs {
		if a.ItemsTotal == nil {
			known = false
			break
		}
		want += int(*a.ItemsTotal)
	}
	got := 0
	for _, l := range lines {
		got += l.Quantity
	}
	if !known || got != want {
		return fmt.Errorf("its lines ended with a 404 for page %d, and their %d items do not match the shipping addresses' items_total (%d, known: %v): not taken as the whole order, read again later", cut, got, want, known)
	}
	return nil
}

// lines reads every page of an order's lines. Paging ends on 204 No Content,
// an empty page, a short page, or a 404 for a page after the first (a
// server's answer to a page out of range). A page that brings only lines
// already seen also ends it: a server that ignores `page` must not be read
// for ever, nor double the quantities. The order exists: a 404 for the
// first page is an unexpected answer, never "no such order".
//
// cut is the page that answered 404 (0: none), for checkLineCount.
func (c *Client) lines(ctx context.Context, store, path string) (lines []order.Line, cut int, err error) {
	seen := map[uint64]bool{}
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, 0, fmt.Errorf("bigcommerce: GET %s: more than %d pages of lines", path, maxPages)
		}
		req := request{method: http.MethodGet, path: path, query: url.Values{
			"page":  {strconv.Itoa(page)},
			"limit": {strconv.Itoa(c.cfg.PageLimit)},
		}}
		var batch []lineJSON
		notFound := error(nil)
		if page > 1 {
			notFound = errPastLastPage
		}
		err := c.getJSONOr(ctx, store, req, &batch, notFound)
		if errors.Is(err, errPastLastPage) {
			return lines, page, nil
		}
		if err != nil {
			return nil, 0, err
		}
		added := 0
		for _, l := range batch {
			if l.ID != 0 {
				if seen[uint64(l.ID)] {
					continue
				}
				seen[uint64(l.ID)] = true
			}
			lines = append(lines, l.domain())
			added++
		}
		if c.lastPage(len(batch), added) {
			return lines, 0, nil
		}
	}
}

// errPastLastPage is a 404 for a page of a list after its first.
var errPastLastPage = errors.New("no such page")

// getJSON GETs an order resource and decodes it into v. 204 No Content
// leaves v untouched (an empty list); 404 means the order does not exist.
func (c *Client) getJSON(ctx context.Context, store string, req request, v any) error {
	return c.getJSONOr(ctx, store, req, v, fulfill.ErrOrderNotFound)
}

// getJSONOr is getJSON with the error a 404 stands for (nil: an unexpected
// answer like any other).
func (c *Client) getJSONOr(ctx context.Context, store string, req request, v any, notFound error) error {
	resp, err := c.do(ctx, store, req)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusOK:
	case http.StatusNoContent:
		return nil
	default:
		return c.statusError(req, resp, notFound)
	}
	if len(resp.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return undecodableError{fmt.Errorf("bigcommerce: %s: decoding the answer: %w", req, err)}
	}
	return nil
}

// lastPage says whether a page of n items, added of them new, ends a list.
// A page that brings nothing new ends it (a server that ignores paging must
// not be read for ever). A page at least as long as BigCommerce's default
// may be one the server cut to its own size, whatever limit we asked for:
// reading goes on until a shorter one (an extra request only for lists of
// 50 items or more).
func (c *Client) lastPage(n, added int) bool {
	return added == 0 || c.shortPage(n)
}

// shortPage says whether a page of n items is shorter than any server
// would cut a full one: nothing follows it.
func (c *Client) shortPage(n int) bool { return n < min(c.cfg.PageLimit, defaultPageSize) }
