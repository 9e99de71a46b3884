package bigcommerce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// SupplierReference returns the supplier's order id recorded in the order's
// metafield (Config.MetafieldNamespace / MetafieldKey), or "" when there is
// none. Errors are those of Order.
func (c *Client) SupplierReference(ctx context.Context, k order.Key) (string, error) {
	mf, err := c.findMetafield(ctx, k)
	if err != nil || mf == nil {
		return "", err
	}
	return string(mf.Value), nil
}

// SetSupplierReference records the supplier's order id in the order's
// metafield, creating it (app_only, so other apps cannot change it). When it
// exists already (409, or a 422 after which it is found) and holds the same
// id, that is success: a failed write-back may simply be repeated. When it holds another id, nothing is
// overwritten: the order's one reference cannot have two supplier orders
// unless something went wrong, and the other id is the evidence a person
// needs, so it is returned as an error naming both. Other errors are those
// of Order.
func (c *Client) SetSupplierReference(ctx context.Context, k order.Key, offlineID string) error {
	if offlineID == "" {
		return fmt.Errorf("bigcommerce: order %s: refusing to write an empty supplier reference", k)
	}
	body, err := json.Marshal(metafieldWrite{
		PermissionSet: "app_only",
		Namespace:     c.cfg.MetafieldNamespace,
		Key:           c.cfg.MetafieldKey,
		Value:         offlineID,
		Description:   c.cfg.MetafieldDescription,
	})
	if err != nil {
		return fmt.Errorf("bigcommerce: encoding the metafield: %w", err)
	}
	req := request{method: http.MethodPost, path: metafieldsPath(k), body: body}
	resp, err := c.do(ctx, k.Store, req)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusOK, http.StatusCreated:
		return nil
	case http.StatusConflict, http.StatusUnprocessableEntity:
		// 409 is BigCommerce's answer to a second metafield with this
		// namespace and key; 422 is "invalid input", which some servers
		// answer for a duplicate too. Either way, what is there decides.
	default:
		return c.statusError(req, resp, fulfill.ErrOrderNotFound)
	}

	mf, err := c.findMetafield(ctx, k)
	if err != nil {
		return err
	}
	if mf == nil && resp.status == http.StatusUnprocessableEntity {
		return c.statusError(req, resp, fulfill.ErrOrderNotFound)
	}
	if mf == nil {
		// Deleted between the two calls, or the list hides it: a later
		// attempt will create or find it.
		return &fulfill.RetryableError{Err: fmt.Errorf("bigcommerce: %s: 409 Conflict, but no metafield %s/%s was found",
			req, c.cfg.MetafieldNamespace, c.cfg.MetafieldKey)}
	}
	if got := string(mf.Value); got != offlineID {
		return fmt.Errorf("bigcommerce: order %s: metafield %s/%s already holds supplier id %q, not %q; left as it is: "+
			"check at the supplier whether both exist", k, c.cfg.MetafieldNamespace, c.cfg.MetafieldKey, got, offlineID)
	}
	return nil
}

func metafieldsPath(k order.Key) string {
	return "/v3/orders/" + strconv.FormatUint(k.ID, 10) + "/metafields"
}

// findMetafield returns the order's metafield of the configured namespace
// and key, or nil. The list is filtered by the server; the client checks
// namespace and key again, and follows the pages, in case a server ignores
// the filter.
func (c *Client) findMetafield(ctx context.Context, k order.Key) (*metafieldJSON, error) {
	for page := 1; page <= maxPages; page++ {
		q := url.Values{"namespace": {c.cfg.MetafieldNamespace}, "key": {c.cfg.MetafieldKey}}
		if page > 1 {
			q.Set("page", strconv.Itoa(page))
		}
		req := request{method: http.MethodGet, path: metafieldsPath(k), query: q}
		var list metafieldsJSON
		if err := c.getJSON(ctx, k.Store, req, &list); err != nil {
			return nil, err
		}
		for i := range list.Data {
			mf := &list.Data[i]
			if string(mf.Namespace) == c.cfg.MetafieldNamespace && string(mf.Key) == c.cfg.MetafieldKey {
				return mf, nil
			}
		}
		p := list.Meta.Pagination
		if len(list.Data) == 0 || int(p.TotalPages) <= page || int(p.CurrentPage) < page {
			return nil, nil
		}
	}
	return nil, nil
}
