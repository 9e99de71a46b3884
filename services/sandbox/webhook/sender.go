package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Standard Webhooks header names, as the library spells them.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// Sender delivers events to one destination, like one BigCommerce hook.
type Sender struct {
	// URL is the hook's destination.
	URL string
	// ClientSecret is the app's client secret. Its raw bytes are the HMAC
	// key, as in BigCommerce's samples. Empty: deliveries are unsigned.
	ClientSecret string
	// Headers are the hook's custom headers, sent with every delivery
	// (e.g. a shared secret).
	Headers map[string]string
	// Client sends the requests; nil means a client with a 10 s timeout.
	Client *http.Client
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// Option changes one delivery, mostly to make one a receiver must refuse.
type Option func(*delivery)

type delivery struct {
	key         []byte // nil: unsigned
	at          time.Time
	tamper      bool
	skipHeaders bool
	extra       map[string]string
}

// Forged signs with a random key instead of the client secret.
func Forged() Option {
	return func(d *delivery) { d.key = []byte(rand.Text()) }
}

// SignedWith signs with secret instead of the client secret.
func SignedWith(secret string) Option {
	return func(d *delivery) { d.key = []byte(secret) }
}

// Tampered changes the body after signing (the order id), as an attacker
// replaying a captured delivery for another order would.
func Tampered() Option {
	return func(d *delivery) { d.tamper = true }
}

// SignedAt signs with timestamp t instead of now.
func SignedAt(t time.Time) Option {
	return func(d *delivery) { d.at = t }
}

// Stale signs with a timestamp age in the past; Standard Webhooks receivers
// refuse anything more than 5 minutes off, so 10*time.Minute is a replay.
func Stale(age time.Duration) Option {
	return func(d *delivery) { d.at = d.at.Add(-age) }
}

// Unsigned leaves out the webhook-id, webhook-timestamp and
// webhook-signature headers.
func Unsigned() Option {
	return func(d *delivery) { d.key = nil }
}

// WithoutHeaders leaves out the hook's custom headers.
func WithoutHeaders() Option {
	return func(d *delivery) { d.skipHeaders = true }
}

// Header sets one more header, or overrides a custom one (e.g. a wrong
// shared secret).
func Header(name, value string) Option {
	return func(d *delivery) {
		if d.extra == nil {
			d.extra = make(map[string]string)
		}
		d.extra[name] = value
	}
}

// Request builds the HTTP request of one delivery of ev, for a handler under
// test (handler.ServeHTTP(recorder, req)) or for Send.
func (s *Sender) Request(ctx context.Context, ev Event, opts ...Option) (*http.Request, error) {
	d := delivery{at: s.now()}
	if s.ClientSecret != "" {
		d.key = []byte(s.ClientSecret)
	}
	for _, o := range opts {
		o(&d)
	}
	body := ev.Body()
	header := make(http.Header)
	header.Set("Content-Type", "application/json")
	if d.key != nil {
		if err := sign(header, d.key, ev.ID, d.at, body); err != nil {
			return nil, err
		}
	}
	if d.tamper {
		body = tamper(ev)
	}
	if !d.skipHeaders {
		for k, v := range s.Headers {
			header.Set(k, v)
		}
	}
	for k, v := range d.extra {
		header.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook: build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return req, nil
}

func sign(h http.Header, key []byte, id string, at time.Time, body []byte) error {
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return fmt.Errorf("webhook: signing key: %w", err)
	}
	sig, err := wh.Sign(id, at, body)
	if err != nil {
		return fmt.Errorf("webhook: sign: %w", err)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, fmt.Sprint(at.Unix()))
	h.Set(HeaderSignature, sig)
	return nil
}

// tamper returns the body of ev with another order id.
func tamper(ev Event) []byte {
	env := ev.Envelope()
	env.Data.ID++
	b, _ := json.Marshal(env) // plain structs: cannot fail
	return b
}

// Send delivers ev once and returns the status of the answer. A retry of
// the event is another Send of the same Event.
func (s *Sender) Send(ctx context.Context, ev Event, opts ...Option) (int, error) {
	req, err := s.Request(ctx, ev, opts...)
	if err != nil {
		return 0, err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook: deliver %s of order %d: %w", ev.Scope, ev.Data.ID, err)
	}
	defer resp.Body.Close()
	// Read the answer so the connection is reused, as a real sender's is.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// Result is the outcome of one delivery of SendParallel.
type Result struct {
	Status int // 0 when Err is set
	Err    error
}

// SendParallel delivers every event, at most concurrency at a time (at least
// one), and returns the results in the order of events. Put one Event in
// several times to send duplicates that race each other.
func (s *Sender) SendParallel(ctx context.Context, events []Event, concurrency int, opts ...Option) []Result {
	results := make([]Result, len(events))
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for i, ev := range events {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i].Status, results[i].Err = s.Send(ctx, ev, opts...)
		})
	}
	wg.Wait()
	return results
}

func (s *Sender) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	// BigCommerce's own delivery timeout is not documented; 10 s keeps a
	// stuck receiver from stalling a test or the send command.
	return &http.Client{Timeout: 10 * time.Second}
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// SignRequest signs an arbitrary body the way BigCommerce signs deliveries
// (Standard Webhooks, the raw client secret as key) and sets the headers on
// req: for tests that send bodies no Event can make (malformed, oversized).
func SignRequest(req *http.Request, clientSecret, id string, at time.Time, body []byte) error {
	return sign(req.Header, []byte(clientSecret), id, at, body)
}
