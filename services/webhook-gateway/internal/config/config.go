// Package config reads and validates the webhook gateway's configuration.
//
// Configuration comes from environment variables only, so that one container
// image runs unchanged on a laptop and in production. Every error names the
// variable that is wrong and says what is wrong with it, because the person
// reading it is usually an operator looking at a crash loop, not at the code.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backorder/backorder/services/internal/debugserver"
)

// Environment variable names. They are shared with the rest of the team's
// services and documented in the README.
const (
	EnvListenAddr          = "LISTEN_ADDR"
	EnvFulfillmentAddr     = "FULFILLMENT_ADDR"
	EnvFulfillmentTimeout  = "FULFILLMENT_TIMEOUT"
	EnvAttemptTimeout      = "FULFILLMENT_ATTEMPT_TIMEOUT"
	EnvOperatorTimeout     = "OPERATOR_TIMEOUT"
	EnvClientSecret        = "BIGCOMMERCE_CLIENT_SECRET"
	EnvSecretHeader        = "WEBHOOK_SECRET_HEADER"
	EnvSecret              = "WEBHOOK_SECRET"
	EnvInsecureSkipVerify  = "WEBHOOK_INSECURE_SKIP_VERIFY"
	EnvAdminToken          = "ADMIN_TOKEN"
	EnvShutdownTimeout     = "SHUTDOWN_TIMEOUT"
	EnvLogLevel            = "LOG_LEVEL"
	defaultListenAddr      = ":8080"
	defaultFulfillmentAddr = "localhost:9090"
	defaultTimeout         = 5 * time.Second
	defaultAttemptTimeout  = time.Second
	defaultOperatorTimeout = time.Minute
	defaultShutdownTimeout = 10 * time.Second
)

// ErrInvalid is wrapped by every error Load and Validate return, so callers
// can tell a configuration mistake from other start-up failures.
var ErrInvalid = errors.New("invalid configuration")

// Config is the gateway's configuration. The zero value is not valid; use
// Load, or fill every field and call Validate.
type Config struct {
	// ListenAddr is the HTTP listener's address (LISTEN_ADDR).
	ListenAddr string
	// FulfillmentAddrs are the fulfillment service's addresses
	// (FULFILLMENT_ADDR, comma-separated). One entry is a gRPC target (a
	// host:port resolved by DNS, or a full target such as dns:///name:9090);
	// several entries are host:port replicas balanced round robin.
	FulfillmentAddrs []string
	// FulfillmentTimeout is the deadline of every gRPC call the gateway makes
	// (FULFILLMENT_TIMEOUT).
	FulfillmentTimeout time.Duration
	// AttemptTimeout bounds the first try of a delivery's call to a
	// replica (FULFILLMENT_ATTEMPT_TIMEOUT). A try that takes longer is
	// abandoned and the delivery tried again on another replica (recording
	// it is idempotent) with the rest of FulfillmentTimeout, and the
	// replica that did not answer is passed over until it answers again: a
	// frozen replica does not turn every other delivery into a slow 503.
	// Equal to FulfillmentTimeout: one try only.
	AttemptTimeout time.Duration
	// OperatorTimeout is the deadline of the operator actions
	// (OPERATOR_TIMEOUT): ProcessOrder, RetryOrder and ResolveOrder may wait
	// for an order's lock or a supplier call, and SweepOrders for a listing,
	// which may well take longer than a webhook's answer may.
	OperatorTimeout time.Duration
	// ClientSecret is the BigCommerce app client secret; its raw bytes are the
	// Standard Webhooks HMAC key (BIGCOMMERCE_CLIENT_SECRET).
	ClientSecret string
	// SecretHeader and Secret are the shared-secret header BigCommerce sends
	// with every delivery (WEBHOOK_SECRET_HEADER, WEBHOOK_SECRET).
	SecretHeader string
	Secret       string
	// InsecureSkipVerify lets the gateway start with no verification
	// mechanism at all: development only (WEBHOOK_INSECURE_SKIP_VERIFY).
	InsecureSkipVerify bool
	// AdminToken is the bearer token of the operator API; empty disables it
	// (ADMIN_TOKEN).
	AdminToken string
	// ShutdownTimeout bounds the graceful shutdown (SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// DebugAddr, when set, serves Go's profiles (pprof) there (DEBUG_ADDR).
	DebugAddr string
	// LogLevel is the lowest level logged (LOG_LEVEL: debug, info, warn or
	// error). Every request is logged at info, rejected and failed ones at
	// warn.
	LogLevel slog.Level
}

// Load reads the configuration through getenv (os.Getenv in production, a map
// in tests), applies defaults and validates it. Errors wrap ErrInvalid and
// name every variable that is wrong, not only the first.
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{
		ListenAddr:         orDefault(getenv(EnvListenAddr), defaultListenAddr),
		FulfillmentAddrs:   splitList(orDefault(getenv(EnvFulfillmentAddr), defaultFulfillmentAddr)),
		FulfillmentTimeout: defaultTimeout,
		AttemptTimeout:     defaultAttemptTimeout,
		OperatorTimeout:    defaultOperatorTimeout,
		// Secrets are trimmed, as the fulfillment service's settings are:
		// a trailing newline from a secret file would otherwise refuse
		// every delivery (a header value never carries one).
		ClientSecret:    strings.TrimSpace(getenv(EnvClientSecret)),
		SecretHeader:    strings.TrimSpace(getenv(EnvSecretHeader)),
		Secret:          strings.TrimSpace(getenv(EnvSecret)),
		AdminToken:      strings.TrimSpace(getenv(EnvAdminToken)),
		DebugAddr:       strings.TrimSpace(getenv(debugserver.EnvAddr)),
		ShutdownTimeout: defaultShutdownTimeout,
	}
	var errs []error
	switch v := strings.ToLower(strings.TrimSpace(getenv(EnvLogLevel))); v {
	case "", "info":
		cfg.LogLevel = slog.LevelInfo
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "warn":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not a log level (use debug, info, warn or error)", EnvLogLevel, v))
	}
	// A duration that does not parse is reported here, and its default
	// stays, so that Validate does not report it again.
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := parseDuration(name, v)
			if err != nil {
				errs = append(errs, err)
				return
			}
			*dst = d
		}
	}
	duration(EnvFulfillmentTimeout, &cfg.FulfillmentTimeout)
	duration(EnvAttemptTimeout, &cfg.AttemptTimeout)
	if getenv(EnvAttemptTimeout) == "" && cfg.FulfillmentTimeout > 0 {
		// A FULFILLMENT_TIMEOUT under the default try: one try.
		cfg.AttemptTimeout = min(cfg.AttemptTimeout, cfg.FulfillmentTimeout)
	}
	duration(EnvOperatorTimeout, &cfg.OperatorTimeout)
	duration(EnvShutdownTimeout, &cfg.ShutdownTimeout)
	if v := getenv(EnvInsecureSkipVerify); v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean (use true or false)", EnvInsecureSkipVerify, v))
		}
		cfg.InsecureSkipVerify = b
	}
	// Every problem at once, the parsed ones and those Validate finds.
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every problem of cfg, each naming its variable. The error
// wraps ErrInvalid.
func (cfg Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("%s: %q is not a host:port address (e.g. :8080): %w", EnvListenAddr, cfg.ListenAddr, err))
	}
	errs = append(errs, validateFulfillmentAddrs(cfg.FulfillmentAddrs))
	if err := debugserver.Validate(cfg.DebugAddr); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", debugserver.EnvAddr, err))
	}
	if cfg.FulfillmentTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", EnvFulfillmentTimeout, cfg.FulfillmentTimeout))
	}
	if cfg.AttemptTimeout <= 0 || cfg.AttemptTimeout > cfg.FulfillmentTimeout {
		errs = append(errs, fmt.Errorf("%s: must be positive and at most %s (%s), got %s",
			EnvAttemptTimeout, EnvFulfillmentTimeout, cfg.FulfillmentTimeout, cfg.AttemptTimeout))
	}
	if cfg.OperatorTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", EnvOperatorTimeout, cfg.OperatorTimeout))
	}
	if cfg.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", EnvShutdownTimeout, cfg.ShutdownTimeout))
	}
	switch {
	case cfg.SecretHeader != "" && cfg.Secret == "":
		errs = append(errs, fmt.Errorf("%s is set but %s is empty: set both or neither", EnvSecretHeader, EnvSecret))
	case cfg.SecretHeader == "" && cfg.Secret != "":
		errs = append(errs, fmt.Errorf("%s is set but %s is empty: set both or neither", EnvSecret, EnvSecretHeader))
	case cfg.SecretHeader != "" && !validHeaderName(cfg.SecretHeader):
		errs = append(errs, fmt.Errorf("%s: %q is not a valid HTTP header name", EnvSecretHeader, cfg.SecretHeader))
	}
	// Half a shared-secret pair is reported above; this is for none at all.
	if cfg.ClientSecret == "" && cfg.SecretHeader == "" && cfg.Secret == "" && !cfg.InsecureSkipVerify {
		errs = append(errs, fmt.Errorf("no webhook verification configured: set %s (Standard Webhooks signature) and/or %s and %s (shared-secret header); "+
			"%s=true runs without verification, for development only",
			EnvClientSecret, EnvSecretHeader, EnvSecret, EnvInsecureSkipVerify))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// VerifiesSignature reports whether deliveries must carry a valid Standard
// Webhooks signature.
func (cfg Config) VerifiesSignature() bool { return cfg.ClientSecret != "" }

// VerifiesSharedSecret reports whether deliveries must carry the shared-secret
// header.
func (cfg Config) VerifiesSharedSecret() bool { return cfg.SecretHeader != "" && cfg.Secret != "" }

// LogValue lets cfg be logged at start-up: secrets appear only as "set" or
// "unset", never as their values.
func (cfg Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_addr", cfg.ListenAddr),
		slog.String("fulfillment_addr", strings.Join(cfg.FulfillmentAddrs, ",")),
		slog.Duration("fulfillment_timeout", cfg.FulfillmentTimeout),
		slog.Duration("fulfillment_attempt_timeout", cfg.AttemptTimeout),
		slog.Duration("operator_timeout", cfg.OperatorTimeout),
		slog.String("bigcommerce_client_secret", setOrUnset(cfg.ClientSecret)),
		slog.String("webhook_secret_header", cfg.SecretHeader),
		slog.String("webhook_secret", setOrUnset(cfg.Secret)),
		slog.Bool("webhook_insecure_skip_verify", cfg.InsecureSkipVerify),
		slog.String("admin_token", setOrUnset(cfg.AdminToken)),
		slog.Duration("shutdown_timeout", cfg.ShutdownTimeout),
	)
}

func validateFulfillmentAddrs(addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%s: empty: give host:port or a comma-separated list of host:port", EnvFulfillmentAddr)
	}
	// A single entry may be a full gRPC target (dns:///..., unix:///...);
	// a list is a set of replicas, each of which must be a plain host:port.
	if len(addrs) == 1 && strings.Contains(addrs[0], "://") {
		return validateTarget(addrs[0])
	}
	var errs []error
	for _, a := range addrs {
		if err := validateHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvFulfillmentAddr, err))
		}
	}
	return errors.Join(errs...)
}

func validateHostPort(a string) error {
	if strings.Contains(a, "://") {
		return fmt.Errorf("%q: in a list, every entry is host:port", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", a, err)
	}
	if n, perr := strconv.Atoi(port); host == "" || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q needs a host and a port number", a)
	}
	return nil
}

// validateTarget accepts the gRPC targets (those with "://") of the
// resolvers grpc-go has built in: dns:///host:port (or
// dns://authority/host:port), unix:///path, unix-abstract:///name and
// passthrough:///host:port.
func validateTarget(t string) error {
	u, err := url.Parse(t)
	if err != nil {
		return fmt.Errorf("%s: %q is not a gRPC target: %w", EnvFulfillmentAddr, t, err)
	}
	endpoint := strings.TrimPrefix(u.Path, "/")
	switch u.Scheme {
	case "dns", "passthrough":
		if err := validateHostPort(endpoint); err != nil {
			return fmt.Errorf("%s: %q: the endpoint after %s:/// must be host:port: %w", EnvFulfillmentAddr, t, u.Scheme, err)
		}
		return nil
	case "unix", "unix-abstract":
		if u.Path == "" && u.Opaque == "" {
			return fmt.Errorf("%s: %q names no socket", EnvFulfillmentAddr, t)
		}
		return nil
	case "http", "https":
		return fmt.Errorf("%s: %q is an HTTP URL; the fulfillment service speaks gRPC: give host:port (e.g. fulfillment:9090)", EnvFulfillmentAddr, t)
	}
	return fmt.Errorf("%s: %q: unknown scheme %q; give host:port, or a dns:/// or unix: target", EnvFulfillmentAddr, t, u.Scheme)
}

func parseDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration (e.g. 5s, 1m30s)", name, v)
	}
	return d, nil
}

// splitList splits a comma-separated list, dropping blanks so that a trailing
// comma is harmless.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return strings.TrimSpace(v)
}

func setOrUnset(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "set"
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.1), so a
// typo in WEBHOOK_SECRET_HEADER fails at start rather than as 401s.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
