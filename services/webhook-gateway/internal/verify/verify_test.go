package verify_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/backorder/backorder/services/webhook-gateway/internal/verify"
)

const body = `{"scope":"store/order/created","data":{"type":"order","id":1}}`

func signed(t *testing.T, key string, at time.Time) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhookRaw([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_1", at, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestVerify(t *testing.T) {
	now := time.Now()
	both := verify.Options{ClientSecret: "key", SecretHeader: "x-hook-secret", Secret: "s3cr3t"}
	withSecret := func(h http.Header, v string) http.Header {
		h.Set("X-Hook-Secret", v)
		return h
	}
	tests := []struct {
		name    string
		opts    verify.Options
		header  http.Header
		wantErr error
	}{
		{"signature only, valid", verify.Options{ClientSecret: "key"}, signed(t, "key", now), nil},
		{"signature only, wrong key", verify.Options{ClientSecret: "key"}, signed(t, "other", now), verify.ErrSignature},
		{"signature only, too old", verify.Options{ClientSecret: "key"}, signed(t, "key", now.Add(-6*time.Minute)), verify.ErrSignature},
		{"signature only, too new", verify.Options{ClientSecret: "key"}, signed(t, "key", now.Add(6*time.Minute)), verify.ErrSignature},
		{"signature only, unsigned", verify.Options{ClientSecret: "key"}, http.Header{}, verify.ErrSignature},
		{"shared secret only, valid", verify.Options{SecretHeader: "X-Hook-Secret", Secret: "s3cr3t"}, withSecret(http.Header{}, "s3cr3t"), nil},
		{"shared secret only, wrong", verify.Options{SecretHeader: "X-Hook-Secret", Secret: "s3cr3t"}, withSecret(http.Header{}, "s3cr3"), verify.ErrSharedSecret},
		{"shared secret only, missing", verify.Options{SecretHeader: "X-Hook-Secret", Secret: "s3cr3t"}, http.Header{}, verify.ErrSharedSecret},
		{"both configured, both valid", both, withSecret(signed(t, "key", now), "s3cr3t"), nil},
		{"both configured, signed only (an app's hook)", both, signed(t, "key", now), nil},
		{"both configured, header only (a store API account's hook)", both, withSecret(http.Header{}, "s3cr3t"), nil},
		{"both configured, signature bad though the secret is right", both, withSecret(signed(t, "nope", now), "s3cr3t"), verify.ErrSignature},
		{"both configured, signature too old though the secret is right", both, withSecret(signed(t, "key", now.Add(-6*time.Minute)), "s3cr3t"), verify.ErrSignature},
		{"both configured, a lone signature header", both, withSecret(http.Header{"Webhook-Signature": {"v1,AAAA"}}, "s3cr3t"), verify.ErrSignature},
		{"both configured, secret wrong though the signature is right", both, withSecret(signed(t, "key", now), "guess"), verify.ErrSharedSecret},
		{"both configured, secret header empty", both, withSecret(signed(t, "key", now), ""), verify.ErrSharedSecret},
		{"both configured, neither carried", both, http.Header{}, verify.ErrSignature},
		{"both configured, neither carried (secret)", both, http.Header{}, verify.ErrSharedSecret},
		{"both configured, the secret header twice, right then wrong", both, func() http.Header {
			h := withSecret(http.Header{}, "s3cr3t")
			h.Add("X-Hook-Secret", "guess")
			return h
		}(), verify.ErrSharedSecret},
		{"signature on the second of two header lines", verify.Options{ClientSecret: "key"}, func() http.Header {
			h := signed(t, "key", now)
			good := h.Get("Webhook-Signature")
			h.Set("Webhook-Signature", "v1,AAAA")
			h.Add("Webhook-Signature", good)
			return h
		}(), nil},
		{"two header lines, neither right", verify.Options{ClientSecret: "key"}, func() http.Header {
			h := signed(t, "other", now)
			h.Add("Webhook-Signature", "v1,AAAA")
			return h
		}(), verify.ErrSignature},
		{"insecure accepts anything", verify.Options{Insecure: true}, http.Header{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			_, err = v.Verify(tt.header, []byte(body))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := verify.New(verify.Options{}); !errors.Is(err, verify.ErrNoMechanism) {
		t.Errorf("New with nothing = %v, want ErrNoMechanism", err)
	}
	if _, err := verify.New(verify.Options{SecretHeader: "X-A"}); err == nil {
		t.Error("New with a header and no secret succeeded")
	}
	v, err := verify.New(verify.Options{Insecure: true})
	if err != nil || v.Enabled() {
		t.Errorf("insecure Verifier: err %v, enabled %v", err, v != nil && v.Enabled())
	}
}

// Verify says what authenticated a delivery, for the log line.
func TestVerifySaysWhatWasChecked(t *testing.T) {
	v, err := verify.New(verify.Options{ClientSecret: "key", SecretHeader: "x-hook-secret", Secret: "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	withSecret := func(h http.Header) http.Header { h.Set("X-Hook-Secret", "s3cr3t"); return h }
	for want, h := range map[verify.Checked]http.Header{
		verify.CheckedBoth:      withSecret(signed(t, "key", time.Now())),
		verify.CheckedSignature: signed(t, "key", time.Now()),
		verify.CheckedSecret:    withSecret(http.Header{}),
	} {
		if got, err := v.Verify(h, []byte(body)); err != nil || got != want {
			t.Errorf("Verify = %q, %v; want %q", got, err, want)
		}
	}
}
