package config_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/config"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// minimal is the smallest environment Load accepts.
func minimal() map[string]string {
	return map[string]string{
		"BIGCOMMERCE_STORE_HASH":   "abc123",
		"BIGCOMMERCE_ACCESS_TOKEN": "bc-token-SECRET",
		"TROPSHIP_BASE_URL":        "https://tropship.example.com",
		"TROPSHIP_CLIENT_ID":       "ts-id",
		"TROPSHIP_CLIENT_SECRET":   "ts-secret-SECRET",
	}
}

// load runs Load on minimal() changed by set; an empty value removes the
// variable.
func load(set map[string]string) (config.Config, error) {
	env := minimal()
	for k, v := range set {
		if v == "" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return config.Load(func(name string) string { return env[name] })
}

func TestLoadDefaults(t *testing.T) {
	got, err := load(nil)
	if err != nil {
		t.Fatalf("Load(minimal env): %v", err)
	}
	want := config.Config{
		ListenAddr:            ":9090",
		EtcdEndpoints:         nil, // embedded etcd
		EtcdDataDir:           "data/etcd",
		EtcdEmbedURL:          "http://127.0.0.1:2379",
		EtcdPrefix:            "/backorder/",
		EtcdDialTimeout:       5 * time.Second,
		LockTTL:               10 * time.Second,
		BigCommerceURL:        "https://api.bigcommerce.com",
		BigCommerceStore:      "abc123",
		BigCommerceToken:      "bc-token-SECRET",
		BigCommerceTimeout:    10 * time.Second,
		BigCommerceWriteBack:  true,
		BigCommerceSideLoad:   true,
		BigCommerceQuotaBurst: 10,
		TropShipURL:           "https://tropship.example.com",
		TropShipTokenPath:     "/oauth/token",
		TropShipOrdersPath:    "/v1/offline-orders",
		TropShipClientID:      "ts-id",
		TropShipClientSecret:  "ts-secret-SECRET",
		TropShipMode:          order.ModeValidate,
		TropShipValidateFirst: false,
		TropShipTimeout:       30 * time.Second,
		TropShipLookupSettle:  10 * time.Second,
		TropShipBreaker:       5,
		Policy:                order.Policy{EligibleStatuses: []uint32{11}, Countries: []string{"GB"}},
		Workers:               16,
		SweepInterval:         5 * time.Second,
		SweepGrace:            10 * time.Second,
		OrdersSweep:           15 * time.Minute,
		Retry:                 order.RetryPolicy{Base: 5 * time.Second, Max: 10 * time.Minute, MaxAttempts: 10},
		ShutdownTimeout:       10 * time.Second,
		LogLevel:              "info",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(minimal env) =\n%+v\nwant\n%+v", got, want)
	}
	// The defaults of the domain and of the configuration agree.
	if !reflect.DeepEqual(got.Policy, order.DefaultPolicy()) {
		t.Errorf("default policy %+v, order.DefaultPolicy() %+v", got.Policy, order.DefaultPolicy())
	}
}

func TestLoadSettings(t *testing.T) {
	tests := []struct {
		name  string
		set   map[string]string
		check func(config.Config) bool
	}{
		{"listen addr", map[string]string{"LISTEN_ADDR": " :7000 "}, func(c config.Config) bool { return c.ListenAddr == ":7000" }},
		{"blank value is the default", map[string]string{"LISTEN_ADDR": "   "}, func(c config.Config) bool { return c.ListenAddr == ":9090" }},
		{"live mode with credentials", map[string]string{"TROPSHIP_MODE": "live", "TROPSHIP_CLIENT_ID": "id", "TROPSHIP_CLIENT_SECRET": "s"},
			func(c config.Config) bool {
				return c.TropShipMode == order.ModeLive && c.TropShipClientID == "id" && c.TropShipClientSecret == "s"
			}},
		{"mode is case-insensitive", map[string]string{"TROPSHIP_MODE": "Validate"}, func(c config.Config) bool { return c.TropShipMode == order.ModeValidate }},
		{"token endpoint as a full URL", map[string]string{"TROPSHIP_TOKEN_PATH": "https://auth.tropicana.example/oauth/token"},
			func(c config.Config) bool { return c.TropShipTokenPath == "https://auth.tropicana.example/oauth/token" }},
		{"trailing slash trimmed", map[string]string{"TROPSHIP_BASE_URL": "http://127.0.0.1:8081/", "BIGCOMMERCE_API_URL": "http://127.0.0.1:8082/"},
			func(c config.Config) bool {
				return c.TropShipURL == "http://127.0.0.1:8081" && c.BigCommerceURL == "http://127.0.0.1:8082"
			}},
		{"a stand-in mounted under a path", map[string]string{"BIGCOMMERCE_API_URL": "http://127.0.0.1:8082/bc/stores/", "TROPSHIP_BASE_URL": "http://[::1]:8081/ts/"},
			func(c config.Config) bool {
				return c.BigCommerceURL == "http://127.0.0.1:8082/bc/stores" && c.TropShipURL == "http://[::1]:8081/ts"
			}},
		{"etcd endpoints", map[string]string{"ETCD_ENDPOINTS": "http://10.0.0.1:2379, http://10.0.0.2:2379,"},
			func(c config.Config) bool {
				return reflect.DeepEqual(c.EtcdEndpoints, []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"})
			}},
		{"etcd endpoints as host:port, as etcdctl takes them", map[string]string{"ETCD_ENDPOINTS": "etcd-0:2379,127.0.0.1:2379,[::1]:2379,https://etcd-1.example:2379"},
			func(c config.Config) bool {
				return reflect.DeepEqual(c.EtcdEndpoints, []string{"etcd-0:2379", "127.0.0.1:2379", "[::1]:2379", "https://etcd-1.example:2379"})
			}},
		{"statuses", map[string]string{"ELIGIBLE_STATUSES": "9, 11"},
			func(c config.Config) bool { return reflect.DeepEqual(c.Policy.EligibleStatuses, []uint32{9, 11}) }},
		{"countries upper-cased", map[string]string{"SHIP_COUNTRIES": "gb, ie"},
			func(c config.Config) bool { return reflect.DeepEqual(c.Policy.Countries, []string{"GB", "IE"}) }},
		{"sku prefix", map[string]string{"SKU_PREFIX": "TW-"}, func(c config.Config) bool { return c.Policy.SKUPrefix == "TW-" }},
		{"durations", map[string]string{"LOCK_TTL": "1s", "SWEEP_INTERVAL": "2m", "RETRY_BASE": "1s", "RETRY_MAX": "1h"},
			func(c config.Config) bool {
				return c.LockTTL == time.Second && c.SweepInterval == 2*time.Minute &&
					c.Retry.Base == time.Second && c.Retry.Max == time.Hour
			}},
		{"numbers", map[string]string{"WORKERS": "1", "RETRY_MAX_ATTEMPTS": "3"},
			func(c config.Config) bool { return c.Workers == 1 && c.Retry.MaxAttempts == 3 }},
		{"validate first", map[string]string{"TROPSHIP_VALIDATE_FIRST": "true"}, func(c config.Config) bool { return c.TropShipValidateFirst }},
		{"write-back off", map[string]string{"BIGCOMMERCE_WRITE_BACK": "false"}, func(c config.Config) bool { return !c.BigCommerceWriteBack }},
		{"side-load off", map[string]string{"BIGCOMMERCE_SIDE_LOAD": "false"}, func(c config.Config) bool { return !c.BigCommerceSideLoad }},
		{"quota burst", map[string]string{"BIGCOMMERCE_QUOTA_BURST": "25"}, func(c config.Config) bool { return c.BigCommerceQuotaBurst == 25 }},
		{"quota spreading off", map[string]string{"BIGCOMMERCE_QUOTA_BURST": "OFF"}, func(c config.Config) bool { return c.BigCommerceQuotaBurst == -1 }},
		{"breaker", map[string]string{"TROPSHIP_BREAKER": "3"}, func(c config.Config) bool { return c.TropShipBreaker == 3 }},
		{"breaker off", map[string]string{"TROPSHIP_BREAKER": "off"}, func(c config.Config) bool { return c.TropShipBreaker == 0 }},
		{"intake role", map[string]string{"ROLE": "Intake"}, func(c config.Config) bool { return c.Role == fulfill.RoleIntake }},
		{"process role", map[string]string{"ROLE": "process"}, func(c config.Config) bool { return c.Role == fulfill.RoleProcess }},
		{"log level", map[string]string{"LOG_LEVEL": "debug"}, func(c config.Config) bool { return c.LogLevel == "debug" }},
		{"log level in capitals", map[string]string{"LOG_LEVEL": "WARN"}, func(c config.Config) bool { return c.LogLevel == "warn" }},
		{"debug address", map[string]string{"DEBUG_ADDR": "127.0.0.1:6060"}, func(c config.Config) bool { return c.DebugAddr == "127.0.0.1:6060" }},
		{"metrics address", map[string]string{"METRICS_ADDR": ":9091"}, func(c config.Config) bool { return c.MetricsAddr == ":9091" }},
		{"orders sweep by default every 15m", map[string]string{}, func(c config.Config) bool { return c.OrdersSweep == 15*time.Minute }},
		{"orders sweep interval", map[string]string{"ORDERS_SWEEP_INTERVAL": "1h"}, func(c config.Config) bool { return c.OrdersSweep == time.Hour }},
		{"orders sweep off", map[string]string{"ORDERS_SWEEP_INTERVAL": "off"}, func(c config.Config) bool { return c.OrdersSweep == 0 }},
		{"orders sweep 0", map[string]string{"ORDERS_SWEEP_INTERVAL": "0"}, func(c config.Config) bool { return c.OrdersSweep == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(tt.set)
			if err != nil {
				t.Fatalf("Load(%v): %v", tt.set, err)
			}
			if !tt.check(c) {
				t.Errorf("Load(%v) = %+v", tt.set, c)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		// every variable the error names, and no other
		names []string
	}{
		{"missing store hash", map[string]string{"BIGCOMMERCE_STORE_HASH": ""}, []string{"BIGCOMMERCE_STORE_HASH"}},
		{"missing access token", map[string]string{"BIGCOMMERCE_ACCESS_TOKEN": ""}, []string{"BIGCOMMERCE_ACCESS_TOKEN"}},
		{"blank store hash", map[string]string{"BIGCOMMERCE_STORE_HASH": "  "}, []string{"BIGCOMMERCE_STORE_HASH"}},
		{"bigcommerce url: not a url", map[string]string{"BIGCOMMERCE_API_URL": "not a url"}, []string{"BIGCOMMERCE_API_URL"}},
		{"bigcommerce url: ftp", map[string]string{"BIGCOMMERCE_API_URL": "ftp://x"}, []string{"BIGCOMMERCE_API_URL"}},
		{"bigcommerce url: no host", map[string]string{"BIGCOMMERCE_API_URL": "https://"}, []string{"BIGCOMMERCE_API_URL"}},
		{"bigcommerce url: a store's API path", map[string]string{"BIGCOMMERCE_API_URL": "https://api.bigcommerce.com/stores/abc123/v3/"}, []string{"BIGCOMMERCE_API_URL"}},
		{"bigcommerce url: a query", map[string]string{"BIGCOMMERCE_API_URL": "http://127.0.0.1:8082/bc?x=1"}, []string{"BIGCOMMERCE_API_URL"}},
		{"tropship url: a fragment", map[string]string{"TROPSHIP_BASE_URL": "http://127.0.0.1:8081/#top"}, []string{"TROPSHIP_BASE_URL"}},
		{"tropship url: an empty query", map[string]string{"TROPSHIP_BASE_URL": "http://127.0.0.1:8081/?"}, []string{"TROPSHIP_BASE_URL"}},
		{"bigcommerce url: a store's path without a version", map[string]string{"BIGCOMMERCE_API_URL": "http://127.0.0.1:8082/stores/abc123"}, []string{"BIGCOMMERCE_API_URL"}},
		{"missing tropship url", map[string]string{"TROPSHIP_BASE_URL": ""}, []string{"TROPSHIP_BASE_URL"}},
		{"tropship url: not a url", map[string]string{"TROPSHIP_BASE_URL": "not a url"}, []string{"TROPSHIP_BASE_URL"}},
		{"tropship url: ftp", map[string]string{"TROPSHIP_BASE_URL": "ftp://x"}, []string{"TROPSHIP_BASE_URL"}},
		{"tropship url: bad escape", map[string]string{"TROPSHIP_BASE_URL": "http://x/%zz"}, []string{"TROPSHIP_BASE_URL"}},
		{"bogus mode", map[string]string{"TROPSHIP_MODE": "bogus"}, []string{"TROPSHIP_MODE"}},
		{"live without credentials", map[string]string{"TROPSHIP_MODE": "live", "TROPSHIP_CLIENT_ID": "", "TROPSHIP_CLIENT_SECRET": ""}, []string{"TROPSHIP_CLIENT_ID", "TROPSHIP_CLIENT_SECRET"}},
		{"validate without credentials", map[string]string{"TROPSHIP_CLIENT_ID": "", "TROPSHIP_CLIENT_SECRET": ""}, []string{"TROPSHIP_CLIENT_ID", "TROPSHIP_CLIENT_SECRET"}},
		{"live without client id", map[string]string{"TROPSHIP_MODE": "live", "TROPSHIP_CLIENT_ID": ""}, []string{"TROPSHIP_CLIENT_ID"}},
		{"live without client secret", map[string]string{"TROPSHIP_MODE": "live", "TROPSHIP_CLIENT_SECRET": ""}, []string{"TROPSHIP_CLIENT_SECRET"}},
		{"bad lookup flag", map[string]string{"TROPSHIP_LOOKUP": "maybe"}, []string{"TROPSHIP_LOOKUP"}},
		{"bad write-back flag", map[string]string{"BIGCOMMERCE_WRITE_BACK": "metafield"}, []string{"BIGCOMMERCE_WRITE_BACK"}},
		{"bad side-load flag", map[string]string{"BIGCOMMERCE_SIDE_LOAD": "consignments"}, []string{"BIGCOMMERCE_SIDE_LOAD"}},
		{"bad lookup settle", map[string]string{"TROPSHIP_LOOKUP_SETTLE": "soon"}, []string{"TROPSHIP_LOOKUP_SETTLE"}},
		{"sweep interval abc", map[string]string{"SWEEP_INTERVAL": "abc"}, []string{"SWEEP_INTERVAL"}},
		{"orders sweep interval abc", map[string]string{"ORDERS_SWEEP_INTERVAL": "abc"}, []string{"ORDERS_SWEEP_INTERVAL"}},
		{"metrics address without port", map[string]string{"METRICS_ADDR": "localhost"}, []string{"METRICS_ADDR"}},
		{"orders sweep interval negative", map[string]string{"ORDERS_SWEEP_INTERVAL": "-1m"}, []string{"ORDERS_SWEEP_INTERVAL"}},
		{"negative duration", map[string]string{"TROPSHIP_TIMEOUT": "-5s"}, []string{"TROPSHIP_TIMEOUT"}},
		{"zero duration", map[string]string{"BIGCOMMERCE_TIMEOUT": "0s"}, []string{"BIGCOMMERCE_TIMEOUT"}},
		{"duration without unit", map[string]string{"RETRY_BASE": "5"}, []string{"RETRY_BASE"}},
		{"lock ttl under a second", map[string]string{"LOCK_TTL": "500ms"}, []string{"LOCK_TTL"}},
		{"no workers", map[string]string{"WORKERS": "0"}, []string{"WORKERS"}},
		{"negative workers", map[string]string{"WORKERS": "-3"}, []string{"WORKERS"}},
		{"workers not a number", map[string]string{"WORKERS": "many"}, []string{"WORKERS"}},
		{"quota burst 0", map[string]string{"BIGCOMMERCE_QUOTA_BURST": "0"}, []string{"BIGCOMMERCE_QUOTA_BURST"}},
		{"breaker negative", map[string]string{"TROPSHIP_BREAKER": "-2"}, []string{"TROPSHIP_BREAKER"}},
		{"breaker not a number", map[string]string{"TROPSHIP_BREAKER": "soon"}, []string{"TROPSHIP_BREAKER"}},
		{"unknown role", map[string]string{"ROLE": "worker"}, []string{"ROLE"}},
		{"quota burst not a number", map[string]string{"BIGCOMMERCE_QUOTA_BURST": "lots"}, []string{"BIGCOMMERCE_QUOTA_BURST"}},
		{"quota burst too large", map[string]string{"BIGCOMMERCE_QUOTA_BURST": "10001"}, []string{"BIGCOMMERCE_QUOTA_BURST"}},
		{"no retry attempts", map[string]string{"RETRY_MAX_ATTEMPTS": "0"}, []string{"RETRY_MAX_ATTEMPTS"}},
		{"unknown status", map[string]string{"ELIGIBLE_STATUSES": "99"}, []string{"ELIGIBLE_STATUSES"}},
		{"status not a number", map[string]string{"ELIGIBLE_STATUSES": "11,x"}, []string{"ELIGIBLE_STATUSES"}},
		{"no status", map[string]string{"ELIGIBLE_STATUSES": ","}, []string{"ELIGIBLE_STATUSES"}},
		{"alpha-3 country", map[string]string{"SHIP_COUNTRIES": "GBR"}, []string{"SHIP_COUNTRIES"}},
		{"etcd endpoint :::", map[string]string{"ETCD_ENDPOINTS": ":::"}, []string{"ETCD_ENDPOINTS"}},
		{"etcd endpoint without host", map[string]string{"ETCD_ENDPOINTS": "http://10.0.0.1:2379,http://"}, []string{"ETCD_ENDPOINTS"}},
		{"etcd endpoint without port", map[string]string{"ETCD_ENDPOINTS": "etcd-0"}, []string{"ETCD_ENDPOINTS"}},
		{"etcd endpoint with a bad port", map[string]string{"ETCD_ENDPOINTS": "etcd-0:http"}, []string{"ETCD_ENDPOINTS"}},
		{"etcd endpoint of another scheme", map[string]string{"ETCD_ENDPOINTS": "dns://etcd-0:2379"}, []string{"ETCD_ENDPOINTS"}},
		{"loud log level", map[string]string{"LOG_LEVEL": "loud"}, []string{"LOG_LEVEL"}},
		{"token path without a slash", map[string]string{"TROPSHIP_TOKEN_PATH": "oauth/token"}, []string{"TROPSHIP_TOKEN_PATH"}},
		{"token URL of another scheme", map[string]string{"TROPSHIP_TOKEN_PATH": "ftp://auth.example/token"}, []string{"TROPSHIP_TOKEN_PATH"}},
		{"token URL with its scheme in capitals", map[string]string{"TROPSHIP_TOKEN_PATH": "HTTPS://auth.example/token"}, []string{"TROPSHIP_TOKEN_PATH"}},
		{"store hash with the path around it", map[string]string{"BIGCOMMERCE_STORE_HASH": "stores/abc123"}, []string{"BIGCOMMERCE_STORE_HASH"}},
		{"embedded etcd URL of another scheme", map[string]string{"ETCD_EMBED_CLIENT_URL": "ftp://127.0.0.1:0"}, []string{"ETCD_EMBED_CLIENT_URL"}},
		{"embedded etcd URL with TLS", map[string]string{"ETCD_EMBED_CLIENT_URL": "https://127.0.0.1:2379"}, []string{"ETCD_EMBED_CLIENT_URL"}},
		{"country with a digit", map[string]string{"SHIP_COUNTRIES": "1x"}, []string{"SHIP_COUNTRIES"}},
		{"retry base longer than its cap", map[string]string{"RETRY_BASE": "20m", "RETRY_MAX": "10m"}, []string{"RETRY_BASE"}},
		{"orders path with a query", map[string]string{"TROPSHIP_ORDERS_PATH": "/v1/offline-orders?x=1"}, []string{"TROPSHIP_ORDERS_PATH"}},
		{"debug address without port", map[string]string{"DEBUG_ADDR": "6060"}, []string{"DEBUG_ADDR"}},
		{"bad boolean", map[string]string{"TROPSHIP_VALIDATE_FIRST": "sometimes"}, []string{"TROPSHIP_VALIDATE_FIRST"}},
		{
			"several at once",
			map[string]string{
				"BIGCOMMERCE_STORE_HASH": "", "BIGCOMMERCE_API_URL": "ftp://x", "TROPSHIP_MODE": "bogus",
				"SWEEP_INTERVAL": "abc", "LOCK_TTL": "500ms", "WORKERS": "0", "ELIGIBLE_STATUSES": "99",
				"SHIP_COUNTRIES": "GBR", "ETCD_ENDPOINTS": ":::", "LOG_LEVEL": "loud",
			},
			[]string{
				"BIGCOMMERCE_STORE_HASH", "BIGCOMMERCE_API_URL", "TROPSHIP_MODE", "SWEEP_INTERVAL", "LOCK_TTL",
				"WORKERS", "ELIGIBLE_STATUSES", "SHIP_COUNTRIES", "ETCD_ENDPOINTS", "LOG_LEVEL",
			},
		},
		{
			"everything missing",
			map[string]string{"BIGCOMMERCE_STORE_HASH": "", "BIGCOMMERCE_ACCESS_TOKEN": "", "TROPSHIP_BASE_URL": ""},
			[]string{"BIGCOMMERCE_STORE_HASH", "BIGCOMMERCE_ACCESS_TOKEN", "TROPSHIP_BASE_URL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.set)
			checkErr(t, err, tt.names)
		})
	}
}

// checkErr asserts that err names every variable of names and no other
// (one line per problem, each starting with its variable), and never leaks a
// secret.
func checkErr(t *testing.T, err error, names []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load: no error; want one naming %v", names)
	}
	named := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		v, _, _ := strings.Cut(l, " ")
		if !slices.Contains(names, v) {
			t.Errorf("error line %q names none of %v", l, names)
		}
		named[v] = true
	}
	for _, name := range names {
		if !named[name] {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	for _, secret := range []string{"bc-token-SECRET", "ts-secret-SECRET"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

// Settings Load accepts although they are wrong; each case is a bug while
// it is skipped.
func TestLoadRejectsSilentlyWrongSettings(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		bug  string
	}{
		{
			"negative retry attempts", map[string]string{"RETRY_MAX_ATTEMPTS": "-1"},
			"config.go Load: RETRY_MAX_ATTEMPTS=-1 is converted with uint32(...) to 4294967295 and passes the `< 1` check; want an error naming RETRY_MAX_ATTEMPTS",
		},
		{
			"blank tropship url", map[string]string{"TROPSHIP_BASE_URL": "   "},
			`config.go Load: TROPSHIP_BASE_URL="   " trims to "" but the required check reads the raw value, so Load succeeds with TropShipURL ""; want an error naming TROPSHIP_BASE_URL`,
		},
		{
			"no ship country", map[string]string{"SHIP_COUNTRIES": ","},
			`config.go Load: SHIP_COUNTRIES="," yields an empty country list (every order ineligible) with no error, unlike ELIGIBLE_STATUSES=","; want an error naming SHIP_COUNTRIES`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(tt.set)
			if err == nil {
				t.Fatalf("%s (got Retry.MaxAttempts=%d TropShipURL=%q Countries=%q)", tt.bug, c.Retry.MaxAttempts, c.TropShipURL, c.Policy.Countries)
			}
			name := ""
			for k := range tt.set {
				name = k
			}
			checkErr(t, err, []string{name})
		})
	}
}

func TestLoadErrorHidesSecrets(t *testing.T) {
	_, err := load(map[string]string{
		"TROPSHIP_MODE":          "bogus",
		"TROPSHIP_CLIENT_ID":     "id",
		"TROPSHIP_CLIENT_SECRET": "ts-secret-SECRET",
		"WORKERS":                "0",
	})
	checkErr(t, err, []string{"TROPSHIP_MODE", "WORKERS"})
}

// TROPSHIP_LOOKUP switches ambiguity resolution on through the retry policy;
// off (the default), ambiguous orders wait for a person.
func TestLookupSetting(t *testing.T) {
	c, err := load(map[string]string{"TROPSHIP_LOOKUP": "true", "TROPSHIP_LOOKUP_SETTLE": "3s"})
	if err != nil || !c.TropShipLookup || c.Retry.LookupSettle != 3*time.Second {
		t.Fatalf("lookup on: %+v %v", c.Retry, err)
	}
	c, err = load(map[string]string{"TROPSHIP_LOOKUP_SETTLE": "3s"})
	if err != nil || c.Retry.LookupSettle != 0 {
		t.Fatalf("lookup off must leave LookupSettle 0: %+v %v", c.Retry, err)
	}
}
