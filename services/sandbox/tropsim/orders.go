package tropsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// OrderRequest is the body of POST /v1/offline-orders.
type OrderRequest struct {
	Reference string   `json:"reference"`
	Delivery  Delivery `json:"delivery"`
	Lines     []Line   `json:"lines"`
	Notes     string   `json:"notes"`
}

// Delivery is where the supplier ships an order.
type Delivery struct {
	Name        string `json:"name"`
	Company     string `json:"company"`
	Line1       string `json:"line1"`
	Line2       string `json:"line2"`
	City        string `json:"city"`
	County      string `json:"county"`
	Postcode    string `json:"postcode"`
	CountryCode string `json:"country_code"`
	Phone       string `json:"phone"`
	Email       string `json:"email"`
}

// Line is one product of an order.
type Line struct {
	ProductCode string `json:"product_code"`
	Quantity    int    `json:"quantity"`
}

func (r OrderRequest) clone() OrderRequest {
	r.Lines = slices.Clone(r.Lines)
	return r
}

// MaxReference is the longest reference the supplier accepts.
const MaxReference = 50

// StatusReceived is the status of a newly created order.
const StatusReceived = "received"

// handleCreate serves POST /v1/offline-orders. The order of checks is the
// order a real front end would apply them: slowness, authentication,
// throttling and failures before the body is looked at, then validation,
// then creation, then failures that hide a created order.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r) {
		return
	}
	validateOnly, err := parseValidateOnly(r)
	if err != nil {
		s.reject(w, http.StatusBadRequest, APIError{Field: "validate_only", Code: "invalid", Message: "validate_only must be true or false"})
		return
	}
	if status, retryAfter := s.preFault(validateOnly); status != 0 {
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		writeErrors(w, status, APIError{Code: "unavailable", Message: http.StatusText(status)})
		return
	}
	var req OrderRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		s.reject(w, http.StatusBadRequest, APIError{Code: "invalid_json", Message: "The body is not a valid order: " + err.Error()})
		return
	}
	if errs := s.validate(&req); len(errs) > 0 {
		s.reject(w, http.StatusUnprocessableEntity, errs...)
		return
	}
	if validateOnly {
		s.mu.Lock()
		s.counts.Validations++
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"valid": true, "warnings": []string{}})
		return
	}
	o, fault, status := s.create(req)
	switch fault {
	case faultTimeout:
		s.hang(r.Context())
	case faultFail:
		writeErrors(w, status, APIError{Code: "internal", Message: "Internal error"})
	default:
		writeJSON(w, http.StatusCreated, map[string]string{
			"offline_order_id": o.OfflineOrderID, "reference": o.Reference, "status": o.Status,
		})
	}
}

// begin counts a /v1/ request, applies latency and checks the token. It
// answers the request itself and returns false when it must go no further.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	s.counts.Requests++
	latency := s.faults.Latency
	s.mu.Unlock()
	if !s.sleep(r.Context(), latency) {
		return false // the client gave up: nobody is listening
	}
	s.mu.Lock()
	ok := s.authorizedLocked(r)
	if !ok {
		s.counts.Unauthorized++
	}
	s.mu.Unlock()
	if !ok {
		writeUnauthorized(w)
	}
	return ok
}

func parseValidateOnly(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("validate_only")
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

// preFault decides the faults that strike before the body is read: a 429
// (with its Retry-After in seconds) or a 5xx. It returns status 0 for none.
func (s *Server) preFault(validateOnly bool) (status, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if validateOnly && !s.faults.ValidateToo {
		return 0, 0
	}
	if s.fireLocked(&s.faults.Throttle) {
		s.counts.Throttled++
		ra := s.faults.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		return http.StatusTooManyRequests, int((ra + time.Second - 1) / time.Second)
	}
	if s.fireLocked(&s.faults.FailBeforeCreate) {
		s.counts.FailedBeforeCreate++
		return s.faults.FailBeforeCreate.status(), 0
	}
	return 0, 0
}

func (s *Server) reject(w http.ResponseWriter, status int, errs ...APIError) {
	s.mu.Lock()
	s.counts.Rejections++
	s.mu.Unlock()
	writeErrors(w, status, errs...)
}

func (s *Server) validate(req *OrderRequest) []APIError {
	var errs []APIError
	add := func(field, code, msg string) { errs = append(errs, APIError{Field: field, Code: code, Message: msg}) }
	switch ref := strings.TrimSpace(req.Reference); {
	case ref == "":
		add("reference", "required", "reference is required")
	case utf8.RuneCountInString(req.Reference) > MaxReference:
		add("reference", "too_long", fmt.Sprintf("reference must be at most %d characters", MaxReference))
	}
	d := req.Delivery
	for field, v := range map[string]string{"name": d.Name, "line1": d.Line1, "city": d.City, "postcode": d.Postcode} {
		if strings.TrimSpace(v) == "" {
			add("delivery."+field, "required", "delivery "+field+" is required")
		}
	}
	if d.CountryCode != "GB" {
		add("delivery.country_code", "unsupported_country", "TropShip delivers to the United Kingdom (GB) only")
	}
	if len(req.Lines) == 0 {
		add("lines", "required", "an order needs at least one line")
	}
	s.mu.Lock()
	catalog := s.catalog
	for i, l := range req.Lines {
		field := fmt.Sprintf("lines[%d]", i)
		switch {
		case strings.TrimSpace(l.ProductCode) == "":
			add(field+".product_code", "required", "product_code is required")
		case catalog != nil && !catalog[l.ProductCode]:
			add(field+".product_code", "unknown_product", "product "+l.ProductCode+" is unknown or not dropship-enabled")
		}
		if l.Quantity <= 0 {
			add(field+".quantity", "invalid", "quantity must be greater than 0")
		}
	}
	s.mu.Unlock()
	// Map iteration made the order of delivery errors random; sort so that
	// answers are stable.
	slices.SortStableFunc(errs, func(a, b APIError) int { return strings.Compare(a.Field, b.Field) })
	return errs
}

type postFault int

const (
	faultNone postFault = iota
	faultFail
	faultTimeout
)

// create records a live order and decides whether its answer is lost. The
// order is in the ledger either way: that is what makes the outcome
// ambiguous for the client. For faultFail, status is the one to answer.
func (s *Server) create(req OrderRequest) (Order, postFault, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Order{
		OfflineOrderID: fmt.Sprintf("TS-%06d", len(s.orders)+1),
		Reference:      req.Reference,
		Status:         StatusReceived,
		CreatedAt:      s.opts.Now().UTC().Truncate(time.Second),
		Request:        req.clone(),
	}
	s.orders = append(s.orders, o)
	switch {
	case s.fireLocked(&s.faults.TimeoutAfterCreate):
		s.counts.TimedOutAfterCreate++
		return o, faultTimeout, 0
	case s.fireLocked(&s.faults.FailAfterCreate):
		s.counts.FailedAfterCreate++
		return o, faultFail, s.faults.FailAfterCreate.status()
	}
	return o, faultNone, 0
}

// hang holds a request until the client gives up, then drops the
// connection, so the client sees a timeout or a reset, never an answer.
func (s *Server) hang(ctx context.Context) {
	t := time.NewTimer(s.opts.MaxHang)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.closed:
	case <-t.C:
	}
	panic(http.ErrAbortHandler) // net/http's way to abort a response without logging
}

// sleep waits d, or until ctx ends or the simulator closes; it reports
// whether the full delay passed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// handleLookup serves GET /v1/offline-orders?reference=R.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r) {
		return
	}
	ref := r.URL.Query().Get("reference")
	s.mu.Lock()
	s.counts.Lookups++
	enabled := s.lookupOn
	failed := enabled && ref != "" && s.fireLocked(&s.faults.FailLookup)
	if failed {
		s.counts.FailedLookups++
	}
	var found []map[string]string
	for _, o := range s.orders {
		if o.Reference == ref {
			found = append(found, map[string]string{
				"offline_order_id": o.OfflineOrderID, "reference": o.Reference,
				"status": o.Status, "created_at": o.CreatedAt.Format(time.RFC3339),
			})
		}
	}
	status := s.faults.FailLookup.status()
	s.mu.Unlock()

	switch {
	case !enabled:
		writeErrors(w, http.StatusNotFound, APIError{Code: "not_found", Message: "Not found"})
	case ref == "":
		writeErrors(w, http.StatusBadRequest, APIError{Field: "reference", Code: "required", Message: "reference is required"})
	case failed:
		writeErrors(w, status, APIError{Code: "internal", Message: "Internal error"})
	default:
		if found == nil {
			found = []map[string]string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"orders": found})
	}
}
