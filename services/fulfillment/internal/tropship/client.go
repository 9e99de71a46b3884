// Package tropship is the fulfillment service's client of the TropShip
// dropship API (tropship.md). It implements fulfill.Supplier.
//
// A live order charges a card and the supplier does not deduplicate, so the
// client never resends on its own except after a 401 (nothing was processed),
// and it classifies every answer into an order.Outcome that says whether the
// order may exist: when it cannot tell, the answer is Ambiguous, never a
// guess towards resending.
package tropship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// Defaults of Config.
const (
	DefaultTokenPath  = "/oauth/token"
	DefaultOrdersPath = "/v1/offline-orders"
	DefaultTimeout    = 30 * time.Second
)

// maxResponseBytes bounds what is read of one answer.
const maxResponseBytes = 1 << 20

// Errors of Lookup that callers act on.
var (
	// ErrLookupUnsupported: the supplier has no lookup by reference (the
	// orders endpoint answered 404 or 405 to it). An ambiguous submission
	// then needs a person.
	ErrLookupUnsupported = errors.New("the supplier does not support looking orders up by reference")
	// ErrCredentialsRefused: the supplier refused the client credentials,
	// or a freshly issued token.
	ErrCredentialsRefused = errors.New("the supplier refused the client credentials")
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API root (required); TokenPath and OrdersPath are
	// appended to it.
	BaseURL string
	// TokenPath is the OAuth2 token endpoint (default "/oauth/token"). A
	// full http(s) URL is used as it is, for a token server elsewhere.
	TokenPath string
	// OrdersPath is the offline-orders endpoint (default
	// "/v1/offline-orders").
	OrdersPath string
	// ClientID and ClientSecret are the OAuth2 client credentials, sent as
	// form fields to the token endpoint.
	ClientID     string
	ClientSecret string
	// Timeout bounds one Submit or Lookup, token fetch included, and one
	// token fetch (default 30 s).
	Timeout time.Duration
	// HTTPClient sends the requests (default: a new http.Client). The
	// client copies it and does not follow redirects: a redirected POST
	// could be sent twice.
	HTTPClient *http.Client
}

func (c Config) withDefaults() Config {
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.TokenPath == "" {
		c.TokenPath = DefaultTokenPath
	}
	if c.OrdersPath == "" {
		c.OrdersPath = DefaultOrdersPath
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	return c
}

func (c Config) validate() error {
	if c.BaseURL == "" {
		return errors.New("tropship: base URL is empty")
	}
	if err := checkURL(c.BaseURL); err != nil {
		return fmt.Errorf("tropship: base URL: %w", err)
	}
	if err := checkURL(c.tokenURL()); err != nil {
		return fmt.Errorf("tropship: token URL: %w", err)
	}
	if !strings.HasPrefix(c.OrdersPath, "/") {
		return fmt.Errorf("tropship: orders path %q must start with /", c.OrdersPath)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("tropship: client id and client secret are required")
	}
	if c.Timeout < 0 {
		return errors.New("tropship: timeout must not be negative")
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return nil
}

func (c Config) tokenURL() string {
	if strings.HasPrefix(c.TokenPath, "http://") || strings.HasPrefix(c.TokenPath, "https://") {
		return c.TokenPath
	}
	return c.BaseURL + c.TokenPath
}

// Client talks to TropShip. It is safe for concurrent use; concurrent calls
// share one cached token.
type Client struct {
	cfg       Config
	ordersURL string
	http      *http.Client // orders endpoint: no redirects
	oauth     *clientcredentials.Config
	tokenHTTP *http.Client // token endpoint: counted, bounded by Timeout

	mu  sync.Mutex
	src oauth2.TokenSource // caches and refreshes the token
	gen uint64             // bumped each time src is replaced

	tokenRequests, orderRequests, lookupRequests atomic.Uint64
}

var _ fulfill.Supplier = (*Client)(nil)

// New returns a Client, or an error naming the setting that is wrong. It
// makes no request: the first token is fetched by the first call.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, ordersURL: cfg.BaseURL + cfg.OrdersPath}

	// Redirects are answered as they are, never followed: net/http would
	// send the bearer token or the client secret along.
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	orders := *cfg.HTTPClient
	orders.CheckRedirect = noRedirects
	c.http = &orders

	tok := *cfg.HTTPClient
	tok.CheckRedirect = noRedirects
	base := tok.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tok.Transport = jsonTokenAnswers{countingTransport{base: base, n: &c.tokenRequests}}
	// Token fetches outlive the call that triggers them (the token is
	// shared), so they get their own bound rather than the caller's context.
	if tok.Timeout == 0 || tok.Timeout > cfg.Timeout {
		tok.Timeout = cfg.Timeout
	}
	c.tokenHTTP = &tok

	c.oauth = &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.tokenURL(),
		// tropship.md: client_id and client_secret are form fields.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	c.src = c.newSource()
	return c, nil
}

// newSource returns a token source with an empty cache. oauth2 keeps the
// context it is given for every later fetch, so it must be one that lives as
// long as the client: fetches are bounded by tokenHTTP's timeout instead.
func (c *Client) newSource() oauth2.TokenSource {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.tokenHTTP)
	return c.oauth.TokenSource(ctx)
}

// token returns the cached token, fetching one when there is none or it is
// about to expire, and the generation of the source it came from. The wait
// respects ctx; a fetch abandoned by ctx still completes and is cached.
func (c *Client) token(ctx context.Context) (*oauth2.Token, uint64, error) {
	c.mu.Lock()
	src, gen := c.src, c.gen
	c.mu.Unlock()
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		t, err := src.Token()
		done <- result{t, err}
	}()
	select {
	case r := <-done:
		if r.err == nil && (r.tok == nil || r.tok.AccessToken == "") {
			r.err = errors.New("the token endpoint returned no access token")
		}
		return r.tok, gen, r.err
	case <-ctx.Done():
		return nil, gen, ctx.Err()
	}
}

// discard drops the cached token of generation gen, so that the next call
// fetches a new one. Concurrent callers that saw the same rejected token
// discard it once between them.
func (c *Client) discard(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.src = c.newSource()
		c.gen++
	}
}

// Stats counts the client's requests since it was made.
type Stats struct {
	// TokenRequests is the number of requests to the token endpoint.
	TokenRequests uint64
	// OrderRequests is the number of order submissions attempted
	// (validate-only and live, resends after a 401 included).
	OrderRequests uint64
	// LookupRequests is the number of lookups by reference attempted.
	LookupRequests uint64
}

// Stats returns the request counters.
func (c *Client) Stats() Stats {
	return Stats{
		TokenRequests:  c.tokenRequests.Load(),
		OrderRequests:  c.orderRequests.Load(),
		LookupRequests: c.lookupRequests.Load(),
	}
}

// jsonTokenAnswers labels a token answer whose body is a JSON object as
// application/json when the server called it text/plain or a form (a Go
// server that writes JSON without setting Content-Type sends "text/plain;
// charset=utf-8"). oauth2 reads such answers as a query string and finds no
// access_token in them, so every call would fail for want of a token.
// tropship.md shows the answer as JSON and names no media type.
type jsonTokenAnswers struct{ base http.RoundTripper }

// maxTokenAnswer bounds what is read of a token answer to look at it; oauth2
// reads at most 1 MiB of it too.
const maxTokenAnswer = 1 << 20

func (t jsonTokenAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/plain" && mt != "application/x-www-form-urlencoded" {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the token answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		resp.Header = resp.Header.Clone()
		resp.Header.Set("Content-Type", "application/json")
	}
	return resp, nil
}

// countingTransport counts the requests that pass through it.
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Uint64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.base.RoundTrip(r)
}
