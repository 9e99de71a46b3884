// Package bigcommerce is the fulfillment service's client of the BigCommerce
// store API: it reads orders (Orders API v2) and keeps the supplier's order id
// in an order metafield (v3). It implements fulfill.Storefront.
//
// Every request carries a deadline and honours the store's rate limit, which
// is one quota shared by every app on the store (bigcommerce.md): a 429 is
// waited out and retried, once a response says no request is left the next
// request waits for the reset, and the requests left are spread evenly over
// the rest of the window (after a short burst). Failures map to the errors
// the use case acts on: fulfill.ErrOrderNotFound, *fulfill.RetryableError
// for what may succeed later, and ErrUnauthorized when the access token is
// refused.
package bigcommerce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/retryafter"
)

// Defaults of Config.
const (
	DefaultBaseURL            = "https://api.bigcommerce.com"
	DefaultMetafieldNamespace = "tropship"
	DefaultMetafieldKey       = "offline_order_id"
	DefaultMetafieldDesc      = "TropShip offline order id, written by backorder"
	DefaultMaxRetries         = 3
	DefaultTimeout            = 30 * time.Second
	// DefaultMaxRateLimitWait matches BigCommerce's 30 s quota window: a
	// reset further away than that is not believed.
	DefaultMaxRateLimitWait = 30 * time.Second
	// DefaultPageLimit is the largest page the v2 Orders API serves.
	DefaultPageLimit = 250
	// DefaultQuotaBurst is how many requests may go at once before the
	// rest of a store's quota is spread over its window: two orders' worth.
	DefaultQuotaBurst = 10
)

// defaultPageSize is the page the v2 Orders API serves when `limit` is not
// given (bigcommerce.md), and so what a server that ignores or caps `limit`
// may answer.
const defaultPageSize = 50

const (
	// maxResponseBytes bounds what is read of one answer; a page of 250
	// order lines with options is well under it.
	maxResponseBytes = 32 << 20
	// maxPages bounds paging, so a server that ignores `page` cannot keep
	// the client busy for ever.
	maxPages = 1000
	// fallbackReset is waited after a 429 that names no reset time.
	fallbackReset = time.Second
)

// ErrUnauthorized: BigCommerce refused the access token (401 or 403).
// Retrying does not help; a person must fix the token or its scopes.
var ErrUnauthorized = fmt.Errorf("bigcommerce refused the access token (fix BIGCOMMERCE_ACCESS_TOKEN or the API account's scopes): %w",
	fulfill.ErrCredentialsRefused)

// Config configures a Client.
type Config struct {
	// BaseURL is the API root (default DefaultBaseURL); the client appends
	// /stores/<store hash>/v2/... and /stores/<store hash>/v3/...
	BaseURL string
	// StoreHash, when set, is the only store this client serves: an access
	// token belongs to one store, so keys of other stores are refused.
	// When empty, the store hash of each order.Key is used.
	StoreHash string
	// AccessToken is the store API account's token, sent as X-Auth-Token.
	AccessToken string
	// HTTPClient sends the requests (default: a new http.Client).
	HTTPClient *http.Client
	// Timeout is the deadline of each HTTP request (default 30 s).
	Timeout time.Duration
	// MetafieldNamespace and MetafieldKey name the order metafield holding
	// the supplier's order id (defaults "tropship", "offline_order_id").
	MetafieldNamespace string
	MetafieldKey       string
	// MetafieldDescription is written with the metafield.
	MetafieldDescription string
	// MaxRetries is how often a request answered 429 is retried (default 3;
	// negative: never).
	MaxRetries int
	// MaxRateLimitWait caps one rate-limit wait (default 30 s).
	MaxRateLimitWait time.Duration
	// PageLimit is the page size of order lines (default and maximum 250).
	PageLimit int
	// QuotaBurst is how many requests may go at once before the requests
	// left in a store's quota are spread evenly over the rest of its window
	// (default DefaultQuotaBurst; negative: never spread, spend the quota as
	// work comes and wait for the reset once it is spent).
	QuotaBurst int
	// PlainOrders reads orders without side-loading their lines and
	// shipping addresses (include=consignments.line_items): three requests
	// for an eligible order's contents instead of one.
	PlainOrders bool
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	hc := http.Client{}
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	// A redirect is answered as it is, never followed: net/http would
	// send X-Auth-Token along to wherever it points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.HTTPClient = &hc
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MetafieldNamespace == "" {
		c.MetafieldNamespace = DefaultMetafieldNamespace
	}
	if c.MetafieldKey == "" {
		c.MetafieldKey = DefaultMetafieldKey
	}
	if c.MetafieldDescription == "" {
		c.MetafieldDescription = DefaultMetafieldDesc
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.MaxRateLimitWait == 0 {
		c.MaxRateLimitWait = DefaultMaxRateLimitWait
	}
	if c.PageLimit == 0 {
		c.PageLimit = DefaultPageLimit
	}
	if c.QuotaBurst == 0 {
		c.QuotaBurst = DefaultQuotaBurst
	}
	return c
}

// validate checks a Config with its defaults applied.
func (c Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("bigcommerce: base URL %q is not an http(s) URL", c.BaseURL)
	}
	if c.AccessToken == "" {
		return errors.New("bigcommerce: access token is empty")
	}
	if c.Timeout < 0 || c.MaxRateLimitWait < 0 {
		return errors.New("bigcommerce: timeouts must not be negative")
	}
	if c.PageLimit < 1 || c.PageLimit > DefaultPageLimit {
		return fmt.Errorf("bigcommerce: page limit %d is outside 1..%d", c.PageLimit, DefaultPageLimit)
	}
	if len(c.MetafieldNamespace) > 64 || len(c.MetafieldKey) > 64 {
		return errors.New("bigcommerce: metafield namespace and key are limited to 64 characters")
	}
	return nil
}

// Client talks to one BigCommerce API root. It is safe for concurrent use;
// concurrent calls share the rate-limit pacing.
type Client struct {
	cfg   Config
	pace  *pacer
	stats counters
	// plainUntil (Unix ns): the server refused an order read that
	// side-loads its consignments and answered the plain read; orders are
	// read plainly until then.
	plainUntil atomic.Int64
	// sideLoadFailed holds the orders whose side-loaded read failed (in
	// transport, with a 5xx or 408, or undecodable): they are read plainly
	// for an hour.
	sideLoadFailed failedReads
}

var _ fulfill.Storefront = (*Client)(nil)

// New returns a Client, or an error naming the setting that is wrong.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, pace: newPacer(cfg.QuotaBurst, time.Now)}, nil
}

// Stats counts what the client did since it was made.
type Stats struct {
	// Requests is the number of HTTP requests sent (retries included).
	Requests uint64
	// RateLimited is the number of 429 answers.
	RateLimited uint64
	// PacedWaits is the number of requests that first waited for a
	// rate-limit reset.
	PacedWaits uint64
	// SpreadWaits is the number of requests that first waited only so
	// that the store's quota is spread over its window.
	SpreadWaits uint64
	// SideLoaded is the number of order reads that brought the order's
	// lines and shipping address whole; ReadApart the number of reads of
	// them from their own resources (Contents), where it did not.
	SideLoaded, ReadApart uint64
}

type counters struct {
	requests, rateLimited, pacedWaits, spreadWaits, sideLoaded, readApart atomic.Uint64
}

// Quota returns what the client knows of the store's API quota (store
// empty: the StoreHash it serves).
func (c *Client) Quota(store string) QuotaState {
	if store == "" {
		store = c.cfg.StoreHash
	}
	return c.pace.state(store, time.Now())
}

// Stats returns the request counters.
func (c *Client) Stats() Stats {
	return Stats{
		Requests:    c.stats.requests.Load(),
		RateLimited: c.stats.rateLimited.Load(),
		PacedWaits:  c.stats.pacedWaits.Load(),
		SpreadWaits: c.stats.spreadWaits.Load(),
		SideLoaded:  c.stats.sideLoaded.Load(),
		ReadApart:   c.stats.readApart.Load(),
	}
}

// request is one API call below /stores/<hash>.
type request struct {
	method string
	path   string // e.g. /v2/orders/250
	query  url.Values
	body   []byte // JSON; nil for none
}

func (r request) String() string { return r.method + " " + r.path }

// response is a read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// storePath checks a key's store against the configuration and returns
// /stores/<hash>.
func (c *Client) storePath(store string) (string, error) {
	if store == "" {
		return "", errors.New("bigcommerce: order key has no store hash")
	}
	if c.cfg.StoreHash != "" && store != c.cfg.StoreHash {
		return "", fmt.Errorf("bigcommerce: this client serves store %q, not %q", c.cfg.StoreHash, store)
	}
	return "/stores/" + url.PathEscape(store), nil
}

// do sends a request, waiting out rate limits: a 429 is retried up to
// MaxRetries times, each wait longer than the last. Transport failures and an
// exhausted 429 budget come back as *fulfill.RetryableError; any other answer
// is returned for the caller to judge.
func (c *Client) do(ctx context.Context, store string, req request) (*response, error) {
	prefix, err := c.storePath(store)
	if err != nil {
		return nil, err
	}
	target := c.cfg.BaseURL + prefix + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		waited, err := c.pace.wait(ctx, store)
		if err != nil {
			return nil, fmt.Errorf("bigcommerce: %s: %w", req, err)
		}
		switch {
		case waited&heldForReset != 0:
			c.stats.pacedWaits.Add(1)
		case waited&heldToSpread != 0:
			c.stats.spreadWaits.Add(1)
		}
		resp, err := c.send(ctx, target, req)
		if err != nil {
			return nil, err
		}
		c.pace.observe(store, resp.header, c.cfg.MaxRateLimitWait)
		if resp.status != http.StatusTooManyRequests {
			return resp, nil
		}
		c.stats.rateLimited.Add(1)
		reset := resetDuration(resp.header)
		if reset <= 0 {
			reset = retryafter.Parse(resp.header, time.Now())
		}
		if reset <= 0 {
			reset = fallbackReset
		}
		if attempt >= c.cfg.MaxRetries {
			return nil, &fulfill.RetryableError{
				Err:        fmt.Errorf("bigcommerce: %s: rate limited (HTTP 429) %d times", req, attempt+1),
				RetryAfter: reset,
			}
		}
		// The quota is the store's, shared with other apps: back off
		// further each time the reset did not suffice.
		c.pace.hold(store, time.Now().Add(backoff(reset, attempt, c.cfg.MaxRateLimitWait)))
	}
}

// send makes one HTTP exchange under its own deadline.
func (c *Client) send(ctx context.Context, target string, req request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("bigcommerce: %s: %w", req, err)
	}
	hreq.Header.Set("X-Auth-Token", c.cfg.AccessToken)
	hreq.Header.Set("Accept", "application/json")
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	c.stats.requests.Add(1)
	hresp, err := c.cfg.HTTPClient.Do(hreq)
	if err != nil {
		// Reads and metafield writes are safe to repeat, so every
		// transport failure is worth retrying.
		return nil, &fulfill.RetryableError{Err: exchangeError{fmt.Errorf("bigcommerce: %s: %w", req, transportError(err))}}
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBytes))
	if err != nil {
		return nil, &fulfill.RetryableError{Err: exchangeError{fmt.Errorf("bigcommerce: %s: reading the answer: %w", req, transportError(err))}}
	}
	return &response{status: hresp.StatusCode, header: hresp.Header, body: b}, nil
}

// transportError drops the URL that *url.Error repeats: the message names the
// request already, and a URL is no place to look for secrets later.
func transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// statusError maps an unexpected answer to an error. notFound is returned
// for 404 (nil: a 404 is reported like any other client error).
func (c *Client) statusError(req request, resp *response, notFound error) error {
	switch s := resp.status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		// The body is not quoted: nothing there helps, and the less of an
		// authentication exchange is repeated, the better.
		return fmt.Errorf("bigcommerce: %s: HTTP %d: %w", req, s, ErrUnauthorized)
	case s == http.StatusNotFound && notFound != nil:
		return fmt.Errorf("bigcommerce: %s: %w", req, notFound)
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge || s == http.StatusRequestURITooLong || s == http.StatusUnprocessableEntity:
		return refusedError{fmt.Errorf("bigcommerce: %s: unexpected HTTP %d%s", req, s, snippet(resp.body, c.cfg.AccessToken))}
	case s >= 500 || s == http.StatusRequestTimeout:
		return &fulfill.RetryableError{
			Err:        exchangeError{fmt.Errorf("bigcommerce: %s: HTTP %d%s", req, s, snippet(resp.body, c.cfg.AccessToken))},
			RetryAfter: retryafter.Parse(resp.header, time.Now()),
		}
	default:
		return fmt.Errorf("bigcommerce: %s: unexpected HTTP %d%s", req, s, snippet(resp.body, c.cfg.AccessToken))
	}
}

// These mark errors for Order's fallbacks without changing their text.
type (
	// refusedError is a 400, 413, 414 or 422: the request, as it was
	// asked, will not be answered.
	refusedError struct{ error }
	// undecodableError is an answer this client could not decode.
	undecodableError struct{ error }
	// exchangeError is an exchange that failed in transport or with a
	// 5xx or 408 answer, as opposed to one the rate limit held back.
	exchangeError struct{ error }
)

func (e refusedError) Unwrap() error     { return e.error }
func (e undecodableError) Unwrap() error { return e.error }
func (e exchangeError) Unwrap() error    { return e.error }

// snippet quotes the start of an error body, for a person reading the
// error, with the access token taken out first, should a server echo the
// request's headers: the error reaches logs, records and API answers.
func snippet(b []byte, token string) string {
	s := string(b)
	if len(token) >= 4 {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	const maxLen = 200
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return ": " + s
}
