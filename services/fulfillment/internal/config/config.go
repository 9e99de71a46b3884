// Package config reads the fulfillment service's settings from the
// environment and validates them, naming the variable that is wrong.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
	"github.com/backorder/backorder/services/internal/debugserver"
)

// Config is every setting of the fulfillment service. The README lists them
// with their defaults.
type Config struct {
	ListenAddr string

	EtcdEndpoints      []string
	EtcdDataDir        string
	EtcdEmbedURL       string
	EtcdPrefix         string
	EtcdDialTimeout    time.Duration
	LockTTL            time.Duration
	BigCommerceURL     string
	BigCommerceStore   string
	BigCommerceToken   string
	BigCommerceTimeout time.Duration
	// BigCommerceWriteBack writes the supplier's id to the order's
	// metafield once submitted (step 9).
	BigCommerceWriteBack bool
	// BigCommerceSideLoad reads an order's lines and shipping address with
	// the order (include=consignments.line_items), where they are whole.
	BigCommerceSideLoad bool
	// BigCommerceQuotaBurst is how many requests may go at once before the
	// requests left in the store's quota are spread evenly over the rest of
	// its window; -1 (off): spend the quota as work comes.
	BigCommerceQuotaBurst int

	TropShipURL           string
	TropShipTokenPath     string
	TropShipOrdersPath    string
	TropShipClientID      string
	TropShipClientSecret  string
	TropShipMode          order.Mode
	TropShipValidateFirst bool
	TropShipTimeout       time.Duration
	TropShipLookup        bool
	TropShipLookupSettle  time.Duration
	// TropShipBreaker is the number of live calls in a row ending
	// ambiguous that holds live orders back (fulfill.Breaker); 0: off.
	TropShipBreaker int

	Policy order.Policy
	// Role is the part of the flow this replica runs (ROLE).
	Role          fulfill.Role
	Workers       int
	SweepInterval time.Duration
	SweepGrace    time.Duration
	// OrdersSweep is how often the Orders API is swept for orders whose
	// webhooks never came (0: off).
	OrdersSweep     time.Duration
	Retry           order.RetryPolicy
	ShutdownTimeout time.Duration
	LogLevel        string
	DebugAddr       string
	// MetricsAddr is the host:port of the Prometheus /metrics listener
	// ("": off).
	MetricsAddr string
}

// Load reads the settings through getenv (os.Getenv in main) and validates
// them. All problems are reported at once.
func Load(getenv func(string) string) (Config, error) {
	e := env{get: getenv}
	c := Config{
		ListenAddr:            e.str("LISTEN_ADDR", ":9090"),
		EtcdEndpoints:         e.list("ETCD_ENDPOINTS", ""),
		EtcdDataDir:           e.str("ETCD_DATA_DIR", "data/etcd"),
		EtcdEmbedURL:          e.str("ETCD_EMBED_CLIENT_URL", "http://127.0.0.1:2379"),
		EtcdPrefix:            e.str("ETCD_PREFIX", "/backorder/"),
		EtcdDialTimeout:       e.duration("ETCD_DIAL_TIMEOUT", 5*time.Second),
		LockTTL:               e.duration("LOCK_TTL", 10*time.Second),
		BigCommerceURL:        e.url("BIGCOMMERCE_API_URL", "https://api.bigcommerce.com"),
		BigCommerceStore:      e.required("BIGCOMMERCE_STORE_HASH"),
		BigCommerceToken:      e.required("BIGCOMMERCE_ACCESS_TOKEN"),
		BigCommerceTimeout:    e.duration("BIGCOMMERCE_TIMEOUT", 10*time.Second),
		BigCommerceWriteBack:  e.boolean("BIGCOMMERCE_WRITE_BACK", true),
		BigCommerceSideLoad:   e.boolean("BIGCOMMERCE_SIDE_LOAD", true),
		BigCommerceQuotaBurst: e.burst("BIGCOMMERCE_QUOTA_BURST", 10),
		TropShipURL:           e.url("TROPSHIP_BASE_URL", ""),
		TropShipTokenPath:     e.str("TROPSHIP_TOKEN_PATH", "/oauth/token"),
		TropShipOrdersPath:    e.str("TROPSHIP_ORDERS_PATH", "/v1/offline-orders"),
		TropShipClientID:      e.str("TROPSHIP_CLIENT_ID", ""),
		TropShipClientSecret:  e.str("TROPSHIP_CLIENT_SECRET", ""),
		TropShipValidateFirst: e.boolean("TROPSHIP_VALIDATE_FIRST", false),
		TropShipTimeout:       e.duration("TROPSHIP_TIMEOUT", 30*time.Second),
		TropShipLookup:        e.boolean("TROPSHIP_LOOKUP", false),
		TropShipLookupSettle:  e.duration("TROPSHIP_LOOKUP_SETTLE", 10*time.Second),
		TropShipBreaker:       e.countOrOff("TROPSHIP_BREAKER", 5),
		Workers:               e.integer("WORKERS", 16),
		SweepInterval:         e.duration("SWEEP_INTERVAL", 5*time.Second),
		SweepGrace:            e.duration("SWEEP_GRACE", 10*time.Second),
		OrdersSweep:           e.durationOrOff("ORDERS_SWEEP_INTERVAL", 15*time.Minute),
		ShutdownTimeout:       e.duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		LogLevel:              strings.ToLower(e.str("LOG_LEVEL", "info")),
		DebugAddr:             e.str(debugserver.EnvAddr, ""),
		MetricsAddr:           e.str("METRICS_ADDR", ""),
	}
	c.Retry = order.RetryPolicy{
		Base: e.duration("RETRY_BASE", 5*time.Second),
		Max:  e.duration("RETRY_MAX", 10*time.Minute),
	}
	if c.TropShipLookup {
		c.Retry.LookupSettle = c.TropShipLookupSettle
	}
	if c.Retry.Base > c.Retry.Max {
		e.fail("RETRY_BASE", fmt.Sprintf("(%s) is longer than RETRY_MAX (%s): the first backoff would be cut to RETRY_MAX", c.Retry.Base, c.Retry.Max))
	}
	if n := e.integer("RETRY_MAX_ATTEMPTS", 10); n < 1 {
		e.fail("RETRY_MAX_ATTEMPTS", "must be at least 1")
	} else {
		c.Retry.MaxAttempts = uint32(n)
	}
	c.Policy = order.Policy{
		EligibleStatuses: e.statuses("ELIGIBLE_STATUSES", "11"),
		Countries:        e.list("SHIP_COUNTRIES", "GB"),
		SKUPrefix:        e.str("SKU_PREFIX", ""),
	}
	role := strings.ToLower(e.str("ROLE", "all"))
	if r, ok := fulfill.ParseRole(role); ok {
		c.Role = r
	} else {
		e.fail("ROLE", fmt.Sprintf("is %q; want all (record and process), intake (record only) or process (record, process, and follow the queue for the intake replicas' events)", role))
	}
	switch m := strings.ToLower(e.str("TROPSHIP_MODE", "validate")); m {
	case "validate":
		c.TropShipMode = order.ModeValidate
	case "live":
		c.TropShipMode = order.ModeLive
	default:
		e.fail("TROPSHIP_MODE", fmt.Sprintf("is %q; want validate or live", m))
	}
	if c.TropShipURL == "" && e.str("TROPSHIP_BASE_URL", "") == "" {
		e.fail("TROPSHIP_BASE_URL", "is required (the root of the TropShip API)")
	}
	// Validation calls need a token too, so the credentials are required in
	// both modes.
	if c.TropShipClientID == "" {
		e.fail("TROPSHIP_CLIENT_ID", "is required (validate and live modes both call TropShip)")
	}
	if c.TropShipClientSecret == "" {
		e.fail("TROPSHIP_CLIENT_SECRET", "is required (validate and live modes both call TropShip)")
	}
	if !validPath(c.TropShipTokenPath) && !validHTTPURL(c.TropShipTokenPath) {
		e.fail("TROPSHIP_TOKEN_PATH", fmt.Sprintf("is %q; want a path under TROPSHIP_BASE_URL starting with /, like /oauth/token, or a full http(s):// URL", c.TropShipTokenPath))
	}
	if !validPath(c.TropShipOrdersPath) {
		e.fail("TROPSHIP_ORDERS_PATH", fmt.Sprintf("is %q; want a path under TROPSHIP_BASE_URL starting with /, like /v1/offline-orders", c.TropShipOrdersPath))
	}
	if !asciiAlnum(c.BigCommerceStore, true) && c.BigCommerceStore != "" {
		e.fail("BIGCOMMERCE_STORE_HASH", fmt.Sprintf("is %q; want the store hash alone, letters and digits, like abc123 (the part after stores/ in the API path)", c.BigCommerceStore))
	}
	if u, err := url.Parse(c.EtcdEmbedURL); len(c.EtcdEndpoints) == 0 && (err != nil || u.Scheme != "http" || u.Host == "") {
		e.fail("ETCD_EMBED_CLIENT_URL", fmt.Sprintf("is %q; want an http:// URL like http://127.0.0.1:2379 (the embedded etcd has no TLS)", c.EtcdEmbedURL))
	}
	if c.Workers < 1 {
		e.fail("WORKERS", "must be at least 1")
	}
	if c.LockTTL < time.Second {
		e.fail("LOCK_TTL", "must be at least 1s (etcd leases count whole seconds)")
	}
	if len(c.Policy.Countries) == 0 {
		e.fail("SHIP_COUNTRIES", "names no country")
	}
	for i, code := range c.Policy.Countries {
		c.Policy.Countries[i] = strings.ToUpper(code)
		if len(code) != 2 || !asciiAlnum(code, false) {
			e.fail("SHIP_COUNTRIES", fmt.Sprintf("has %q; want ISO 3166-1 alpha-2 codes like GB", code))
		}
	}
	for _, ep := range c.EtcdEndpoints {
		if !validEtcdEndpoint(ep) {
			e.fail("ETCD_ENDPOINTS", fmt.Sprintf("has %q; want host:port or a URL, like etcd-0:2379 or http://10.0.0.1:2379", ep))
		}
	}
	if err := debugserver.Validate(c.MetricsAddr); err != nil {
		e.fail("METRICS_ADDR", "is wrong: "+err.Error())
	}
	if err := debugserver.Validate(c.DebugAddr); err != nil {
		e.fail(debugserver.EnvAddr, "is wrong: "+err.Error())
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		e.fail("LOG_LEVEL", fmt.Sprintf("is %q; want debug, info, warn or error", c.LogLevel))
	}
	return c, errors.Join(e.errs...)
}

// env reads variables and collects every problem.
type env struct {
	get  func(string) string
	errs []error
}

func (e *env) fail(name, msg string) { e.errs = append(e.errs, fmt.Errorf("%s %s", name, msg)) }

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

func (e *env) required(name string) string {
	v := e.str(name, "")
	if v == "" {
		e.fail(name, "is required")
	}
	return v
}

// storeAPIPath matches a BigCommerce store's API path, pasted whole where
// the API's root belongs: …/stores/abc123, …/stores/abc123/v3/.
var storeAPIPath = regexp.MustCompile(`/stores/[^/]+(/v[0-9]+)?/?$`)

func (e *env) url(name, def string) string {
	v := e.str(name, def)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		e.fail(name, fmt.Sprintf("is %q; want an http(s) URL like https://api.example.com", v))
		return ""
	case u.ForceQuery || strings.ContainsAny(v, "?#"):
		// Paths are appended to it: a query would end up in the middle.
		e.fail(name, fmt.Sprintf("is %q; want a URL without a query or fragment (the API's paths are appended to it)", v))
		return ""
	case name == "BIGCOMMERCE_API_URL" && storeAPIPath.MatchString(u.Path):
		// https://api.bigcommerce.com/stores/abc123/v3 would become
		// …/stores/abc123/v3/stores/abc123/v2/orders/….
		e.fail(name, fmt.Sprintf("is %q; want the API's root (e.g. https://api.bigcommerce.com): /stores/<hash>/v2 and /v3 are appended to it", v))
		return ""
	}
	return strings.TrimRight(v, "/")
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, fmt.Sprintf("is %q; want a positive duration like 5s or 2m", v))
		return def
	}
	return d
}

// durationOrOff is duration that also takes 0 or off (returned as 0).
func (e *env) durationOrOff(name string, def time.Duration) time.Duration {
	return orOff(e, name, def, "a positive duration like 15m", func(v string) (time.Duration, bool) {
		d, err := time.ParseDuration(v)
		return d, err == nil && d > 0
	})
}

// countOrOff is a whole number from 1 up, or 0 or off (returned as 0).
func (e *env) countOrOff(name string, def int) int {
	return orOff(e, name, def, "a whole number from 1 up", func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 1
	})
}

// orOff reads a setting that takes 0 or off (returned as T's zero) or
// what parse accepts; want says what that is, for the error.
func orOff[T any](e *env, name string, def T, want string, parse func(string) (T, bool)) T {
	switch v := strings.ToLower(strings.TrimSpace(e.str(name, ""))); v {
	case "":
		return def
	case "0", "off":
		var zero T
		return zero
	default:
		x, ok := parse(v)
		if !ok {
			e.fail(name, fmt.Sprintf("is %q; want %s, or off", v, want))
			return def
		}
		return x
	}
}

func (e *env) integer(name string, def int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, fmt.Sprintf("is %q; want a whole number", v))
		return def
	}
	return n
}

// burst is a whole number from 1 to 10 000, or off (returned as -1).
func (e *env) burst(name string, def int) int {
	switch v := strings.ToLower(e.str(name, "")); v {
	case "":
		return def
	case "off":
		return -1
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10_000 {
			e.fail(name, fmt.Sprintf("is %q; want a whole number of requests from 1 to 10000, or off", v))
			return def
		}
		return n
	}
}

func (e *env) boolean(name string, def bool) bool {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, fmt.Sprintf("is %q; want true or false", v))
		return def
	}
	return b
}

func (e *env) list(name, def string) []string {
	var out []string
	for _, s := range strings.Split(e.str(name, def), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (e *env) statuses(name, def string) []uint32 {
	before := len(e.errs)
	var out []uint32
	for _, s := range e.list(name, def) {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > 14 {
			e.fail(name, fmt.Sprintf("has %q; want BigCommerce status ids 0-14 like 11", s))
			continue
		}
		out = append(out, uint32(n))
	}
	if len(out) == 0 && len(e.errs) == before {
		e.fail(name, "names no status")
	}
	return out
}

// validPath reports whether p is an absolute URL path with no query or
// fragment.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "?# ")
}

// validHTTPURL reports whether s is an absolute http(s) URL, its scheme in
// lower case as the TropShip client tells a URL from a path by it.
func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) && u.Host != ""
}

// asciiAlnum reports whether s is not empty and only ASCII letters, and
// digits if digits is set. A store hash is put in API paths and etcd keys
// as it is; a country code is two letters.
func asciiAlnum(s string, digits bool) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || digits && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// validEtcdEndpoint accepts what the etcd client accepts: host:port, or an
// http(s) URL with a host and a port.
func validEtcdEndpoint(ep string) bool {
	hostPort := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false
		}
		hostPort = u.Host
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}
