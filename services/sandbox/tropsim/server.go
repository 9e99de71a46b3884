// Package tropsim is a TropShip simulator: an http.Handler that follows the
// contract of docs/tropship.md (OAuth2 client-credentials tokens, offline
// orders with validate_only, the optional lookup by reference).
//
// Like the real supplier it does not deduplicate: the same reference sent
// twice creates two orders. It keeps a ledger of every order it created and
// counts such duplicates, which is what tests of exactly-once submission
// assert on. Fault switches make it fail before or after creating an order,
// hang, answer slowly, throttle, and expire or revoke tokens, so the client's
// handling of ambiguous outcomes can be exercised.
package tropsim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	// ClientID and ClientSecret are the credentials /oauth/token accepts.
	ClientID     string
	ClientSecret string
	// TokenTTL is the lifetime of a token; zero means TropShip's 5 minutes.
	// Faults.TokenTTL overrides it.
	TokenTTL time.Duration
	// Catalog lists the known product codes. Nil accepts any code.
	Catalog []string
	// DisableLookup makes GET /v1/offline-orders answer 404, as on a
	// supplier API without a lookup by reference.
	DisableLookup bool
	// Seed seeds the random source of rate-based faults; zero means 1.
	Seed uint64
	// Now is the clock (token expiry, created_at); nil means time.Now.
	Now func() time.Time
	// MaxHang bounds how long a "timeout after create" fault holds a
	// request when the client never gives up; zero means 2 minutes.
	MaxHang time.Duration
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: releases hanging requests

	mu       sync.Mutex
	rng      *rand.Rand
	tokens   map[string]time.Time // token -> expiry
	faults   Faults
	catalog  map[string]bool // nil: any code
	lookupOn bool
	orders   []Order
	counts   Counts
}

// New returns a simulator with an empty ledger.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 5 * time.Minute
	}
	if opts.MaxHang <= 0 {
		opts.MaxHang = 2 * time.Minute
	}
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s := &Server{
		opts:     opts,
		closed:   make(chan struct{}),
		rng:      rand.New(rand.NewPCG(seed, seed)),
		tokens:   make(map[string]time.Time),
		lookupOn: !opts.DisableLookup,
	}
	s.setCatalogLocked(opts.Catalog)
	s.mux = s.routes()
	return s
}

// ServeHTTP serves the API and the /_sim/ admin endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Close releases requests held by a "timeout after create" fault or by
// latency. Call it before closing an httptest.Server around the simulator,
// whose Close waits for running requests.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /oauth/token", s.handleToken)
	m.HandleFunc("POST /v1/offline-orders", s.handleCreate)
	m.HandleFunc("GET /v1/offline-orders", s.handleLookup)

	m.HandleFunc("GET /_sim/ledger", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Ledger())
	})
	m.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	m.HandleFunc("PUT /_sim/faults", s.adminPutFaults)
	m.HandleFunc("PUT /_sim/catalog", s.adminPutCatalog)
	m.HandleFunc("PUT /_sim/lookup", s.adminPutLookup)
	return m
}

// SetCatalog replaces the known product codes; nil accepts any code.
func (s *Server) SetCatalog(codes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setCatalogLocked(codes)
}

func (s *Server) setCatalogLocked(codes []string) {
	if codes == nil {
		s.catalog = nil
		return
	}
	s.catalog = make(map[string]bool, len(codes))
	for _, c := range codes {
		s.catalog[c] = true
	}
}

// SetLookup switches the lookup by reference on or off (off: 404).
func (s *Server) SetLookup(enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookupOn = enabled
}

func (s *Server) adminPutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be Faults as JSON: " + err.Error()})
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, s.Faults())
}

// adminPutCatalog takes a JSON list of product codes, or null for any.
func (s *Server) adminPutCatalog(w http.ResponseWriter, r *http.Request) {
	var codes []string
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&codes); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON list of product codes or null"})
		return
	}
	s.SetCatalog(codes)
	w.WriteHeader(http.StatusNoContent)
}

// adminPutLookup takes {"enabled": bool}.
func (s *Server) adminPutLookup(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.Enabled == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"enabled": true|false}`})
		return
	}
	s.SetLookup(*body.Enabled)
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// APIError is one entry of the errors list TropShip answers with.
type APIError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeErrors(w http.ResponseWriter, status int, errs ...APIError) {
	writeJSON(w, status, map[string][]APIError{"errors": errs})
}
