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
// metafield, creating it (app_only, so other apps cannot change it) or, when
// it exists already (409), updating it. Writing the same value twice is
// harmless, so a failed write-back may simply be repeated. Errors are those
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
	path := metafieldsPath(k)
	req := request{method: http.MethodPost, path: path, body: body}
	resp, err := c.do(ctx, k.Store, req)
	if err != nil {
		return err
	}
	switch resp.status {
	case http.StatusOK, http.StatusCreated:
		return nil
	case http.StatusConflict:
	default:
		return c.statusError(req, resp, fulfill.ErrOrderNotFound)
	}

	mf, err := c.findMetafield(ctx, k)
	if err != nil {
		return err
	}
	if mf == nil || mf.ID == 0 {
		// Deleted between the two calls, or the list hides it: a later
		// attempt will create or find it.
		return &fulfill.RetryableError{Err: fmt.Errorf("bigcommerce: %s: 409 Conflict, but no metafield %s/%s was found",
			req, c.cfg.MetafieldNamespace, c.cfg.MetafieldKey)}
	}
	if string(mf.Value) == offlineID {
		return nil
	}
	put := request{method: http.MethodPut, path: path + "/" + strconv.FormatUint(uint64(mf.ID), 10), body: body}
	resp, err = c.do(ctx, k.Store, put)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK && resp.status != http.StatusCreated && resp.status != http.StatusNoContent {
		return c.statusError(put, resp, fulfill.ErrOrderNotFound)
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
