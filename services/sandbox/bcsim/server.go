// Package bcsim is a BigCommerce simulator: an http.Handler that serves the
// parts of the Orders API (v2 orders, lines, shipping addresses, listing and
// updates, consignments side-loaded with include; v3 order metafields) this
// project uses, with BigCommerce's paths, JSON shapes, authentication,
// rate-limit headers and error bodies.
//
// Tests run it in-process behind httptest.NewServer and seed it through the
// Go API (AddOrder, SetStatus); the sandbox command serves it on a port, with
// an admin API under /_sim/ for seeding by hand. Faults (5xx answers) and a
// request quota (429) can be switched on to exercise clients' retry paths.
package bcsim

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Errors of the Go API.
var (
	// ErrNotFound: the store has no such order.
	ErrNotFound = errors.New("bcsim: order not found")
	// ErrInvalidStatus: the status id is not one of BigCommerce's (0 to 14).
	ErrInvalidStatus = errors.New("bcsim: invalid status_id")
)

// Options configure a Server. The zero value serves no store: every API
// request answers 401 until Tokens names one.
type Options struct {
	// Tokens maps a store hash to the X-Auth-Token its API accepts.
	Tokens map[string]string
	// BaseURL is the root used in the "url" of link fields (products,
	// shipping_addresses), e.g. "http://127.0.0.1:8081". Empty: derived from
	// each request's Host.
	BaseURL string
	// Quota is the number of API requests a store may make per Window;
	// beyond it the API answers 429. Zero means unlimited.
	Quota int
	// Window is the rate-limit window; zero means BigCommerce's 30 s.
	Window time.Duration
	// Seed seeds the random source of fault injection, so a test run can be
	// repeated. Zero means 1.
	Seed uint64
	// Now is the clock (dates, rate-limit windows); nil means time.Now.
	Now func() time.Time
	// NoSideLoad serves GET /v2/orders/{id} without the consignments its
	// include parameter asks for, as a server that ignores include would:
	// clients must then read lines and addresses from their own resources.
	NoSideLoad bool
	// OnChange, if set, is called after every change BigCommerce would
	// announce with a webhook (order created, status or staff notes
	// changed), outside the simulator's lock. It runs in the goroutine that
	// made the change, so it should not block for long.
	OnChange func(Change)
}

// Faults switch on 5xx answers from the API (not from /_sim/).
type Faults struct {
	// Rate is the probability, 0 to 1, that an API request fails.
	Rate float64 `json:"rate"`
	// Count makes the next Count API requests fail, before Rate applies.
	Count int `json:"count"`
	// Status is the status of a failed request; zero means 500.
	Status int `json:"status"`
	// WritesOnly limits the faults to requests that change something
	// (POST, PUT, DELETE): reads are answered as usual.
	WritesOnly bool `json:"writes_only,omitempty"`
}

// Stats counts API requests by endpoint kind. Every request is counted,
// including those answered 401, 429 or with an injected fault.
type Stats struct {
	Order             int `json:"order"`              // GET /v2/orders/{id}
	Products          int `json:"products"`           // GET /v2/orders/{id}/products, per page
	ShippingAddresses int `json:"shipping_addresses"` // GET /v2/orders/{id}/shipping_addresses
	List              int `json:"list"`               // GET /v2/orders
	PutOrder          int `json:"put_order"`          // PUT /v2/orders/{id}
	MetafieldsGet     int `json:"metafields_get"`
	MetafieldsPost    int `json:"metafields_post"`
	MetafieldsPut     int `json:"metafields_put"`
	MetafieldsDelete  int `json:"metafields_delete"`

	Total        int `json:"total"`
	Unauthorized int `json:"unauthorized"`
	RateLimited  int `json:"rate_limited"`
	Faulted      int `json:"faulted"`
	// PutOrderExtraFields counts order updates that sent fields other than
	// status_id and staff_notes: on a real store those can clear discounts
	// or replace fees, so a client should never send them.
	PutOrderExtraFields int `json:"put_order_extra_fields"`
	// OtherApps counts the store's requests spent by SpendQuota, as other
	// apps on the store would (not in Total).
	OtherApps int `json:"other_apps,omitempty"`
}

// kind names an endpoint for counting.
type kind int

const (
	kindOrder kind = iota
	kindProducts
	kindShippingAddresses
	kindList
	kindPutOrder
	kindMetafieldsGet
	kindMetafieldsPost
	kindMetafieldsPut
	kindMetafieldsDelete
)

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	window time.Duration

	mu          sync.Mutex
	stores      map[string]*store
	tokens      map[string]string
	faults      Faults
	rng         *rand.Rand
	stats       Stats
	nextOrderID uint64
	nextLineID  uint64
	nextAddrID  uint64
	nextMetaID  uint64
}

// store is the state of one BigCommerce store.
type store struct {
	orders     map[uint64]*Order
	metafields map[uint64][]*Metafield // by order id, in creation order
	// Fixed rate-limit window: used requests since windowStart.
	windowStart time.Time
	used        int
}

// New returns a simulator with no orders.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	s := &Server{
		opts:        opts,
		window:      opts.Window,
		stores:      make(map[string]*store),
		tokens:      make(map[string]string, len(opts.Tokens)),
		rng:         rand.New(rand.NewPCG(seed, seed)),
		nextOrderID: 100, // BigCommerce stores start numbering orders at 100
		nextLineID:  1,
		nextAddrID:  1,
		nextMetaID:  1,
	}
	if s.window <= 0 {
		s.window = 30 * time.Second
	}
	for hash, tok := range opts.Tokens {
		s.tokens[hash] = tok
	}
	s.mux = s.routes()
	return s
}

// ServeHTTP serves the API and the /_sim/ admin endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	const v2 = "/stores/{store}/v2/orders"
	const v3 = "/stores/{store}/v3/orders/{id}/metafields"
	m.HandleFunc("GET "+v2, s.api(kindList, s.listOrders))
	m.HandleFunc("GET "+v2+"/{id}", s.api(kindOrder, s.getOrder))
	m.HandleFunc("PUT "+v2+"/{id}", s.api(kindPutOrder, s.putOrder))
	m.HandleFunc("GET "+v2+"/{id}/products", s.api(kindProducts, s.getProducts))
	m.HandleFunc("GET "+v2+"/{id}/shipping_addresses", s.api(kindShippingAddresses, s.getShippingAddresses))
	m.HandleFunc("GET "+v3, s.api(kindMetafieldsGet, s.getMetafields))
	m.HandleFunc("POST "+v3, s.api(kindMetafieldsPost, s.postMetafield))
	m.HandleFunc("PUT "+v3+"/{mid}", s.api(kindMetafieldsPut, s.putMetafield))
	m.HandleFunc("DELETE "+v3+"/{mid}", s.api(kindMetafieldsDelete, s.deleteMetafield))

	m.HandleFunc("GET /_sim/stats", s.adminStats)
	m.HandleFunc("GET /_sim/faults", s.adminGetFaults)
	m.HandleFunc("PUT /_sim/faults", s.adminPutFaults)
	m.HandleFunc("POST /_sim/orders", s.adminAddOrder)
	m.HandleFunc("GET /_sim/orders/{id}", s.adminGetOrder)
	m.HandleFunc("POST /_sim/orders/{id}/status", s.adminSetStatus)
	return m
}

// SetToken sets the X-Auth-Token a store's API accepts.
func (s *Server) SetToken(storeHash, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[storeHash] = token
}

// SetFaults replaces the fault switches.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the fault switches; Count is what remains of it.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// storeLocked returns a store's state, creating it on first use.
func (s *Server) storeLocked(hash string) *store {
	st := s.stores[hash]
	if st == nil {
		st = &store{orders: make(map[uint64]*Order), metafields: make(map[uint64][]*Metafield)}
		s.stores[hash] = st
	}
	return st
}

func (s *Server) notify(changes []Change) {
	if s.opts.OnChange == nil {
		return
	}
	for _, c := range changes {
		s.opts.OnChange(c)
	}
}
