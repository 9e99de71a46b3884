package tropship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/oauth2"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
)

// reply is an answer of the orders endpoint.
type reply struct {
	status int
	header http.Header
	body   []byte
	// readErr is set when the body could not be read whole; the status
	// still counts.
	readErr error
}

// tokenError: no token could be had, so nothing was sent to the orders
// endpoint.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "getting a token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// guardError: the caller's send guard refused, so nothing was sent.
type guardError struct{ err error }

func (e *guardError) Error() string { return "refused before sending: " + e.err.Error() }
func (e *guardError) Unwrap() error { return e.err }

// sendError: the orders request failed in transport. sent says whether the
// request may have reached the supplier.
type sendError struct {
	err  error
	sent bool
}

func (e *sendError) Error() string { return e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// exchange sends one request with the cached bearer token. A 401 means the
// supplier processed nothing, so the token is discarded once and the request
// resent with a fresh one; a second 401 is returned as it is. It returns the
// tokens it used, for redaction.
func (c *Client) exchange(ctx context.Context, method, target string, body []byte, count *atomic.Uint64) (*reply, []string, error) {
	var used []string
	for attempt := 0; ; attempt++ {
		tok, gen, err := c.token(ctx)
		if err != nil {
			return nil, used, &tokenError{err: err}
		}
		used = append(used, tok.AccessToken)
		if method == http.MethodPost {
			// The caller's last word before anything that can create an
			// order leaves: e.g. the order's lock is still held.
			if err := fulfill.CheckSendGuard(ctx); err != nil {
				return nil, used, &guardError{err: err}
			}
		}
		rep, err := c.send(ctx, method, target, body, tok, count)
		if err != nil {
			return nil, used, err
		}
		if rep.status == http.StatusUnauthorized && attempt == 0 {
			c.discard(gen)
			continue
		}
		return rep, used, nil
	}
}

// send makes one HTTP exchange and records whether any byte of the request
// was written, which is what separates "not sent" from "maybe sent".
func (c *Client) send(ctx context.Context, method, target string, body []byte, tok *oauth2.Token, count *atomic.Uint64) (*reply, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		// Headers come first: once they are written, the request may be
		// on the wire, so from here on a failure is not "not sent".
		WroteHeaders: func() { wrote.Store(true) },
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, target, rd)
	if err != nil {
		return nil, &sendError{err: fmt.Errorf("building the request: %w", err)}
	}
	// tropship.md says "Bearer" whatever token_type the server names.
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	count.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &sendError{err: transportError(err), sent: !neverSent(err, wrote.Load())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return &reply{status: resp.StatusCode, header: resp.Header, body: b, readErr: err}, nil
}

// neverSent reports whether a failed request certainly did not reach the
// server: nothing was written, or the failure was in dialling (refused
// connection, DNS), which the transport only reaches on a fresh connection
// for a request it has not written.
func neverSent(err error, wrote bool) bool {
	if !wrote {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// transportError drops the URL that *url.Error repeats.
func transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// describeTokenError says why no token could be had, without the token
// endpoint's body (it may repeat what was sent).
func describeTokenError(err error) string {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		status := 0
		if rerr.Response != nil {
			status = rerr.Response.StatusCode
		}
		s := fmt.Sprintf("the token endpoint answered HTTP %d", status)
		if rerr.ErrorCode != "" {
			s += " (" + rerr.ErrorCode + ")"
		}
		if status == http.StatusUnauthorized || status == http.StatusBadRequest || status == http.StatusForbidden {
			s += ": the client credentials were refused"
		}
		return s
	}
	return "the token endpoint failed: " + transportError(err).Error()
}

// redact removes secrets from text meant for people: the client secret and
// the tokens used, should a server ever echo them.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
