// Package gateway is the webhook gateway's HTTP server.
//
// It is the only part of the system reachable from the internet. It reads each
// BigCommerce delivery's raw body, checks its authenticity (package verify),
// drops scopes the fulfillment service does not act on, and hands the rest to
// the grpc-gateway generated handlers, which call
// FulfillmentService.HandleOrderWebhook. The same handlers serve the operator
// API (GetOrder, ListOrders, ProcessOrder, GetServiceStatus) behind a bearer
// token. Every gRPC error becomes an HTTP status in one place (HTTPStatus),
// chosen for what BigCommerce does with it.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers client-side health checking, used by serviceConfig
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/encoding/protojson"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
	"github.com/backorder/backorder/services/webhook-gateway/internal/verify"
)

// MaxBodyBytes is the largest webhook body accepted. BigCommerce envelopes
// are a few hundred bytes; the limit only stops abuse.
const MaxBodyBytes = 64 << 10

// WebhookPath is the route BigCommerce delivers to.
const WebhookPath = "/v1/webhooks/bigcommerce"

// serviceConfig balances calls over every resolved fulfillment address,
// round robin, passing over replicas that stopped answering (see
// balance.go) and, with client-side health checking, those that report
// NOT_SERVING (e.g. while they drain at shutdown). The empty service name
// is the whole server's status, which grpc's health server reports SERVING
// by default.
const serviceConfig = `{
  "loadBalancingConfig": [{"` + stallAwareName + `": {}}],
  "healthCheckConfig": {"serviceName": ""}
}`

// manualScheme is the resolver scheme used for a static list of replicas.
const manualScheme = "backorder-fulfillment"

// Server is the webhook gateway. Build it with New, run it with Serve, and
// release it with Close once Serve has returned.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	conn     *grpc.ClientConn
	client   backorderv1.FulfillmentServiceClient
	health   healthpb.HealthClient
	verifier *verify.Verifier
	handler  http.Handler
	metrics  *gatewayMetrics
}

// New builds a Server from a validated cfg. It does not contact the
// fulfillment service (gRPC connects lazily, and /readyz reports whether it is
// reachable), so the gateway can start before its backend. An invalid cfg
// gives an error wrapping config.ErrInvalid.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v, err := verify.New(verify.Options{
		ClientSecret: cfg.ClientSecret,
		SecretHeader: cfg.SecretHeader,
		Secret:       cfg.Secret,
		Insecure:     cfg.InsecureSkipVerify,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	metrics := newGatewayMetrics()
	// Every try that timed out is counted; a warning names the replica at
	// most once per stallCooldown, not once per delivery.
	var warnedMu sync.Mutex
	warned := map[string]time.Time{}
	timedOut := func(replica string) {
		metrics.triesTimedOut.Inc()
		warnedMu.Lock()
		last, now := warned[replica], time.Now()
		quiet := now.Sub(last) < stallCooldown
		if !quiet {
			warned[replica] = now
		}
		warnedMu.Unlock()
		if !quiet {
			logger.Warn("a fulfillment replica did not answer a delivery in time; the delivery is tried on another replica, and this one is passed over until it answers",
				"replica", replica, "attempt_timeout", cfg.AttemptTimeout)
		}
	}
	conn, err := dialFulfillment(cfg, timedOut)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		conn:     conn,
		client:   backorderv1.NewFulfillmentServiceClient(conn),
		health:   healthpb.NewHealthClient(conn),
		verifier: v,
		metrics:  metrics,
	}
	// Two muxes over the same client. BigCommerce may add envelope fields
	// at any time: on the webhook route an unknown field must not turn into
	// a 400 and a retry storm. On the operator routes it must: a misspelt
	// option ({"validate":true} for validate_only) would otherwise be
	// dropped and the order sent live, and a misspelt filter would list
	// everything.
	webhookMux, err := s.newMux(ctx, true)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	operatorMux, err := s.newMux(ctx, false)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}

	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.webhook(webhookMux))
	mux.HandleFunc("/v1/webhooks/", wrongWebhookPath)
	mux.HandleFunc("/v1/webhooks", wrongWebhookPath) // else ServeMux redirects it to the above
	// Everything else under /v1/ is the operator API. Nothing reaches the
	// grpc-gateway mux without passing either webhook verification or the
	// bearer check.
	mux.Handle("/v1/", s.adminOnly(operatorMux))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	// Metrics, like health, are for the platform's scraper, with no
	// token: counts and latencies by route and status, no order data.
	mux.Handle("GET "+MetricsPath, s.metrics.handler())
	// The API's description holds no secret: served to anyone.
	mux.HandleFunc("GET "+OpenAPIPath, serveOpenAPI)
	s.handler = s.logRequests(mux)

	logger.Info("webhook gateway configured", "config", cfg)
	if !v.Enabled() {
		logger.Warn("WARNING: WEBHOOK VERIFICATION IS DISABLED (" + config.EnvInsecureSkipVerify + "=true): " +
			"anyone can submit deliveries; development only. Set " + config.EnvClientSecret + " and/or " +
			config.EnvSecretHeader + "/" + config.EnvSecret + ".")
	} else if cfg.InsecureSkipVerify {
		logger.Warn(config.EnvInsecureSkipVerify + " is ignored: the configured verification mechanisms are enforced")
	}
	if cfg.AdminToken == "" {
		logger.Info("operator API disabled: set " + config.EnvAdminToken + " to enable it")
	}
	return s, nil
}

// newMux returns a grpc-gateway mux calling the fulfillment service; with
// discardUnknown, fields of a request body that the API does not know are
// dropped, else refused with 400.
func (s *Server) newMux(ctx context.Context, discardUnknown bool) (*runtime.ServeMux, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonPb{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: discardUnknown},
		}}),
		// Query parameters that name no field are refused. (The parser is
		// global to grpc-gateway, not per mux; only ListOrders reads query
		// parameters, and adminOnly refuses them on every other route.)
		runtime.SetQueryParameterParser(strictQueryParser{}),
		runtime.WithIncomingHeaderMatcher(incomingHeaders),
		// Response metadata is the fulfillment service's business, not the
		// caller's.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithErrorHandler(s.handleError),
		runtime.WithRoutingErrorHandler(handleRoutingError),
		// A delivery is routed by method and path only: no
		// X-HTTP-Method-Override, no POST-to-GET fallback.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	if err := backorderv1.RegisterFulfillmentServiceHandlerClient(ctx, gw, s.client); err != nil {
		return nil, fmt.Errorf("gateway: register handlers: %w", err)
	}
	return gw, nil
}

// Handler returns the gateway's HTTP handler, for callers that run their own
// http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers HTTP on ln until ctx is done, then shuts down gracefully:
// in-flight requests get cfg.ShutdownTimeout to finish. It returns nil after a
// clean shutdown. Serve takes ownership of ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for the slowest gRPC call the handler can make.
		WriteTimeout:   max(s.cfg.FulfillmentTimeout, s.cfg.OperatorTimeout) + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("webhook gateway listening", "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// The parent context is already done; the shutdown needs its own clock.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		s.log.Info("webhook gateway shutting down", "timeout", s.cfg.ShutdownTimeout)
		if err := srv.Shutdown(sctx); err != nil {
			return errors.Join(fmt.Errorf("gateway: graceful shutdown: %w", err), srv.Close())
		}
		return nil
	})
	return g.Wait()
}

// Close releases the connection to the fulfillment service. Call it after
// Serve has returned, so that draining requests can still finish their calls.
func (s *Server) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("gateway: close fulfillment connection: %w", err)
	}
	return nil
}

// dialFulfillment creates the client connection. One address is a gRPC target
// resolved by DNS (a headless service name gives every replica); several
// addresses are a static set of replicas fed to the balancer through a manual
// resolver.
func dialFulfillment(cfg config.Config, timedOut func(replica string)) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		// The fulfillment service is reached over the internal network.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithChainUnaryInterceptor(deadline(cfg.FulfillmentTimeout, cfg.OperatorTimeout), tryElsewhere(cfg.AttemptTimeout, timedOut)),
		// A replica that comes back is used again within seconds: gRPC's
		// default backoff grows to 2 minutes, every delivery of which is a
		// 503 against BigCommerce's success ratio.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	var target string
	switch addrs := cfg.FulfillmentAddrs; {
	case len(addrs) == 1 && hasScheme(addrs[0]):
		target = addrs[0]
	case len(addrs) == 1:
		target = "dns:///" + addrs[0]
	default:
		r := manual.NewBuilderWithScheme(manualScheme)
		var st resolver.State
		for _, a := range addrs {
			st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
			// The balancer (grpc's base balancer) reads Addresses.
			st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
		}
		r.InitialState(st)
		opts = append(opts, grpc.WithResolvers(r))
		target = manualScheme + ":///fulfillment"
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: fulfillment client for %q: %w", target, err)
	}
	return conn, nil
}

// hasScheme reports whether target is a full gRPC target such as
// dns:///name:9090 or unix:///run/fulfillment.sock.
func hasScheme(target string) bool { return strings.Contains(target, "://") }

// slowCalls are the operator actions that may wait for an order's lock
// (held through a supplier call) or for the supplier or BigCommerce.
var slowCalls = map[string]bool{
	backorderv1.FulfillmentService_ProcessOrder_FullMethodName: true,
	backorderv1.FulfillmentService_RetryOrder_FullMethodName:   true,
	backorderv1.FulfillmentService_ResolveOrder_FullMethodName: true,
	backorderv1.FulfillmentService_SweepOrders_FullMethodName:  true,
}

// deadline bounds every gRPC call the gateway makes. The operator actions
// in slowCalls get operator. Every other call (a webhook, reads, health)
// gets short: BigCommerce's response timeout is undocumented and slow
// answers count against the domain's success ratio, so a stuck backend
// must become a quick 503, not a hung request.
func deadline(short, operator time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		d := short
		if slowCalls[method] {
			d = operator
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// incomingHeaders forwards only the delivery id: the fulfillment service uses
// it as a dedupe key when the envelope has no hash. Nothing else from the
// internet becomes gRPC metadata.
func incomingHeaders(key string) (string, bool) {
	if http.CanonicalHeaderKey(key) == "Webhook-Id" {
		return "webhook-id", true
	}
	return "", false
}
