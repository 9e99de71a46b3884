// Package e2e_test runs the whole product as real processes: the built
// fulfillment and webhook-gateway binaries, a real embedded etcd, and the
// BigCommerce and TropShip simulators over real HTTP. Webhooks go through
// the gateway's HTTP endpoint exactly as BigCommerce sends them.
package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/tropsim"
)

const (
	storeHash    = "abc123"
	storeID      = "1025646"
	bcToken      = "bc-token"
	clientSecret = "bc-client-secret"
	tsClientID   = "ts-id"
	tsSecret     = "ts-secret"
)

var bins stack.Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "backorder-e2e-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	bins, err = stack.Build(ctx, dir, raceEnabled, true)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a running product: simulators, etcd, N fulfillment replicas and a
// gateway in front of them.
type env struct {
	t        *testing.T
	bc       *bcsim.Server
	ts       *tropsim.Server
	bcURL    string
	tsURL    string
	etcd     string
	prefix   string
	replicas []*stack.Proc
	gateway  *stack.Proc
	client   backorderv1.FulfillmentServiceClient
	opts     options
}

type options struct {
	replicas int
	mode     string // validate or live
	// env is added to every replica's environment (e.g. TROPSHIP_LOOKUP).
	env map[string]string
	// etcd, when set, are the endpoints of an etcd the test runs itself
	// (e.g. a three-member cluster); otherwise a single member is started.
	etcd []string
	// tropship are the simulator's options (ClientID and ClientSecret are
	// filled in).
	tropship tropsim.Options
	// bigcommerce are the BigCommerce simulator's options (Tokens is
	// filled in).
	bigcommerce bcsim.Options
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	e := &env{t: t, prefix: "/" + strings.ReplaceAll(t.Name(), "/", "_") + "/", opts: o}
	o.bigcommerce.Tokens = map[string]string{storeHash: bcToken}
	e.bc = bcsim.New(o.bigcommerce)
	bcs := httptest.NewServer(e.bc)
	t.Cleanup(bcs.Close)
	o.tropship.ClientID, o.tropship.ClientSecret = tsClientID, tsSecret
	e.ts = tropsim.New(o.tropship)
	tss := httptest.NewServer(e.ts)
	t.Cleanup(tss.Close)
	t.Cleanup(e.ts.Close)
	e.bcURL, e.tsURL = bcs.URL, tss.URL
	if len(o.etcd) > 0 {
		e.etcd = strings.Join(o.etcd, ",")
	} else {
		// host:port, not a URL: the form etcdctl and most deployments
		// use, so every test runs the services with it.
		e.etcd = strings.TrimPrefix(etcdtest.Start(t), "http://")
	}
	for range o.replicas {
		e.startReplica(o.mode)
	}
	e.startGateway()
	return e
}

func (e *env) fulfillmentEnv(mode string) map[string]string {
	vars := map[string]string{
		"ETCD_ENDPOINTS":           e.etcd,
		"ETCD_PREFIX":              e.prefix,
		"BIGCOMMERCE_API_URL":      e.bcURL,
		"BIGCOMMERCE_STORE_HASH":   storeHash,
		"BIGCOMMERCE_ACCESS_TOKEN": bcToken,
		"TROPSHIP_BASE_URL":        e.tsURL,
		"TROPSHIP_CLIENT_ID":       tsClientID,
		"TROPSHIP_CLIENT_SECRET":   tsSecret,
		"TROPSHIP_MODE":            mode,
		"SWEEP_INTERVAL":           "200ms",
		"SWEEP_GRACE":              "500ms",
		"LOCK_TTL":                 "5s",
		"LOG_LEVEL":                "warn",
	}
	for k, v := range e.opts.env {
		vars[k] = v
	}
	return vars
}

func (e *env) startReplica(mode string) *stack.Proc {
	e.t.Helper()
	return e.startReplicaWith(mode, bins.Fulfillment, nil)
}

// startReplicaWith starts a replica from bin (e.g. bins.FulfillmentFailpoints)
// with extra environment, and waits until it serves.
func (e *env) startReplicaWith(mode, bin string, extra map[string]string) *stack.Proc {
	e.t.Helper()
	addr, err := stack.FreeAddr()
	if err != nil {
		e.t.Fatal(err)
	}
	vars := e.fulfillmentEnv(mode)
	vars["LISTEN_ADDR"] = addr
	for k, v := range extra {
		vars[k] = v
	}
	p, err := stack.Start(fmt.Sprintf("fulfillment-%d", len(e.replicas)), bin, vars, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.WaitGRPC(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.replicas = append(e.replicas, p)
	if e.client == nil {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { conn.Close() })
		e.client = backorderv1.NewFulfillmentServiceClient(conn)
	}
	return p
}

func (e *env) startGateway() {
	e.t.Helper()
	addr, err := stack.FreeAddr()
	if err != nil {
		e.t.Fatal(err)
	}
	var targets []string
	for _, r := range e.replicas {
		targets = append(targets, r.Addr)
	}
	p, err := stack.Start("webhook-gateway", bins.Gateway, map[string]string{
		"LISTEN_ADDR":               addr,
		"FULFILLMENT_ADDR":          strings.Join(targets, ","),
		"BIGCOMMERCE_CLIENT_SECRET": clientSecret,
		"ADMIN_TOKEN":               "admin-token",
	}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.WaitHTTP(ctx, "/readyz"); err != nil {
		e.t.Fatal(err)
	}
	e.gateway = p
}

func (e *env) webhookURL() string { return "http://" + e.gateway.Addr + "/v1/webhooks/bigcommerce" }

// writtenBack is where a created order ends with the default settings:
// SUBMITTED, then its id written back to the BigCommerce order (step 9).
const writtenBack = backorderv1.OrderState_ORDER_STATE_WRITTEN_BACK

// checkWrittenBack fails unless the BigCommerce order's metafield holds
// the record's offline_order_id.
func (e *env) checkWrittenBack(o *backorderv1.Order) {
	e.t.Helper()
	var vals []string
	for _, m := range e.bc.Metafields(storeHash, o.GetOrderId()) {
		if m.Namespace == "tropship" && m.Key == "offline_order_id" {
			vals = append(vals, m.Value)
		}
	}
	if len(vals) != 1 || vals[0] != o.GetOfflineOrderId() || o.GetOfflineOrderId() == "" {
		e.t.Fatalf("order %d (%v, %q): metafield values %q; want exactly the record's id", o.GetOrderId(), o.GetState(), o.GetOfflineOrderId(), vals)
	}
}

// waitState polls GetOrder until the order is in state with no work
// pending. It fails the test after a generous deadline: it never assumes
// how fast the machine is.
func (e *env) waitState(id uint64, want backorderv1.OrderState) *backorderv1.Order {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last *backorderv1.Order
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
		cancel()
		if err == nil && r.GetOrder().GetState() == want && !r.GetOrder().GetPending() {
			return r.GetOrder()
		}
		last, lastErr = r.GetOrder(), err
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("order %d never reached %v: last %v (err %v)\n%s", id, want, last, lastErr, e.logs())
	return nil
}

func (e *env) logs() string {
	var b strings.Builder
	for _, p := range append(append([]*stack.Proc{}, e.replicas...), e.gateway) {
		if p != nil {
			fmt.Fprintf(&b, "--- %s\n%s", p.Name, tail(p.Output(), 4000))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
