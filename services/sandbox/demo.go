package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// demoConfig are the demo's flags.
type demoConfig struct {
	gatewayAddr, fulfillmentAddr, bcAddr, tsAddr, etcdURL string
	metricsAddr                                           string
	orderID                                               uint64
	times                                                 int
	exit                                                  bool
	announce                                              bool
	verbose                                               bool
}

const (
	demoStore       = "demo1"
	demoStoreID     = "1000001"
	demoToken       = "demo-bc-token"
	demoSecret      = "demo-client-secret"
	demoTSID        = "demo-tropship-id"
	demoTSSecret    = "demo-tropship-secret"
	demoAdminToken  = "demo-admin"
	demoGracePeriod = 2 * time.Minute
)

// runDemo runs the whole pipeline on this machine: both simulators, the
// fulfillment service with an embedded etcd, the gateway, and one backorder
// whose webhooks arrive several times at once, and checks that the
// simulated supplier got it exactly once.
func runDemo(ctx context.Context, args []string) error { return runDemoWith(ctx, args, nil) }

// runDemoWith is runDemo; running, when not nil, is called once the demo
// runs until ctx ends (after its check, with -announce in effect).
func runDemoWith(ctx context.Context, args []string, running func()) error {
	var c demoConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&c.gatewayAddr, "gateway-addr", "127.0.0.1:8080", "webhook gateway HTTP address")
	fs.StringVar(&c.fulfillmentAddr, "fulfillment-addr", "127.0.0.1:9090", "fulfillment gRPC address")
	fs.StringVar(&c.bcAddr, "bigcommerce-addr", "127.0.0.1:8081", "BigCommerce simulator address")
	fs.StringVar(&c.tsAddr, "tropship-addr", "127.0.0.1:8082", "TropShip simulator address")
	fs.StringVar(&c.etcdURL, "etcd-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9091", "fulfillment's metrics address (METRICS_ADDR)")
	fs.Uint64Var(&c.orderID, "order", 250, "BigCommerce order id of the demo backorder")
	fs.IntVar(&c.times, "times", 5, "how many times each webhook event is delivered, in parallel")
	fs.BoolVar(&c.exit, "exit", false, "stop after the check instead of running until Ctrl-C")
	fs.BoolVar(&c.announce, "announce", true, "after the check, announce orders added or changed through the BigCommerce simulator to the gateway as webhooks")
	fs.BoolVar(&c.verbose, "v", false, "show the services' logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Printf("demo: "+format+"\n", a...) }

	// 1. The simulators, in this process. Once the scripted check has
	// passed, order changes made through the BigCommerce simulator's admin
	// API (POST /_sim/orders, /_sim/orders/{id}/status) are announced to
	// the gateway as signed webhooks, as BigCommerce would; before, only
	// the deliveries the check counts are sent.
	hooks := newNotifier(serveConfig{
		webhookURL: "http://" + c.gatewayAddr + "/v1/webhooks/bigcommerce", webhookSecret: demoSecret, storeID: demoStoreID,
	}, slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})))
	var announce atomic.Bool
	go hooks.run(ctx)
	bc := bcsim.New(bcsim.Options{Tokens: map[string]string{demoStore: demoToken}, OnChange: func(ch bcsim.Change) {
		if announce.Load() {
			hooks.enqueue(ch)
		}
	}})
	ts := tropsim.New(tropsim.Options{ClientID: demoTSID, ClientSecret: demoTSSecret})
	defer ts.Close()
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{c.bcAddr, bc}, {c.tsAddr, ts}} {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("simulator address %s: %w (choose another with the flags)", s.addr, err)
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		defer srv.Close()
	}
	say("BigCommerce simulator on http://%s, TropShip simulator on http://%s", c.bcAddr, c.tsAddr)

	// 2. The services, built and run as real processes.
	dir, err := os.MkdirTemp("", "backorder-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say("building the services (the first build takes a minute or two)...")
	bins, err := stack.Build(ctx, dir, false, false)
	if err != nil {
		return err
	}
	var tee *os.File
	if c.verbose {
		tee = os.Stderr
	}
	ful, err := stack.Start("fulfillment", bins.Fulfillment, map[string]string{
		"LISTEN_ADDR": c.fulfillmentAddr, "ETCD_ENDPOINTS": "", "ETCD_DATA_DIR": dir + "/etcd",
		"ETCD_EMBED_CLIENT_URL": c.etcdURL,
		"BIGCOMMERCE_API_URL":   "http://" + c.bcAddr, "BIGCOMMERCE_STORE_HASH": demoStore,
		"BIGCOMMERCE_ACCESS_TOKEN": demoToken,
		"TROPSHIP_BASE_URL":        "http://" + c.tsAddr, "TROPSHIP_CLIENT_ID": demoTSID,
		"TROPSHIP_CLIENT_SECRET": demoTSSecret, "TROPSHIP_MODE": "live",
		"METRICS_ADDR": c.metricsAddr,
	}, tee)
	if err != nil {
		return err
	}
	defer ful.Stop()
	wctx, cancel := context.WithTimeout(ctx, demoGracePeriod)
	defer cancel()
	if err := ful.WaitGRPC(wctx); err != nil {
		return err
	}
	say("fulfillment (embedded etcd on %s, TROPSHIP_MODE=live against the simulator) on %s", c.etcdURL, c.fulfillmentAddr)
	gw, err := stack.Start("webhook-gateway", bins.Gateway, map[string]string{
		"LISTEN_ADDR": c.gatewayAddr, "FULFILLMENT_ADDR": c.fulfillmentAddr,
		"BIGCOMMERCE_CLIENT_SECRET": demoSecret, "ADMIN_TOKEN": demoAdminToken,
	}, tee)
	if err != nil {
		return err
	}
	defer gw.Stop()
	if err := gw.WaitHTTP(wctx, "/readyz"); err != nil {
		return err
	}
	say("webhook gateway on http://%s", c.gatewayAddr)

	// 3. A backorder, announced several times at once.
	bc.AddOrder(demoStore, bcsim.NewUKOrder(c.orderID, bcsim.StatusAwaitingFulfillment, bcsim.Lines(2)...))
	events := []webhook.Event{
		webhook.Created(demoStore, demoStoreID, c.orderID),
		webhook.StatusUpdated(demoStore, demoStoreID, c.orderID, bcsim.StatusPending, bcsim.StatusAwaitingFulfillment),
	}
	var deliveries []webhook.Event
	for range c.times {
		deliveries = append(deliveries, events...)
	}
	sender := &webhook.Sender{URL: "http://" + c.gatewayAddr + "/v1/webhooks/bigcommerce", ClientSecret: demoSecret}
	counts := map[int]int{}
	for _, r := range sender.SendParallel(wctx, deliveries, len(deliveries)) {
		if r.Err != nil {
			return fmt.Errorf("delivery: %w", r.Err)
		}
		counts[r.Status]++
	}
	say("delivered order %d's 2 events %d times each, in parallel: HTTP statuses %v", c.orderID, c.times, counts)

	// 4. Follow it until the supplier has it.
	conn, err := grpc.NewClient(c.fulfillmentAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := backorderv1.NewFulfillmentServiceClient(conn)
	var o *backorderv1.Order
	// SUBMITTED, then WRITTEN_BACK once its id is on the BigCommerce order.
	for o.GetState() != backorderv1.OrderState_ORDER_STATE_WRITTEN_BACK || o.GetPending() {
		select {
		case <-wctx.Done():
			return fmt.Errorf("order %d did not reach WRITTEN_BACK: last %v", c.orderID, o)
		case <-time.After(50 * time.Millisecond):
		}
		r, err := client.GetOrder(wctx, &backorderv1.GetOrderRequest{StoreHash: demoStore, OrderId: c.orderID})
		if err == nil {
			o = r.GetOrder()
		}
	}
	rec, _ := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(o)
	say("the order record:\n%s", rec)
	l := ts.Ledger()
	ledger, _ := json.MarshalIndent(map[string]any{
		"live_orders": len(l.Orders), "references": l.References, "extra_orders": l.ExtraOrders,
	}, "", "  ")
	say("the TropShip simulator's ledger:\n%s", ledger)
	ref := fmt.Sprintf("BC-%s-%d", demoStore, c.orderID)
	if l.References[ref] != 1 || l.ExtraOrders != 0 {
		return fmt.Errorf("the supplier has %d orders for %s; want exactly 1", l.References[ref], ref)
	}
	var written []string
	for _, m := range bc.Metafields(demoStore, c.orderID) {
		written = append(written, m.Namespace+"/"+m.Key+"="+m.Value)
	}
	if len(written) != 1 || !strings.HasSuffix(written[0], "="+o.GetOfflineOrderId()) {
		return fmt.Errorf("the BigCommerce order's metafields are %q; want the supplier's id %s once", written, o.GetOfflineOrderId())
	}
	say("the BigCommerce order's metafield (step 9): %s", written[0])
	say("OK: %d deliveries, 1 supplier order (%s), offline_order_id stored and written back to BigCommerce.", len(deliveries), o.GetOfflineOrderId())
	if c.exit {
		return nil
	}
	if c.announce {
		announce.Store(true)
		say("order changes made through the BigCommerce simulator now reach the gateway as signed webhooks (-announce=false: they do not)")
	}
	if running != nil {
		running()
	}
	say(`running until Ctrl-C. Try:
  go tool grpcurl -plaintext %[1]s list
  go tool grpcurl -plaintext -d '{"store_hash":"%[2]s","order_id":%[3]d}' %[1]s backorder.v1.FulfillmentService/GetOrder
  go tool grpcurl -plaintext -d '{"state":"ORDER_STATE_WRITTEN_BACK"}' %[1]s backorder.v1.FulfillmentService/ListOrders
  curl -H 'Authorization: Bearer %[4]s' http://%[5]s/v1/stores/%[2]s/orders/%[3]d
  curl -H 'Authorization: Bearer %[4]s' http://%[5]s/v1/status      # replica, supplier mode, Orders API sweep
  curl http://%[5]s/metrics
  curl http://%[9]s/metrics           # the fulfillment's: orders by state, queue, supplier calls
  curl http://%[5]s/openapi.json     # the operator and webhook routes
  curl http://%[6]s/_sim/ledger
  curl http://%[8]s/_sim/orders/%[3]d       # the BigCommerce order and its metafield
  go run ./services/sandbox send -url http://%[5]s/v1/webhooks/bigcommerce -secret %[7]s -store %[2]s -order %[3]d -times 5`,
		c.fulfillmentAddr, demoStore, c.orderID, demoAdminToken, c.gatewayAddr, c.tsAddr, demoSecret, c.bcAddr, c.metricsAddr)
	select {
	case <-ctx.Done():
	case <-ful.Exited():
		return fmt.Errorf("fulfillment exited: %v\n%s", ful.Err(), ful.Output())
	case <-gw.Exited():
		return fmt.Errorf("gateway exited: %v\n%s", gw.Err(), gw.Output())
	}
	say("stopping")
	return errors.Join(gw.Stop(), ful.Stop())
}
