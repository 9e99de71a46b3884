package config_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := config.Load(env(map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.ListenAddr != ":8080" || !slices.Equal(cfg.FulfillmentAddrs, []string{"localhost:9090"}) ||
		cfg.FulfillmentTimeout != 5*time.Second || cfg.AttemptTimeout != time.Second || cfg.ShutdownTimeout != 10*time.Second ||
		cfg.InsecureSkipVerify || cfg.AdminToken != "" {
		t.Errorf("defaults = %+v", cfg)
	}
	if !cfg.VerifiesSignature() || cfg.VerifiesSharedSecret() {
		t.Errorf("mechanisms: signature %v, shared secret %v", cfg.VerifiesSignature(), cfg.VerifiesSharedSecret())
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings the error must contain; nil: no error
		check   func(t *testing.T, cfg config.Config)
	}{
		{
			name:    "no verification mechanism",
			env:     map[string]string{},
			wantErr: []string{"BIGCOMMERCE_CLIENT_SECRET", "WEBHOOK_SECRET_HEADER", "WEBHOOK_SECRET", "WEBHOOK_INSECURE_SKIP_VERIFY"},
		},
		{
			name: "insecure flag allows start",
			env:  map[string]string{"WEBHOOK_INSECURE_SKIP_VERIFY": "true"},
			check: func(t *testing.T, cfg config.Config) {
				if !cfg.InsecureSkipVerify || cfg.VerifiesSignature() || cfg.VerifiesSharedSecret() {
					t.Errorf("cfg = %+v", cfg)
				}
			},
		},
		{
			name:    "insecure flag false is not enough",
			env:     map[string]string{"WEBHOOK_INSECURE_SKIP_VERIFY": "false"},
			wantErr: []string{"BIGCOMMERCE_CLIENT_SECRET"},
		},
		{
			name:    "bad log level",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "LOG_LEVEL": "loud"},
			wantErr: []string{"LOG_LEVEL", "loud", "debug, info, warn or error"},
		},
		{
			name:    "bad debug address",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "DEBUG_ADDR": "6060"},
			wantErr: []string{"DEBUG_ADDR", "host:port"},
		},
		{
			name: "log level and debug address",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "LOG_LEVEL": "WARN", "DEBUG_ADDR": "127.0.0.1:6060"},
			check: func(t *testing.T, cfg config.Config) {
				if cfg.LogLevel != slog.LevelWarn || cfg.DebugAddr != "127.0.0.1:6060" {
					t.Errorf("LogLevel %v DebugAddr %q", cfg.LogLevel, cfg.DebugAddr)
				}
			},
		},
		{
			name:    "bad bool",
			env:     map[string]string{"WEBHOOK_INSECURE_SKIP_VERIFY": "yes please"},
			wantErr: []string{"WEBHOOK_INSECURE_SKIP_VERIFY", "boolean"},
		},
		{
			name:    "header without secret",
			env:     map[string]string{"WEBHOOK_SECRET_HEADER": "X-Secret"},
			wantErr: []string{"WEBHOOK_SECRET_HEADER", "WEBHOOK_SECRET is empty"},
		},
		{
			name:    "secret without header",
			env:     map[string]string{"WEBHOOK_SECRET": "s3cr3t", "BIGCOMMERCE_CLIENT_SECRET": "s"},
			wantErr: []string{"WEBHOOK_SECRET is set but WEBHOOK_SECRET_HEADER"},
		},
		{
			name:    "invalid header name",
			env:     map[string]string{"WEBHOOK_SECRET_HEADER": "X Secret:", "WEBHOOK_SECRET": "s3cr3t"},
			wantErr: []string{"WEBHOOK_SECRET_HEADER", "not a valid HTTP header name"},
		},
		{
			name: "shared secret only",
			env:  map[string]string{"WEBHOOK_SECRET_HEADER": "X-Secret", "WEBHOOK_SECRET": "s3cr3t"},
			check: func(t *testing.T, cfg config.Config) {
				if !cfg.VerifiesSharedSecret() || cfg.VerifiesSignature() {
					t.Errorf("cfg = %+v", cfg)
				}
			},
		},
		{
			name:    "bad duration",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_TIMEOUT": "5 seconds"},
			wantErr: []string{"FULFILLMENT_TIMEOUT", "not a duration"},
		},
		{
			name:    "bad shutdown timeout",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "SHUTDOWN_TIMEOUT": "10"},
			wantErr: []string{"SHUTDOWN_TIMEOUT", "not a duration"},
		},
		{
			name:    "non-positive duration",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_TIMEOUT": "0s"},
			wantErr: []string{"FULFILLMENT_TIMEOUT", "positive"},
		},
		{
			name: "attempt timeout",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ATTEMPT_TIMEOUT": "300ms"},
			check: func(t *testing.T, cfg config.Config) {
				if cfg.AttemptTimeout != 300*time.Millisecond {
					t.Errorf("AttemptTimeout = %s", cfg.AttemptTimeout)
				}
			},
		},
		{
			name: "a short FULFILLMENT_TIMEOUT is one try",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_TIMEOUT": "400ms"},
			check: func(t *testing.T, cfg config.Config) {
				if cfg.AttemptTimeout != 400*time.Millisecond {
					t.Errorf("AttemptTimeout = %s, want FULFILLMENT_TIMEOUT's 400ms", cfg.AttemptTimeout)
				}
			},
		},
		{
			name:    "attempt timeout longer than the call's",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_TIMEOUT": "2s", "FULFILLMENT_ATTEMPT_TIMEOUT": "3s"},
			wantErr: []string{"FULFILLMENT_ATTEMPT_TIMEOUT", "at most FULFILLMENT_TIMEOUT (2s)", "got 3s"},
		},
		{
			name:    "bad listen address",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "LISTEN_ADDR": "8080"},
			wantErr: []string{"LISTEN_ADDR"},
		},
		{
			name:    "bad replica in list",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "10.0.0.1:9090,10.0.0.2"},
			wantErr: []string{"FULFILLMENT_ADDR", `"10.0.0.2"`},
		},
		{
			name: "replica list",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": " 10.0.0.1:9090, 10.0.0.2:9090 ,"},
			check: func(t *testing.T, cfg config.Config) {
				if want := []string{"10.0.0.1:9090", "10.0.0.2:9090"}; !slices.Equal(cfg.FulfillmentAddrs, want) {
					t.Errorf("FulfillmentAddrs = %q, want %q", cfg.FulfillmentAddrs, want)
				}
			},
		},
		{
			name: "full gRPC target",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "dns:///fulfillment.backorder.svc:9090"},
			check: func(t *testing.T, cfg config.Config) {
				if len(cfg.FulfillmentAddrs) != 1 {
					t.Errorf("FulfillmentAddrs = %q", cfg.FulfillmentAddrs)
				}
			},
		},
		{
			name: "secrets with a trailing newline, as from a secret file",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s\n", "WEBHOOK_SECRET_HEADER": "X-Hook", "WEBHOOK_SECRET": "v\n", "ADMIN_TOKEN": " t\n"},
			check: func(t *testing.T, cfg config.Config) {
				if cfg.ClientSecret != "s" || cfg.Secret != "v" || cfg.AdminToken != "t" {
					t.Errorf("secrets not trimmed: %q %q %q", cfg.ClientSecret, cfg.Secret, cfg.AdminToken)
				}
			},
		},
		{
			name:    "operator timeout not positive",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "OPERATOR_TIMEOUT": "0s"},
			wantErr: []string{"OPERATOR_TIMEOUT", "positive"},
		},
		{
			name: "operator timeout",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "OPERATOR_TIMEOUT": "2m"},
			check: func(t *testing.T, cfg config.Config) {
				if cfg.OperatorTimeout != 2*time.Minute || cfg.FulfillmentTimeout != 5*time.Second {
					t.Errorf("timeouts %s, %s; want 2m0s for the operator API, 5s for webhooks", cfg.OperatorTimeout, cfg.FulfillmentTimeout)
				}
			},
		},
		{
			name: "unix socket target",
			env:  map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "unix:///run/fulfillment.sock"},
		},
		{
			name:    "an HTTP URL is not a gRPC address",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "http://fulfillment:9090"},
			wantErr: []string{"FULFILLMENT_ADDR", "HTTP URL", "host:port"},
		},
		{
			name:    "dns target with the name in the authority",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "dns://fulfillment:9090"},
			wantErr: []string{"FULFILLMENT_ADDR", "dns:///"},
		},
		{
			name:    "unknown scheme",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "grpc://fulfillment:9090"},
			wantErr: []string{"FULFILLMENT_ADDR", "unknown scheme"},
		},
		{
			name:    "port that is not a number",
			env:     map[string]string{"BIGCOMMERCE_CLIENT_SECRET": "s", "FULFILLMENT_ADDR": "fulfillment:grpc"},
			wantErr: []string{"FULFILLMENT_ADDR", "port number"},
		},
		{
			name:    "every problem reported",
			env:     map[string]string{"FULFILLMENT_TIMEOUT": "x", "SHUTDOWN_TIMEOUT": "y"},
			wantErr: []string{"FULFILLMENT_TIMEOUT", "SHUTDOWN_TIMEOUT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(env(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.check != nil {
					tt.check(t, cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", cfg)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestErrorsAndLogValueHideSecrets(t *testing.T) {
	secrets := map[string]string{
		"BIGCOMMERCE_CLIENT_SECRET": "client-secret-value",
		"WEBHOOK_SECRET":            "shared-secret-value",
		"ADMIN_TOKEN":               "admin-token-value",
		"FULFILLMENT_TIMEOUT":       "bad",
	}
	_, err := config.Load(env(secrets))
	if err == nil {
		t.Fatal("want an error")
	}
	cfg := config.Config{ClientSecret: "client-secret-value", Secret: "shared-secret-value", AdminToken: "admin-token-value"}
	logged := cfg.LogValue().String()
	for _, v := range []string{"client-secret-value", "shared-secret-value", "admin-token-value"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error reveals %q: %v", v, err)
		}
		if strings.Contains(logged, v) {
			t.Errorf("LogValue reveals %q: %s", v, logged)
		}
	}
}

// A start-up with several wrong settings names every one of them at once,
// not one per restart.
func TestLoadNamesEveryWrongVariable(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"BIGCOMMERCE_CLIENT_SECRET": "s",
		"LOG_LEVEL":                 "trace",
		"FULFILLMENT_TIMEOUT":       "soon",
		"LISTEN_ADDR":               "nonsense",
		"FULFILLMENT_ADDR":          "http://x:9090",
	}))
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, name := range []string{"LOG_LEVEL", "FULFILLMENT_TIMEOUT", "LISTEN_ADDR", "FULFILLMENT_ADDR"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if n := strings.Count(err.Error(), "FULFILLMENT_TIMEOUT"); n != 1 {
		t.Errorf("FULFILLMENT_TIMEOUT reported %d times: %v", n, err)
	}
}
