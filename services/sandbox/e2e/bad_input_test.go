package e2e_test

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"

	"github.com/backorder/backorder/services/sandbox/etcdtest"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// Every delivery that is not a verified, well-formed order event is refused
// (or ignored) before anything is written: the key prefix stays empty.
func TestBadDeliveriesWriteNothing(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live"})
	ctx := context.Background()
	s := e.sender()
	ev := webhook.Created(storeHash, storeID, 42)
	for _, c := range []struct {
		name string
		opts []webhook.Option
		want int
	}{
		{"forged", []webhook.Option{webhook.Forged()}, http.StatusUnauthorized},
		{"signed with another secret", []webhook.Option{webhook.SignedWith("not-the-secret")}, http.StatusUnauthorized},
		{"tampered", []webhook.Option{webhook.Tampered()}, http.StatusUnauthorized},
		{"stale", []webhook.Option{webhook.Stale(10 * time.Minute)}, http.StatusUnauthorized},
		{"from the future", []webhook.Option{webhook.SignedAt(time.Now().Add(10 * time.Minute))}, http.StatusUnauthorized},
		{"unsigned", []webhook.Option{webhook.Unsigned()}, http.StatusUnauthorized},
	} {
		got, err := s.Send(ctx, ev, c.opts...)
		if err != nil || got != c.want {
			t.Errorf("%s: status %d (err %v), want %d", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		body []byte
		want int
	}{
		{"oversized", append([]byte(`{"scope":"store/order/created","data":{"type":"order","id":42},"pad":"`),
			append(bytes.Repeat([]byte("x"), 64<<10), []byte(`"}`)...)...), http.StatusRequestEntityTooLarge},
		{"malformed JSON", []byte(`{"scope":"store/order/created",`), http.StatusBadRequest},
		{"not JSON", []byte(`scope=store/order/created`), http.StatusBadRequest},
		{"wrong types", []byte(`{"scope":"store/order/created","data":{"type":"order","id":"abc"}}`), http.StatusBadRequest},
		{"no order id", []byte(`{"scope":"store/order/created","store_id":"1","data":{"type":"order"},"producer":"stores/` + storeHash + `"}`), http.StatusBadRequest},
		{"another store", []byte(`{"scope":"store/order/created","store_id":"1","data":{"type":"order","id":42},"hash":"z","producer":"stores/other"}`), http.StatusForbidden},
		{"non-order scope", []byte(`{"scope":"store/product/updated","store_id":"1","data":{"type":"product","id":42}}`), http.StatusOK},
		{"order message scope", []byte(`{"scope":"store/order/message/created","store_id":"1","data":{"type":"order","id":42},"hash":"m","producer":"stores/` + storeHash + `"}`), http.StatusOK},
	} {
		got := postSigned(t, e, c.body)
		if got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	cli := etcdtest.Client(t, e.etcd)
	r, err := cli.Get(ctx, e.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range r.Kvs {
		// Locks, the Orders API sweep's state and the replica's place in
		// the division of the queue (both set at start-up) are not the
		// deliveries' doing.
		k := string(kv.Key)
		if !strings.HasPrefix(k, e.prefix+"locks/") && !strings.HasPrefix(k, e.prefix+"sweeps/") && !strings.HasPrefix(k, e.prefix+"processors/") {
			t.Errorf("a refused delivery wrote %s", kv.Key)
		}
	}
	if n := len(e.ts.Ledger().Orders) + e.ts.Ledger().Validations; n != 0 {
		t.Errorf("the supplier was called %d times", n)
	}
}

// postSigned signs an arbitrary body as BigCommerce would and posts it.
func postSigned(t *testing.T, e *env, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.webhookURL(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.SignRequest(req, clientSecret, "msg_test_"+t.Name(), time.Now(), body); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// grpcurl, pinned in go.mod, sees the service through reflection and reads
// an order: no proto files needed.
func TestGrpcurlListsAndReadsAnOrder(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "validate"})
	addr := e.replicas[0].Addr
	out := grpcurl(t, "-plaintext", addr, "list")
	for _, want := range []string{"backorder.v1.FulfillmentService", "grpc.health.v1.Health"} {
		if !strings.Contains(out, want) {
			t.Fatalf("grpcurl list: no %s in\n%s", want, out)
		}
	}
	out = grpcurl(t, "-plaintext", addr, "describe", "backorder.v1.FulfillmentService")
	for _, rpc := range []string{"HandleOrderWebhook", "ProcessOrder", "GetOrder", "ListOrders", "GetServiceStatus"} {
		if !strings.Contains(out, rpc) {
			t.Fatalf("describe lacks %s:\n%s", rpc, out)
		}
	}
	e.bc.AddOrder(storeHash, bcsimOrder(55))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, 55)}, 1)
	e.waitState(55, stateValidated)
	out = grpcurl(t, "-plaintext", "-d", `{"store_hash":"`+storeHash+`","order_id":55}`, addr, "backorder.v1.FulfillmentService/GetOrder")
	for _, want := range []string{`"ORDER_STATE_VALIDATED"`, `"BC-abc123-55"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("GetOrder via grpcurl lacks %s:\n%s", want, out)
		}
	}
	out = grpcurl(t, "-plaintext", "-d", `{"state":"ORDER_STATE_VALIDATED"}`, addr, "backorder.v1.FulfillmentService/ListOrders")
	if !strings.Contains(out, `"55"`) {
		t.Fatalf("ListOrders via grpcurl lacks order 55:\n%s", out)
	}
	out = grpcurl(t, "-plaintext", addr, "backorder.v1.FulfillmentService/GetServiceStatus")
	if !strings.Contains(out, "SUPPLIER_MODE_VALIDATE") {
		t.Fatalf("GetServiceStatus does not say validate mode:\n%s", out)
	}
}

func grpcurl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bins.Grpcurl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Wrong configuration stops the service at once with a message that names
// the setting.
func TestWrongConfigurationNamesTheSetting(t *testing.T) {
	etcd := etcdtest.Start(t)
	good := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "ETCD_ENDPOINTS": etcd, "ETCD_DIAL_TIMEOUT": "2s",
		"BIGCOMMERCE_STORE_HASH": storeHash, "BIGCOMMERCE_ACCESS_TOKEN": bcToken,
		"BIGCOMMERCE_API_URL": "http://127.0.0.1:1", "TROPSHIP_BASE_URL": "http://127.0.0.1:1",
		"TROPSHIP_CLIENT_ID": tsClientID, "TROPSHIP_CLIENT_SECRET": tsSecret,
	}
	for _, c := range []struct {
		name    string
		change  map[string]string
		mention string
	}{
		{"bad BigCommerce URL", map[string]string{"BIGCOMMERCE_API_URL": "api.bigcommerce.com"}, "BIGCOMMERCE_API_URL"},
		{"bad TropShip URL", map[string]string{"TROPSHIP_BASE_URL": "ftp://tropicana"}, "TROPSHIP_BASE_URL"},
		{"no TropShip credentials", map[string]string{"TROPSHIP_MODE": "live", "TROPSHIP_CLIENT_ID": ""}, "TROPSHIP_CLIENT_ID"},
		{"unknown mode", map[string]string{"TROPSHIP_MODE": "yolo"}, "TROPSHIP_MODE"},
		{"no access token", map[string]string{"BIGCOMMERCE_ACCESS_TOKEN": ""}, "BIGCOMMERCE_ACCESS_TOKEN"},
		{"unreachable etcd", map[string]string{"ETCD_ENDPOINTS": "http://127.0.0.1:1"}, "ETCD_ENDPOINTS"},
		{"bad duration", map[string]string{"SWEEP_INTERVAL": "often"}, "SWEEP_INTERVAL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			for k, v := range c.change {
				env[k] = v
			}
			p, err := stack.Start("fulfillment", bins.Fulfillment, env, nil)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Exited():
			case <-time.After(2 * time.Minute):
				p.Kill()
				t.Fatalf("the service did not stop:\n%s", p.Output())
			}
			if p.Err() == nil {
				t.Fatalf("exit status 0 with a wrong setting:\n%s", p.Output())
			}
			if !strings.Contains(p.Output(), c.mention) {
				t.Fatalf("the error does not name %s:\n%s", c.mention, p.Output())
			}
		})
	}
	t.Run("gateway without any verification", func(t *testing.T) {
		p, err := stack.Start("webhook-gateway", bins.Gateway, map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-p.Exited()
		if p.Err() == nil || !strings.Contains(p.Output(), "BIGCOMMERCE_CLIENT_SECRET") {
			t.Fatalf("gateway started without verification, or did not say what to set: %v\n%s", p.Err(), p.Output())
		}
	})
}

const stateValidated = backorderv1.OrderState_ORDER_STATE_VALIDATED

func bcsimOrder(id uint64) bcsim.Order {
	return bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(1)...)
}
