package bcsim

import (
	"crypto/subtle"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Rate-limit headers BigCommerce sends with every API answer.
const (
	HeaderWindowMs      = "X-Rate-Limit-Time-Window-Ms"
	HeaderResetMs       = "X-Rate-Limit-Time-Reset-Ms"
	HeaderRequestsQuota = "X-Rate-Limit-Requests-Quota"
	HeaderRequestsLeft  = "X-Rate-Limit-Requests-Left"
)

// unlimitedQuota is what the headers show when no quota is configured: a
// client that paces itself on the headers then never waits.
const unlimitedQuota = math.MaxInt32

// api wraps an endpoint handler with what every BigCommerce API request goes
// through, in BigCommerce's order: counting, authentication, the store's
// quota, then (here) injected faults.
func (s *Server) api(k kind, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := s.admit(k, r.PathValue("store"), r.Header.Get("X-Auth-Token"), w.Header())
		if status != 0 {
			writeError(w, r, status, "")
			return
		}
		h(w, r)
	}
}

// admit counts the request and decides whether it reaches the endpoint. It
// sets the rate-limit headers and returns 0, or the status to answer with.
func (s *Server) admit(k kind, hash, token string, h http.Header) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countLocked(k)
	st := s.storeLocked(hash)
	now := s.opts.Now()
	s.windowLocked(st, now)
	want, ok := s.tokens[hash]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		// A request that is not the store's does not spend its quota.
		s.stats.Unauthorized++
		s.rateHeadersLocked(st, now, h)
		return http.StatusUnauthorized
	}
	if s.opts.Quota > 0 && st.used >= s.opts.Quota {
		s.stats.RateLimited++
		s.rateHeadersLocked(st, now, h)
		return http.StatusTooManyRequests
	}
	st.used++
	s.rateHeadersLocked(st, now, h)
	if (!s.faults.WritesOnly || k.writes()) && s.faultLocked() {
		s.stats.Faulted++
		if s.faults.Status != 0 {
			return s.faults.Status
		}
		return http.StatusInternalServerError
	}
	return 0
}

// windowLocked starts the store's next rate-limit window once the last one
// is over.
func (s *Server) windowLocked(st *store, now time.Time) {
	if now.Sub(st.windowStart) >= s.window || now.Before(st.windowStart) {
		st.windowStart, st.used = now, 0
	}
}

// SpendQuota spends up to n of the store's requests in the current window,
// as the store's other apps do (the quota is one per store), and returns how
// many it could spend: the rest would have been answered 429. Other apps'
// requests are counted in Stats.OtherApps only.
func (s *Server) SpendQuota(hash string, n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.storeLocked(hash)
	s.windowLocked(st, s.opts.Now())
	if s.opts.Quota > 0 {
		n = min(n, max(s.opts.Quota-st.used, 0))
	}
	st.used += n
	s.stats.OtherApps += n
	return n
}

func (s *Server) countLocked(k kind) {
	s.stats.Total++
	counters := [...]*int{
		kindOrder:             &s.stats.Order,
		kindProducts:          &s.stats.Products,
		kindShippingAddresses: &s.stats.ShippingAddresses,
		kindList:              &s.stats.List,
		kindPutOrder:          &s.stats.PutOrder,
		kindMetafieldsGet:     &s.stats.MetafieldsGet,
		kindMetafieldsPost:    &s.stats.MetafieldsPost,
		kindMetafieldsPut:     &s.stats.MetafieldsPut,
		kindMetafieldsDelete:  &s.stats.MetafieldsDelete,
	}
	*counters[k]++
}

// writes reports whether requests of kind k change something.
func (k kind) writes() bool {
	switch k {
	case kindPutOrder, kindMetafieldsPost, kindMetafieldsPut, kindMetafieldsDelete:
		return true
	}
	return false
}

func (s *Server) faultLocked() bool {
	if s.faults.Count > 0 {
		s.faults.Count--
		return true
	}
	return s.faults.Rate > 0 && s.rng.Float64() < s.faults.Rate
}

func (s *Server) rateHeadersLocked(st *store, now time.Time, h http.Header) {
	quota, left := unlimitedQuota, unlimitedQuota
	if s.opts.Quota > 0 {
		quota, left = s.opts.Quota, max(s.opts.Quota-st.used, 0)
	}
	reset := st.windowStart.Add(s.window).Sub(now)
	h.Set(HeaderWindowMs, strconv.FormatInt(s.window.Milliseconds(), 10))
	h.Set(HeaderResetMs, strconv.FormatInt(max(reset.Milliseconds(), 0), 10))
	h.Set(HeaderRequestsQuota, strconv.Itoa(quota))
	h.Set(HeaderRequestsLeft, strconv.Itoa(left))
}

// Default messages of error bodies, by status.
var errorMessages = map[int]string{
	http.StatusBadRequest:          "The request is invalid.",
	http.StatusUnauthorized:        "You are not authorized to access this resource. Check the X-Auth-Token header.",
	http.StatusNotFound:            "The requested resource was not found.",
	http.StatusConflict:            "The request conflicts with the current state of the resource.",
	http.StatusUnprocessableEntity: "The request payload is invalid.",
	http.StatusTooManyRequests:     "Too many requests: the store's API quota is spent. Retry after X-Rate-Limit-Time-Reset-Ms.",
	http.StatusInternalServerError: "Internal server error.",
	http.StatusServiceUnavailable:  "Service temporarily unavailable.",
}

// writeError answers with BigCommerce's error body for the API version of
// the path: v2 sends a list of {status, message}, v3 a single object with
// status, title and type.
func writeError(w http.ResponseWriter, r *http.Request, status int, message string) {
	if message == "" {
		message = errorMessages[status]
	}
	if message == "" {
		message = http.StatusText(status)
	}
	if strings.Contains(r.URL.Path, "/v3/") {
		writeJSON(w, status, map[string]any{
			"status": status,
			"title":  message,
			"type":   "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes",
			"errors": map[string]string{},
		})
		return
	}
	writeJSON(w, status, []map[string]any{{"status": status, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// noContent answers 204 with an empty body, which is how BigCommerce v2
// answers a list or page with nothing in it.
func noContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

// pathID parses a numeric path segment; ok is false if it is not a number.
func pathID(r *http.Request, name string) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue(name), 10, 64)
	return id, err == nil
}

// paging reads the page (1-based) and limit query parameters. Out-of-range
// values are clamped rather than rejected.
func paging(r *http.Request) (page, limit int) {
	page, limit = 1, 50
	if p, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && p > 0 {
		page = p
	}
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 {
		limit = min(l, 250)
	}
	return page, limit
}

// pageOf returns the items of one page.
func pageOf[T any](items []T, page, limit int) []T {
	start := (page - 1) * limit
	if start >= len(items) {
		return nil
	}
	return items[start:min(start+limit, len(items))]
}

// baseURL is the root for link fields.
func (s *Server) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimSuffix(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
