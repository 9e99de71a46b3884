package tropship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/retryafter"
)

// Lookup asks the supplier for the order carrying reference. It returns the
// supplier's id and true when there is one, "" and false when there is none.
// Errors: ErrLookupUnsupported when the supplier has no lookup,
// ErrCredentialsRefused, *fulfill.RetryableError for failures worth
// retrying. If the supplier holds several orders with the reference (a
// duplicate was made), the first one listed is returned.
func (c *Client) Lookup(ctx context.Context, reference string) (string, bool, error) {
	if reference == "" {
		return "", false, errors.New("tropship: lookup of an empty reference")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	target := c.ordersURL + "?" + url.Values{"reference": {reference}}.Encode()
	rep, tokens, err := c.exchange(ctx, http.MethodGet, target, nil, &c.lookupRequests)
	if err != nil {
		var te *tokenError
		msg := err.Error()
		if errors.As(err, &te) {
			msg = describeTokenError(te.err)
		}
		return "", false, &fulfill.RetryableError{Err: fmt.Errorf("tropship: lookup %q: %s", reference, redact(msg, append(tokens, c.cfg.ClientSecret)...))}
	}
	switch st := rep.status; {
	case st == http.StatusOK:
	case st == http.StatusNotFound || st == http.StatusMethodNotAllowed || st == http.StatusNotImplemented:
		return "", false, fmt.Errorf("tropship: lookup %q: HTTP %d: %w", reference, st, ErrLookupUnsupported)
	case st == http.StatusUnauthorized:
		return "", false, fmt.Errorf("tropship: lookup %q: HTTP 401 with a fresh token: %w", reference, ErrCredentialsRefused)
	case st == http.StatusTooManyRequests || st >= 500 || st == http.StatusRequestTimeout:
		return "", false, &fulfill.RetryableError{
			Err:        fmt.Errorf("tropship: lookup %q: HTTP %d", reference, st),
			RetryAfter: retryafter.Parse(rep.header, time.Now()),
		}
	default:
		return "", false, fmt.Errorf("tropship: lookup %q: unexpected HTTP %d", reference, st)
	}
	if rep.readErr != nil {
		return "", false, &fulfill.RetryableError{Err: fmt.Errorf("tropship: lookup %q: reading the answer: %w", reference, rep.readErr)}
	}
	// "Not found" lets the order be sent again, so it is answered only
	// when the answer says so unmistakably: an "orders" list that is empty
	// (or null, as a Go server writes an empty one). Anything else that
	// does not name the order's id (no list, entries of other references
	// from a server that ignored the filter and may page, our reference
	// without an id) is an error, which holds the order for a person.
	var answer struct {
		Orders json.RawMessage `json:"orders"`
	}
	if err := json.Unmarshal(rep.body, &answer); err != nil {
		return "", false, fmt.Errorf("tropship: lookup %q: decoding the answer: %w", reference, err)
	}
	if len(answer.Orders) == 0 {
		return "", false, fmt.Errorf("tropship: lookup %q: the answer has no \"orders\" list, so it says nothing about the order", reference)
	}
	var orders []struct {
		OfflineOrderID json.RawMessage `json:"offline_order_id"`
		Reference      *string         `json:"reference"`
	}
	if err := json.Unmarshal(answer.Orders, &orders); err != nil {
		return "", false, fmt.Errorf("tropship: lookup %q: decoding the \"orders\" list: %w", reference, err)
	}
	for _, o := range orders {
		switch {
		case o.Reference == nil:
			return "", false, fmt.Errorf("tropship: lookup %q: an order without a reference in the answer; it may be this one", reference)
		case *o.Reference != reference:
			// Checking the server's filter means a server that ignores it
			// can neither hand us another order's id nor hide ours on a
			// later page.
			return "", false, fmt.Errorf("tropship: lookup %q: the answer lists reference %q: the supplier ignored the filter", reference, *o.Reference)
		}
		id := scalarText(o.OfflineOrderID)
		if id == "" {
			return "", false, fmt.Errorf("tropship: lookup %q: the supplier lists the order without an offline_order_id", reference)
		}
		return id, true, nil
	}
	return "", false, nil
}
