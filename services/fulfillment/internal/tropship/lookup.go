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
			RetryAfter: retryAfter(rep.header, time.Now()),
		}
	default:
		return "", false, fmt.Errorf("tropship: lookup %q: unexpected HTTP %d", reference, st)
	}
	if rep.readErr != nil {
		return "", false, &fulfill.RetryableError{Err: fmt.Errorf("tropship: lookup %q: reading the answer: %w", reference, rep.readErr)}
	}
	var list struct {
		Orders []struct {
			OfflineOrderID json.RawMessage `json:"offline_order_id"`
			Reference      string          `json:"reference"`
		} `json:"orders"`
	}
	if err := json.Unmarshal(rep.body, &list); err != nil {
		return "", false, fmt.Errorf("tropship: lookup %q: decoding the answer: %w", reference, err)
	}
	for _, o := range list.Orders {
		// The server filters by reference; checking again means a server
		// that ignores the filter cannot hand us another order's id.
		if o.Reference != reference {
			continue
		}
		if id := scalarText(o.OfflineOrderID); id != "" {
			return id, true, nil
		}
	}
	return "", false, nil
}
