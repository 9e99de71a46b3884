package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// serveConfig is the configuration of "sandbox serve".
type serveConfig struct {
	bcAddr, tsAddr   string
	store, storeID   string
	token            string
	clientID         string
	clientSecret     string
	seedOrders       int
	quota            int
	catalog          string
	noLookup         bool
	noSideLoad       bool
	quiet            bool
	webhookURL       string
	webhookSecret    string
	webhookHeader    string
	webhookHeaderVal string
}

func parseServe(args []string) (serveConfig, error) {
	var c serveConfig
	seed, errSeed := envInt("SANDBOX_SEED_ORDERS", 0)
	quota, errQuota := envInt("SANDBOX_BIGCOMMERCE_QUOTA", 0)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.bcAddr, "bigcommerce-addr", envOr("SANDBOX_BIGCOMMERCE_ADDR", "127.0.0.1:8081"), "BigCommerce simulator listen address (env SANDBOX_BIGCOMMERCE_ADDR; port 0 picks one)")
	fs.StringVar(&c.tsAddr, "tropship-addr", envOr("SANDBOX_TROPSHIP_ADDR", "127.0.0.1:8082"), "TropShip simulator listen address (env SANDBOX_TROPSHIP_ADDR)")
	fs.StringVar(&c.store, "store", envOr("BIGCOMMERCE_STORE_HASH", "sandbox"), "store hash (env BIGCOMMERCE_STORE_HASH)")
	fs.StringVar(&c.storeID, "store-id", envOr("SANDBOX_STORE_ID", "1000001"), "numeric store id put in webhooks (env SANDBOX_STORE_ID)")
	fs.StringVar(&c.token, "token", envOr("BIGCOMMERCE_ACCESS_TOKEN", "sandbox-token"), "X-Auth-Token the store accepts (env BIGCOMMERCE_ACCESS_TOKEN)")
	fs.StringVar(&c.clientID, "tropship-client-id", envOr("TROPSHIP_CLIENT_ID", "sandbox-client"), "TropShip client id (env TROPSHIP_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "tropship-client-secret", envOr("TROPSHIP_CLIENT_SECRET", "sandbox-secret"), "TropShip client secret (env TROPSHIP_CLIENT_SECRET)")
	fs.IntVar(&c.seedOrders, "seed", seed, "number of demo orders (Awaiting Fulfillment) to create at start (env SANDBOX_SEED_ORDERS)")
	fs.IntVar(&c.quota, "quota", quota, "BigCommerce API requests allowed per 30 s, 0 for no limit (env SANDBOX_BIGCOMMERCE_QUOTA)")
	fs.StringVar(&c.catalog, "catalog", envOr("SANDBOX_TROPSHIP_CATALOG", ""), "comma-separated TropShip product codes; empty accepts any (env SANDBOX_TROPSHIP_CATALOG)")
	fs.BoolVar(&c.noLookup, "no-lookup", false, "answer 404 to TropShip's lookup by reference, as an API without one would")
	fs.BoolVar(&c.noSideLoad, "no-side-load", false, "serve BigCommerce orders without the consignments include=consignments.line_items asks for, as a store API without it would")
	fs.BoolVar(&c.quiet, "quiet", false, "do not log every request")
	fs.StringVar(&c.webhookURL, "webhook-url", envOr("SANDBOX_WEBHOOK_URL", ""), "if set, send BigCommerce webhooks for order changes to this URL (env SANDBOX_WEBHOOK_URL)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", envOr("BIGCOMMERCE_CLIENT_SECRET", ""), "client secret that signs webhooks (env BIGCOMMERCE_CLIENT_SECRET)")
	fs.StringVar(&c.webhookHeader, "webhook-header", envOr("WEBHOOK_SECRET_HEADER", ""), "custom header sent with webhooks (env WEBHOOK_SECRET_HEADER)")
	fs.StringVar(&c.webhookHeaderVal, "webhook-header-value", envOr("WEBHOOK_SECRET", ""), "its value (env WEBHOOK_SECRET)")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	return c, errors.Join(errSeed, errQuota, c.validate())
}

func (c serveConfig) validate() error {
	var errs []error
	for name, v := range map[string]string{
		"-bigcommerce-addr": c.bcAddr, "-tropship-addr": c.tsAddr, "-store (BIGCOMMERCE_STORE_HASH)": c.store,
		"-token (BIGCOMMERCE_ACCESS_TOKEN)": c.token, "-tropship-client-id (TROPSHIP_CLIENT_ID)": c.clientID,
		"-tropship-client-secret (TROPSHIP_CLIENT_SECRET)": c.clientSecret,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", name))
		}
	}
	if c.seedOrders < 0 || c.quota < 0 {
		errs = append(errs, errors.New("-seed and -quota must not be negative"))
	}
	if c.webhookURL != "" && c.webhookSecret == "" && c.webhookHeader == "" {
		errs = append(errs, errors.New("-webhook-url needs -webhook-secret (BIGCOMMERCE_CLIENT_SECRET) or -webhook-header (WEBHOOK_SECRET_HEADER)"))
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, args []string) error {
	cfg, err := parseServe(args)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), nil)
}

// serve runs the simulators until ctx ends. If ready is not nil, it is
// called with the simulators' base URLs once they accept connections.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, ready func(bcURL, tsURL string)) error {
	// Listen first, so that port 0 works and the log shows real addresses.
	bcLn, err := net.Listen("tcp", cfg.bcAddr)
	if err != nil {
		return fmt.Errorf("bigcommerce simulator: %w", err)
	}
	tsLn, err := net.Listen("tcp", cfg.tsAddr)
	if err != nil {
		bcLn.Close()
		return fmt.Errorf("tropship simulator: %w", err)
	}

	g, ctx := errgroup.WithContext(ctx)
	hooks := newNotifier(cfg, log)
	bc := bcsim.New(bcsim.Options{
		Tokens:     map[string]string{cfg.store: cfg.token},
		Quota:      cfg.quota,
		NoSideLoad: cfg.noSideLoad,
		OnChange:   hooks.enqueue,
	})
	ts := tropsim.New(tropsim.Options{
		ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		Catalog: splitList(cfg.catalog), DisableLookup: cfg.noLookup,
	})
	g.Go(func() error { hooks.run(ctx); return nil })
	seedOrders(bc, cfg.store, cfg.seedOrders, log)

	servers := []*http.Server{
		newServer(bc, "bigcommerce", cfg.quiet, log),
		newServer(ts, "tropship", cfg.quiet, log),
	}
	for i, ln := range []net.Listener{bcLn, tsLn} {
		srv := servers[i]
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	bcURL, tsURL := "http://"+bcLn.Addr().String(), "http://"+tsLn.Addr().String()
	log.Info("bigcommerce simulator listening", "url", bcURL, "store", cfg.store,
		"orders", bcURL+"/stores/"+cfg.store+"/v2/orders", "admin", bcURL+"/_sim/")
	log.Info("tropship simulator listening", "url", tsURL, "client_id", cfg.clientID, "admin", tsURL+"/_sim/")
	if cfg.webhookURL != "" {
		log.Info("sending webhooks for order changes", "url", cfg.webhookURL)
	}
	if ready != nil {
		ready(bcURL, tsURL)
	}

	g.Go(func() error {
		<-ctx.Done()
		ts.Close() // release requests a fault holds, or Shutdown would wait for them
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			errs = append(errs, srv.Shutdown(shutdownCtx))
		}
		log.Info("simulators stopped")
		return errors.Join(errs...)
	})
	return g.Wait()
}

func newServer(h http.Handler, name string, quiet bool, log *slog.Logger) *http.Server {
	if !quiet {
		h = logRequests(h, log.With("sim", name))
	}
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

// logRequests logs one line per request.
func logRequests(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"status", rec.status, "duration", time.Since(start).Round(time.Microsecond))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// demoSKUs are product codes in the style of TropShip's feed.
var demoSKUs = []string{"APP449", "APP450", "MYP112", "OPT230", "BSN077"}

func seedOrders(bc *bcsim.Server, store string, n int, log *slog.Logger) {
	if n == 0 {
		return
	}
	var first, last uint64
	for i := range n {
		lines := make([]bcsim.Line, i%3+1)
		for j := range lines {
			lines[j] = bcsim.Line{SKU: demoSKUs[(i+j)%len(demoSKUs)], Quantity: uint32(j + 1)}
		}
		o := bc.AddOrder(store, bcsim.NewUKOrder(0, bcsim.StatusAwaitingFulfillment, lines...))
		if i == 0 {
			first = o.ID
		}
		last = o.ID
	}
	log.Info("seeded demo orders", "store", store, "count", n, "first_id", first, "last_id", last)
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// notifier turns the simulator's order changes into webhook deliveries, as
// BigCommerce would send them. Deliveries are queued so that the simulator
// never waits for the receiver.
type notifier struct {
	sender  *webhook.Sender
	storeID string
	queue   chan bcsim.Change
	log     *slog.Logger
}

func newNotifier(cfg serveConfig, log *slog.Logger) *notifier {
	n := &notifier{storeID: cfg.storeID, log: log.With("sim", "webhooks")}
	if cfg.webhookURL == "" {
		return n
	}
	n.sender = &webhook.Sender{URL: cfg.webhookURL, ClientSecret: cfg.webhookSecret}
	if cfg.webhookHeader != "" {
		n.sender.Headers = map[string]string{cfg.webhookHeader: cfg.webhookHeaderVal}
	}
	n.queue = make(chan bcsim.Change, 1024)
	return n
}

func (n *notifier) enqueue(c bcsim.Change) {
	if n.queue == nil {
		return
	}
	select {
	case n.queue <- c:
	default:
		// A real store would retry later; a sandbox that falls this far
		// behind is misconfigured, so say so rather than block the API.
		n.log.Warn("webhook queue full, dropping event", "scope", c.Scope, "order_id", c.OrderID)
	}
}

func (n *notifier) run(ctx context.Context) {
	if n.queue == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-n.queue:
			n.deliver(ctx, c)
		}
	}
}

func (n *notifier) deliver(ctx context.Context, c bcsim.Change) {
	ev := webhook.New(c.Scope, c.Store, n.storeID, c.OrderID)
	if c.Scope == bcsim.ScopeStatusUpdated {
		ev.Data.Status = &webhook.StatusChange{PreviousStatusID: c.PrevStatusID, NewStatusID: c.NewStatusID}
	}
	status, err := n.sender.Send(ctx, ev)
	if err != nil {
		n.log.Warn("webhook not delivered", "scope", c.Scope, "order_id", c.OrderID, "err", err)
		return
	}
	n.log.Info("webhook delivered", "scope", c.Scope, "order_id", c.OrderID, "status", status)
}
