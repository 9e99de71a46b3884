package verify

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

var benchBody = []byte(`{"scope":"store/order/statusUpdated","store_id":"1025646","data":{"type":"order","id":250,"status":{"previous_status_id":7,"new_status_id":11}},"hash":"7d0a1bd6b2b7e1f3c0b0a1f2e3d4c5b6a7980102","created_at":1561479335,"producer":"stores/abc123"}`)

// BenchmarkVerify is one Standard Webhooks signature check plus the shared
// secret header: the gateway's work before anything is forwarded.
func BenchmarkVerify(b *testing.B) {
	v, err := New(Options{ClientSecret: "secret", SecretHeader: "X-Secret", Secret: "shared"})
	if err != nil {
		b.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhookRaw([]byte("secret"))
	now := time.Now()
	sig, _ := wh.Sign("msg_1", now, benchBody)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	h.Set("X-Secret", "shared")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(h, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEnvelope decodes the BigCommerce envelope into the RPC
// request as grpc-gateway does (protojson, unknown fields discarded).
func BenchmarkDecodeEnvelope(b *testing.B) {
	u := protojson.UnmarshalOptions{DiscardUnknown: true}
	b.ReportAllocs()
	for b.Loop() {
		var req backorderv1.HandleOrderWebhookRequest
		if err := u.Unmarshal(benchBody, &req); err != nil {
			b.Fatal(err)
		}
	}
}
