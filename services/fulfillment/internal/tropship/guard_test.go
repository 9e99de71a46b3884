package tropship

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// A send guard that refuses (the order's lock was lost) stops the live POST
// after the token is in hand: nothing reaches the orders endpoint.
func TestSendGuardStopsTheCall(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":300}`))
			return
		}
		posts.Add(1)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"offline_order_id":"TS-1","reference":"R","status":"received"}`))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := fulfill.WithSendGuard(context.Background(), func(context.Context) error { return errors.New("lock lost") })
	r := c.Submit(ctx, order.Submission{Reference: "R"}, false)
	if r.Outcome != order.NotSent || posts.Load() != 0 {
		t.Fatalf("guarded submit: %+v, %d posts; want NotSent and none", r, posts.Load())
	}
	r = c.Submit(context.Background(), order.Submission{Reference: "R"}, false)
	if r.Outcome != order.Created || posts.Load() != 1 {
		t.Fatalf("unguarded submit: %+v, %d posts", r, posts.Load())
	}
}
