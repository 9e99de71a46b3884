package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

const adminToken = "admin-token"

// Short names for the states the operator tests meet.
const (
	stReceived    = backorderv1.OrderState_ORDER_STATE_RECEIVED
	stIneligible  = backorderv1.OrderState_ORDER_STATE_INELIGIBLE
	stSubmitted   = backorderv1.OrderState_ORDER_STATE_SUBMITTED
	stRejected    = backorderv1.OrderState_ORDER_STATE_REJECTED
	stNeedsReview = backorderv1.OrderState_ORDER_STATE_NEEDS_REVIEW
	stFailed      = backorderv1.OrderState_ORDER_STATE_FAILED
)

// operatorEnv is one live replica, no lookup by reference, one attempt per
// order (so a single 429 makes an order FAILED), a short supplier timeout,
// and a supplier catalogue the tests change.
func operatorEnv(t *testing.T) *env {
	e := newEnv(t, options{
		replicas: 1,
		mode:     "live",
		env: map[string]string{
			"TROPSHIP_LOOKUP":    "false",
			"TROPSHIP_TIMEOUT":   "2s",
			"RETRY_BASE":         "50ms",
			"RETRY_MAX":          "500ms",
			"RETRY_MAX_ATTEMPTS": "1",
		},
		tropship: tropsim.Options{Seed: 3, MaxHang: 30 * time.Second},
	})
	e.ts.SetCatalog([]string{"APP001"})
	return e
}

// opResult is the answer to an operator call over either transport.
type opResult struct {
	code  codes.Code
	http  int // the HTTP status, for calls through the gateway
	msg   string
	order *backorderv1.Order
}

// resolution is a ResolveOrder request; nil fields are left out.
type resolution struct {
	offlineOrderID *string
	noOrder        *bool
	actor, note    string
}

// operator is the operator API over one transport.
type operator interface {
	name() string
	retry(id uint64, actor, note string) opResult
	resolve(id uint64, r resolution) opResult
	get(id uint64) opResult
	list(state backorderv1.OrderState) ([]*backorderv1.Order, error)
}

// The HTTP statuses the gateway gives for the codes operators meet.
var wantHTTP = map[codes.Code]int{
	codes.OK:                 http.StatusOK,
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.NotFound:           http.StatusNotFound,
	codes.FailedPrecondition: http.StatusConflict,
}

// ---- gRPC ----

type grpcOperator struct{ e *env }

func (g grpcOperator) name() string { return "grpc" }

func grpcResult(o *backorderv1.Order, err error) opResult {
	st := status.Convert(err)
	return opResult{code: st.Code(), msg: st.Message(), order: o}
}

func (g grpcOperator) retry(id uint64, actor, note string) opResult {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := g.e.client.RetryOrder(ctx, &backorderv1.RetryOrderRequest{StoreHash: storeHash, OrderId: id, Actor: actor, Note: note})
	return grpcResult(r.GetOrder(), err)
}

func (g grpcOperator) resolve(id uint64, res resolution) opResult {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &backorderv1.ResolveOrderRequest{StoreHash: storeHash, OrderId: id, Actor: res.actor, Note: res.note}
	switch {
	case res.offlineOrderID != nil:
		req.Resolution = &backorderv1.ResolveOrderRequest_OfflineOrderId{OfflineOrderId: *res.offlineOrderID}
	case res.noOrder != nil:
		req.Resolution = &backorderv1.ResolveOrderRequest_SupplierHasNoOrder{SupplierHasNoOrder: *res.noOrder}
	}
	r, err := g.e.client.ResolveOrder(ctx, req)
	return grpcResult(r.GetOrder(), err)
}

func (g grpcOperator) get(id uint64) opResult {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := g.e.client.GetOrder(ctx, &backorderv1.GetOrderRequest{StoreHash: storeHash, OrderId: id})
	return grpcResult(r.GetOrder(), err)
}

func (g grpcOperator) list(state backorderv1.OrderState) ([]*backorderv1.Order, error) {
	m, err := g.e.listAll(state)
	if err != nil {
		return nil, err
	}
	var out []*backorderv1.Order
	for _, o := range m {
		out = append(out, o)
	}
	return out, nil
}

// ---- HTTP through the gateway ----

type httpOperator struct {
	e     *env
	token string // the bearer token; "" sends no Authorization
}

func (h httpOperator) name() string { return "http" }

func (h httpOperator) url(path string) string { return "http://" + h.e.gateway.Addr + path }

// do sends one request with the bearer token and decodes a success into
// into, or an error body into the result.
func (h httpOperator) do(method, path string, body any, into proto.Message) opResult {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url(path), rd)
	if err != nil {
		return opResult{code: codes.Internal, msg: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return opResult{code: codes.Unavailable, msg: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := opResult{http: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := protojson.Unmarshal(b, into); err != nil {
			return opResult{http: resp.StatusCode, code: codes.Internal, msg: fmt.Sprintf("decoding %s: %v", b, err)}
		}
		return r
	}
	var eb struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(b, &eb); err != nil {
		r.code, r.msg = codes.Unknown, fmt.Sprintf("undecodable error body %q", b)
		return r
	}
	r.msg, r.code = eb.Error, codes.Unknown
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == eb.Code {
			r.code = c
		}
	}
	return r
}

func orderPath(id uint64) string { return fmt.Sprintf("/v1/stores/%s/orders/%d", storeHash, id) }

func (h httpOperator) retry(id uint64, actor, note string) opResult {
	var out backorderv1.RetryOrderResponse
	r := h.do(http.MethodPost, orderPath(id)+":retry", map[string]string{"actor": actor, "note": note}, &out)
	r.order = out.GetOrder()
	return r
}

func (h httpOperator) resolve(id uint64, res resolution) opResult {
	body := map[string]any{"actor": res.actor, "note": res.note}
	if res.offlineOrderID != nil {
		body["offline_order_id"] = *res.offlineOrderID
	}
	if res.noOrder != nil {
		body["supplier_has_no_order"] = *res.noOrder
	}
	var out backorderv1.ResolveOrderResponse
	r := h.do(http.MethodPost, orderPath(id)+":resolve", body, &out)
	r.order = out.GetOrder()
	return r
}

func (h httpOperator) get(id uint64) opResult {
	var out backorderv1.GetOrderResponse
	r := h.do(http.MethodGet, orderPath(id), nil, &out)
	r.order = out.GetOrder()
	return r
}

func (h httpOperator) list(state backorderv1.OrderState) ([]*backorderv1.Order, error) {
	var all []*backorderv1.Order
	token := ""
	for {
		// A small page, so that paging through the gateway is exercised.
		q := url.Values{"state": {state.String()}, "page_size": {"2"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out backorderv1.ListOrdersResponse
		r := h.do(http.MethodGet, "/v1/orders?"+q.Encode(), nil, &out)
		if r.http != http.StatusOK {
			return nil, fmt.Errorf("GET /v1/orders: HTTP %d %s %s", r.http, r.code, r.msg)
		}
		all = append(all, out.GetOrders()...)
		if token = out.GetNextPageToken(); token == "" {
			return all, nil
		}
	}
}

// expect checks the code (and, through the gateway, the HTTP status) of an
// operator call, and that an error message contains every one of words.
func expect(t *testing.T, what string, r opResult, want codes.Code, words ...string) {
	t.Helper()
	if r.code != want {
		t.Errorf("%s: code %v (HTTP %d) %q; want %v", what, r.code, r.http, r.msg, want)
		return
	}
	if r.http != 0 && r.http != wantHTTP[want] {
		t.Errorf("%s: HTTP %d; want %d for %v", what, r.http, wantHTTP[want], want)
	}
	for _, w := range words {
		if !strings.Contains(r.msg, w) {
			t.Errorf("%s: message %q does not say %q", what, r.msg, w)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// checkAction checks the last operator action recorded on o.
func checkAction(t *testing.T, o *backorderv1.Order, n int, kind, actor, note string, from, to backorderv1.OrderState, since time.Time) {
	t.Helper()
	acts := o.GetActions()
	if len(acts) != n {
		t.Errorf("order %d records %d actions, want %d: %v", o.GetOrderId(), len(acts), n, acts)
		return
	}
	a := acts[n-1]
	at := a.GetAt().AsTime()
	if a.GetAction() != kind || a.GetActor() != actor || a.GetNote() != note ||
		a.GetFromState() != from || a.GetToState() != to ||
		at.Before(since.Add(-2*time.Second)) || at.After(time.Now().Add(2*time.Second)) {
		t.Errorf("order %d: action %v; want %s by %q (%q) %v -> %v at about %v", o.GetOrderId(), a, kind, actor, note, from, to, since)
	}
}

// opOrders are the orders of one run of the operator scenario.
type opOrders struct {
	rejected, failed, reviewCreated, reviewNotCreated, reviewTimeout, submitted, ineligible uint64
}

// prepare gets one order into each state the operator acts on. The faults
// are counted, and each order is taken to its state before the next is
// sent, so each fault strikes the order it is meant for.
func prepareOperatorOrders(t *testing.T, e *env, base uint64) opOrders {
	t.Helper()
	o := opOrders{
		rejected: base + 1, failed: base + 2, reviewCreated: base + 3, reviewNotCreated: base + 4,
		reviewTimeout: base + 5, submitted: base + 6, ineligible: base + 7,
	}
	send := func(id uint64, status uint32, sku string, f tropsim.Faults, want backorderv1.OrderState) {
		t.Helper()
		e.ts.SetFaults(f)
		e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, status, bcsim.Line{SKU: sku, Quantity: 2}))
		e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
		e.waitState(id, want)
	}
	// The supplier does not know the product: 422.
	send(o.rejected, bcsim.StatusAwaitingFulfillment, fmt.Sprintf("NEW%d", o.rejected), tropsim.Faults{}, stRejected)
	// One 429, and one attempt allowed.
	send(o.failed, bcsim.StatusAwaitingFulfillment, "APP001", tropsim.Faults{Throttle: tropsim.Trigger{Count: 1}}, stFailed)
	// Created, then a 5xx: the supplier has it, we cannot know.
	send(o.reviewCreated, bcsim.StatusAwaitingFulfillment, "APP001", tropsim.Faults{FailAfterCreate: tropsim.Trigger{Count: 1}}, stNeedsReview)
	// A 5xx before creating: the supplier has nothing, we cannot know.
	send(o.reviewNotCreated, bcsim.StatusAwaitingFulfillment, "APP001", tropsim.Faults{FailBeforeCreate: tropsim.Trigger{Count: 1}}, stNeedsReview)
	// Created, then no answer at all.
	send(o.reviewTimeout, bcsim.StatusAwaitingFulfillment, "APP001", tropsim.Faults{TimeoutAfterCreate: tropsim.Trigger{Count: 1}}, stNeedsReview)
	send(o.submitted, bcsim.StatusAwaitingFulfillment, "APP001", tropsim.Faults{}, writtenBack)
	send(o.ineligible, bcsim.StatusAwaitingPayment, "APP001", tropsim.Faults{}, stIneligible)
	e.ts.SetFaults(tropsim.Faults{})

	l := e.ts.Ledger()
	for id, want := range map[uint64]int{
		o.rejected: 0, o.failed: 0, o.reviewCreated: 1, o.reviewNotCreated: 0, o.reviewTimeout: 1, o.submitted: 1, o.ineligible: 0,
	} {
		if got := l.References[supplierRef(id)]; got != want {
			t.Fatalf("setup: supplier has %d orders for order %d, want %d", got, id, want)
		}
	}
	return o
}

// Operator actions, over HTTP through the gateway and over gRPC: each
// allowed transition works and is recorded with who, why, from, to and
// when; each forbidden one is refused with a clear error and changes
// nothing; the supplier gets each order exactly once throughout.
func TestOperatorActions(t *testing.T) {
	e := operatorEnv(t)
	for i, op := range []operator{httpOperator{e: e, token: adminToken}, grpcOperator{e: e}} {
		t.Run(op.name(), func(t *testing.T) {
			testOperatorActions(t, e, op, uint64(100*(i+1)))
		})
	}
	if l := e.ts.Ledger(); l.ExtraOrders != 0 {
		t.Errorf("supplier has %d duplicate orders: %v", l.ExtraOrders, l.References)
	}
}

func testOperatorActions(t *testing.T, e *env, op operator, base uint64) {
	o := prepareOperatorOrders(t, e, base)
	ledgerID := func(id uint64) string {
		t.Helper()
		got := e.ts.Ledger().OrdersFor(supplierRef(id))
		if len(got) != 1 {
			t.Fatalf("supplier has %d orders for order %d, want 1: %v", len(got), id, got)
		}
		return got[0].OfflineOrderID
	}

	// The review queue lists the three ambiguous orders, each saying which
	// reference to look for.
	review, err := op.list(stNeedsReview)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uint64]*backorderv1.Order{}
	for _, r := range review {
		listed[r.GetOrderId()] = r
	}
	for _, id := range []uint64{o.reviewCreated, o.reviewNotCreated, o.reviewTimeout} {
		r, ok := listed[id]
		if !ok {
			t.Errorf("order %d is not listed as NEEDS_REVIEW: %v", id, review)
			continue
		}
		if r.GetState() != stNeedsReview || !strings.Contains(r.GetReviewReason(), supplierRef(id)) {
			t.Errorf("listed order %d: %v, review reason %q", id, r.GetState(), r.GetReviewReason())
		}
	}
	for id := range listed {
		if id > base && id < base+100 && id != o.reviewCreated && id != o.reviewNotCreated && id != o.reviewTimeout {
			t.Errorf("order %d listed as NEEDS_REVIEW", id)
		}
	}

	// Malformed requests: 400, nothing changes.
	expect(t, "retry without actor", op.retry(o.rejected, "", "no name"), codes.InvalidArgument, "actor")
	expect(t, "retry with a blank actor", op.retry(o.failed, "  ", "no name"), codes.InvalidArgument, "actor")
	expect(t, "resolve without actor", op.resolve(o.reviewCreated, resolution{offlineOrderID: ptr("TS-1")}), codes.InvalidArgument, "actor")
	expect(t, "resolve without actor (not at supplier)", op.resolve(o.reviewNotCreated, resolution{noOrder: ptr(true)}), codes.InvalidArgument, "actor")
	expect(t, "resolve with neither field", op.resolve(o.reviewCreated, resolution{actor: "alice"}), codes.InvalidArgument, "offline_order_id", "supplier_has_no_order")
	expect(t, "resolve with supplier_has_no_order false", op.resolve(o.reviewNotCreated, resolution{noOrder: ptr(false), actor: "alice"}), codes.InvalidArgument, "supplier_has_no_order")
	// Unknown orders: 404.
	expect(t, "retry of an unknown order", op.retry(base+99, "alice", ""), codes.NotFound)
	expect(t, "resolve of an unknown order", op.resolve(base+99, resolution{noOrder: ptr(true), actor: "alice"}), codes.NotFound)
	expect(t, "get of an unknown order", op.get(base+99), codes.NotFound)

	// Forbidden transitions: 409, naming the state the order is in.
	expect(t, "retry of a WRITTEN_BACK order", op.retry(o.submitted, "alice", ""), codes.FailedPrecondition, "WRITTEN_BACK")
	expect(t, "retry of a NEEDS_REVIEW order", op.retry(o.reviewTimeout, "alice", ""), codes.FailedPrecondition, "NEEDS_REVIEW")
	expect(t, "retry of an INELIGIBLE order", op.retry(o.ineligible, "alice", ""), codes.FailedPrecondition, "INELIGIBLE")
	expect(t, "resolve of a WRITTEN_BACK order", op.resolve(o.submitted, resolution{offlineOrderID: ptr("TS-999999"), actor: "alice"}), codes.FailedPrecondition, "WRITTEN_BACK")
	expect(t, "resolve (not at supplier) of a WRITTEN_BACK order", op.resolve(o.submitted, resolution{noOrder: ptr(true), actor: "alice"}), codes.FailedPrecondition, "WRITTEN_BACK")
	expect(t, "resolve of a REJECTED order", op.resolve(o.rejected, resolution{noOrder: ptr(true), actor: "alice"}), codes.FailedPrecondition, "REJECTED")
	expect(t, "resolve of a FAILED order", op.resolve(o.failed, resolution{offlineOrderID: ptr("TS-999999"), actor: "alice"}), codes.FailedPrecondition, "FAILED")
	expect(t, "resolve of an INELIGIBLE order", op.resolve(o.ineligible, resolution{noOrder: ptr(true), actor: "alice"}), codes.FailedPrecondition, "INELIGIBLE")

	// None of that changed anything.
	for id, want := range map[uint64]backorderv1.OrderState{
		o.rejected: stRejected, o.failed: stFailed, o.reviewCreated: stNeedsReview, o.reviewNotCreated: stNeedsReview,
		o.reviewTimeout: stNeedsReview, o.submitted: writtenBack, o.ineligible: stIneligible,
	} {
		r := op.get(id)
		expect(t, fmt.Sprintf("get order %d", id), r, codes.OK)
		if r.order.GetState() != want || len(r.order.GetActions()) != 0 {
			t.Errorf("order %d after refused actions: %v with actions %v; want %v and none", id, r.order.GetState(), r.order.GetActions(), want)
		}
	}

	// REJECTED, fixed at the supplier, retried: submitted once.
	e.ts.SetCatalog([]string{"APP001", fmt.Sprintf("NEW%d", o.rejected)})
	t0 := time.Now()
	r := op.retry(o.rejected, "alice", "NEW product added to the dropship catalogue")
	expect(t, "retry of a REJECTED order", r, codes.OK)
	if r.order.GetState() != stReceived || r.order.GetAttempts() != 0 {
		t.Errorf("retried order answered %v with %d attempts; want RECEIVED with 0", r.order.GetState(), r.order.GetAttempts())
	}
	checkAction(t, r.order, 1, "retry", "alice", "NEW product added to the dropship catalogue", stRejected, stReceived, t0)
	got := e.waitState(o.rejected, writtenBack)
	if got.GetOfflineOrderId() != ledgerID(o.rejected) {
		t.Errorf("retried order holds %q, supplier created %q", got.GetOfflineOrderId(), ledgerID(o.rejected))
	}
	checkAction(t, got, 1, "retry", "alice", "NEW product added to the dropship catalogue", stRejected, stReceived, t0)
	expect(t, "second retry of the (now WRITTEN_BACK) order", op.retry(o.rejected, "alice", ""), codes.FailedPrecondition, "WRITTEN_BACK")

	// FAILED, retried: submitted once. Five operators press the button at
	// once: one wins, the others are told the order moved on.
	t0 = time.Now()
	var wg sync.WaitGroup
	results := make([]opResult, 5)
	for i := range results {
		wg.Go(func() { results[i] = op.retry(o.failed, fmt.Sprintf("op%d", i), "supplier back") })
	}
	wg.Wait()
	winner := -1
	for i, r := range results {
		switch r.code {
		case codes.OK:
			if winner >= 0 {
				t.Errorf("retries %d and %d of one FAILED order both succeeded", winner, i)
			}
			winner = i
		case codes.FailedPrecondition:
			if !strings.Contains(r.msg, "RECEIVED") && !strings.Contains(r.msg, "SUBMITTING") && !strings.Contains(r.msg, "SUBMITTED") && !strings.Contains(r.msg, "WRITTEN_BACK") {
				t.Errorf("concurrent retry %d refused with %q; want the state the order moved on to", i, r.msg)
			}
		default:
			t.Errorf("concurrent retry %d: %v %q", i, r.code, r.msg)
		}
	}
	got = e.waitState(o.failed, writtenBack)
	if winner >= 0 {
		checkAction(t, got, 1, "retry", fmt.Sprintf("op%d", winner), "supplier back", stFailed, stReceived, t0)
	}
	if got.GetOfflineOrderId() != ledgerID(o.failed) {
		t.Errorf("retried order holds %q, supplier created %q", got.GetOfflineOrderId(), ledgerID(o.failed))
	}

	// NEEDS_REVIEW, found at the supplier: SUBMITTED with that id at once,
	// and nothing is sent; then the id is written back to BigCommerce.
	id := ledgerID(o.reviewCreated)
	t0 = time.Now()
	r = op.resolve(o.reviewCreated, resolution{offlineOrderID: &id, actor: "bob", note: "found in the TropShip portal"})
	expect(t, "resolve (found) of a NEEDS_REVIEW order", r, codes.OK)
	if r.order.GetState() != stSubmitted || r.order.GetOfflineOrderId() != id || r.order.GetReviewReason() != "" {
		t.Errorf("resolved order answered %v holding %q, review %q; want SUBMITTED holding %q", r.order.GetState(), r.order.GetOfflineOrderId(), r.order.GetReviewReason(), id)
	}
	checkAction(t, r.order, 1, "resolve-found", "bob", "found in the TropShip portal", stNeedsReview, stSubmitted, t0)
	if a := r.order.GetActions(); len(a) == 1 && a[0].GetOfflineOrderId() != id {
		t.Errorf("the action records offline_order_id %q, want %q", a[0].GetOfflineOrderId(), id)
	}
	e.checkWrittenBack(e.waitState(o.reviewCreated, writtenBack))
	expect(t, "second resolve of the (now WRITTEN_BACK) order", op.resolve(o.reviewCreated, resolution{noOrder: ptr(true), actor: "bob"}), codes.FailedPrecondition, "WRITTEN_BACK")
	// A late duplicate delivery does not send it either.
	e.sendAll([]webhook.Event{webhook.Updated(storeHash, storeID, o.reviewCreated)}, 1)

	// NEEDS_REVIEW, and the supplier has no such order: sent again, once.
	t0 = time.Now()
	r = op.resolve(o.reviewNotCreated, resolution{noOrder: ptr(true), actor: "carol", note: "not in the portal"})
	expect(t, "resolve (not at supplier) of a NEEDS_REVIEW order", r, codes.OK)
	if r.order.GetState() != stReceived {
		t.Errorf("resolved order answered %v; want RECEIVED", r.order.GetState())
	}
	checkAction(t, r.order, 1, "resolve-not-at-supplier", "carol", "not in the portal", stNeedsReview, stReceived, t0)
	got = e.waitState(o.reviewNotCreated, writtenBack)
	if got.GetOfflineOrderId() != ledgerID(o.reviewNotCreated) {
		t.Errorf("resent order holds %q, supplier created %q", got.GetOfflineOrderId(), ledgerID(o.reviewNotCreated))
	}
	checkAction(t, got, 1, "resolve-not-at-supplier", "carol", "not in the portal", stNeedsReview, stReceived, t0)

	// Two people resolve the timed-out order at once with the id they
	// found: exactly one action is recorded, the other is told the order
	// moved on.
	id = ledgerID(o.reviewTimeout)
	var dan, erin opResult
	wg.Go(func() { dan = op.resolve(o.reviewTimeout, resolution{offlineOrderID: &id, actor: "dan"}) })
	wg.Go(func() { erin = op.resolve(o.reviewTimeout, resolution{offlineOrderID: &id, actor: "erin"}) })
	wg.Wait()
	if (dan.code == codes.OK) == (erin.code == codes.OK) {
		t.Errorf("concurrent resolves: %v %q and %v %q; want exactly one OK", dan.code, dan.msg, erin.code, erin.msg)
	}
	for _, r := range []opResult{dan, erin} {
		// The winner's order is SUBMITTED, or already written back.
		if r.code != codes.OK && !strings.Contains(r.msg, "SUBMITTED") {
			expect(t, "the losing resolve", r, codes.FailedPrecondition, "WRITTEN_BACK")
		} else if r.code != codes.OK {
			expect(t, "the losing resolve", r, codes.FailedPrecondition)
		}
	}
	got = e.waitState(o.reviewTimeout, writtenBack)
	if got.GetOfflineOrderId() != id || len(got.GetActions()) != 1 {
		t.Errorf("resolved order holds %q with actions %v; want %q and one action", got.GetOfflineOrderId(), got.GetActions(), id)
	}

	// Every order is at the supplier once, and the record of every action
	// survives.
	time.Sleep(time.Second) // let anything wrongly queued reach the supplier
	l := e.ts.Ledger()
	for _, id := range []uint64{o.rejected, o.failed, o.reviewCreated, o.reviewNotCreated, o.reviewTimeout, o.submitted} {
		if n := l.References[supplierRef(id)]; n != 1 {
			t.Errorf("supplier has %d orders for order %d, want 1", n, id)
		}
	}
	if n := l.References[supplierRef(o.ineligible)]; n != 0 {
		t.Errorf("supplier has %d orders for INELIGIBLE order %d", n, o.ineligible)
	}
	for _, id := range []uint64{o.rejected, o.failed, o.reviewCreated, o.reviewNotCreated, o.reviewTimeout} {
		r := op.get(id)
		expect(t, fmt.Sprintf("get order %d", id), r, codes.OK)
		if r.order.GetState() != writtenBack || len(r.order.GetActions()) != 1 {
			t.Errorf("order %d: %v with actions %v; want WRITTEN_BACK with 1", id, r.order.GetState(), r.order.GetActions())
		}
		e.checkWrittenBack(r.order)
	}
	review, err = op.list(stNeedsReview)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range review {
		if r.GetOrderId() > base && r.GetOrderId() < base+100 {
			t.Errorf("order %d still listed as NEEDS_REVIEW", r.GetOrderId())
		}
	}
}

// The operator API needs the bearer token: without it, or with a wrong one,
// every route answers 401 and nothing changes; the webhook route does not
// take the token.
func TestOperatorAuthenticationRequired(t *testing.T) {
	e := operatorEnv(t)
	const id = 901
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Line{SKU: "NEW901", Quantity: 1}))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
	e.waitState(id, stRejected)
	e.ts.SetCatalog(nil)

	routes := []struct{ method, path, body string }{
		{http.MethodPost, orderPath(id) + ":retry", `{"actor":"mallory"}`},
		{http.MethodPost, orderPath(id) + ":resolve", `{"actor":"mallory","supplier_has_no_order":true}`},
		{http.MethodPost, orderPath(id) + ":process", `{}`},
		{http.MethodGet, orderPath(id), ""},
		{http.MethodGet, "/v1/orders?state=ORDER_STATE_NEEDS_REVIEW", ""},
		{http.MethodGet, "/v1/status", ""},
	}
	for _, auth := range []struct{ name, header string }{
		{"no Authorization", ""},
		{"wrong token", "Bearer not-the-admin-token"},
		{"token with a suffix", "Bearer " + adminToken + "x"},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic " + adminToken},
		{"token without scheme", adminToken},
	} {
		for _, rt := range routes {
			req, err := http.NewRequest(rt.method, "http://"+e.gateway.Addr+rt.path, strings.NewReader(rt.body))
			if err != nil {
				t.Fatal(err)
			}
			if auth.header != "" {
				req.Header.Set("Authorization", auth.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %s: HTTP %d (WWW-Authenticate %q) %s; want 401 with a Bearer challenge",
					rt.method, rt.path, auth.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
			}
			if strings.Contains(string(b), adminToken) {
				t.Errorf("%s %s with %s: the answer echoes the token: %s", rt.method, rt.path, auth.name, b)
			}
		}
	}
	// Nothing happened.
	o := e.waitState(id, stRejected)
	if len(o.GetActions()) != 0 || len(e.ts.Ledger().Orders) != 0 {
		t.Fatalf("unauthenticated calls changed the order: %v; supplier orders %d", o.GetActions(), len(e.ts.Ledger().Orders))
	}

	// With the token (the scheme is case-insensitive) the same call works.
	op := httpOperator{e: e, token: adminToken}
	req, _ := http.NewRequest(http.MethodPost, op.url(orderPath(id)+":retry"), strings.NewReader(`{"actor":"alice","note":"catalogue fixed"}`))
	req.Header.Set("Authorization", "bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry with the token: HTTP %d %s", resp.StatusCode, b)
	}
	o = e.waitState(id, writtenBack)
	if len(o.GetActions()) != 1 || o.GetActions()[0].GetActor() != "alice" || len(e.ts.Ledger().Orders) != 1 {
		t.Fatalf("after the authenticated retry: %v, supplier orders %d", o.GetActions(), len(e.ts.Ledger().Orders))
	}
	if r := op.get(id); r.code != codes.OK || r.order.GetState() != writtenBack {
		t.Fatalf("GET with the token: %v %q %v", r.code, r.msg, r.order.GetState())
	}
}

// An empty offline_order_id is a malformed request, like a missing actor: it
// should be refused with InvalidArgument (400), not with
// FailedPrecondition (409), which tells the operator the order's state
// forbids the action.
func TestOperatorResolveWithBlankOfflineOrderID(t *testing.T) {
	e := operatorEnv(t)
	const id = 951
	e.ts.SetFaults(tropsim.Faults{FailBeforeCreate: tropsim.Trigger{Count: 1}})
	e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Line{SKU: "APP001", Quantity: 1}))
	e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
	e.waitState(id, stNeedsReview)
	for _, op := range []operator{httpOperator{e: e, token: adminToken}, grpcOperator{e: e}} {
		for _, blank := range []string{"", "   "} {
			r := op.resolve(id, resolution{offlineOrderID: ptr(blank), actor: "alice"})
			expect(t, fmt.Sprintf("%s: resolve with offline_order_id %q", op.name(), blank), r, codes.InvalidArgument, "offline_order_id")
		}
	}
	if o := e.waitState(id, stNeedsReview); len(o.GetActions()) != 0 {
		t.Errorf("refused resolves were recorded: %v", o.GetActions())
	}
}
