package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"

	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
)

// adminOnly guards the operator API with the ADMIN_TOKEN bearer token. With no
// token configured the API is closed (403) rather than open: an unset variable
// must never expose ProcessOrder to the internet.
func (s *Server) adminOnly(next http.Handler) http.Handler {
	if s.cfg.AdminToken == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusForbidden, "operator API is disabled until "+config.EnvAdminToken+" is set")
		})
	}
	// Digests make the comparison constant-time in the token's length too.
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="backorder"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		if code, msg := actionRoute(r.Method, r.URL.Path); code != 0 {
			if code == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", http.MethodPost)
			}
			writeError(w, code, msg)
			return
		}
		// Only ListOrders reads query parameters (the strict parser refuses
		// unknown ones there); every other route would ignore them, so
		// ?validate_only=true on a POST would send the order live.
		if r.URL.RawQuery != "" && !(r.Method == http.MethodGet && r.URL.Path == ListOrdersPath) {
			writeError(w, http.StatusBadRequest, "this route takes no query parameters: put the fields in the JSON body")
			return
		}
		// The token stays here: grpc-gateway would forward Authorization to
		// the fulfillment service as metadata.
		fwd := r.Clone(r.Context())
		fwd.Header.Del("Authorization")
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
			if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
				writeError(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
				return
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, "could not read the body: "+err.Error())
				return
			}
			if msg := bodyContradictsPath(r.URL.Path, body); msg != "" {
				writeError(w, http.StatusBadRequest, msg)
				return
			}
			fwd.Body = io.NopCloser(bytes.NewReader(body))
			fwd.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, fwd)
	})
}

// actions are the operator actions, by what their path ends with.
var actions = map[string][]string{
	"orders/{order_id}": {"process", "retry", "resolve"},
	"orders":            {"sweep"},
}

// actionRoute answers a request for an action (".../orders/250:process")
// that grpc-gateway would answer confusingly: another method than POST
// (a GET of ":process" reads as an order id "250:process"), or an action
// that does not exist (405 there). It returns 0 for every other request.
func actionRoute(method, path string) (int, string) {
	rest, ok := strings.CutPrefix(path, "/v1/stores/")
	if !ok {
		return 0, ""
	}
	_, rest, _ = strings.Cut(rest, "/")
	target, action, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, ""
	}
	kind := "orders"
	if target != "orders" {
		if !strings.HasPrefix(target, "orders/") {
			return 0, ""
		}
		kind = "orders/{order_id}"
	}
	if !slices.Contains(actions[kind], action) {
		return http.StatusNotFound, fmt.Sprintf("no action %q on %s: the actions are :%s", action, kind, strings.Join(actions[kind], ", :"))
	}
	if method != http.MethodPost {
		return http.StatusMethodNotAllowed, ":" + action + " takes POST"
	}
	return 0, ""
}

// bodyContradictsPath says what is wrong when a POST body names another
// store or order than its path (/v1/stores/{store_hash}/orders/{order_id}:…
// or /v1/stores/{store_hash}/orders:sweep): grpc-gateway would quietly act
// on the path's, and the person meant the body's. The body is read as
// grpc-gateway reads it (its first JSON value, by protojson, so orderId and
// 2.5e2 count too); the same values, or none, are fine, and a body it
// cannot read is left to the decoder's own error.
func bodyContradictsPath(path string, body []byte) string {
	rest, ok := strings.CutPrefix(path, "/v1/stores/")
	if !ok {
		return ""
	}
	store, rest, _ := strings.Cut(rest, "/")
	var first json.RawMessage
	if json.NewDecoder(bytes.NewReader(body)).Decode(&first) != nil {
		return ""
	}
	// Every operator request names the order by these two fields.
	var named backorderv1.ProcessOrderRequest
	if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(first, &named) != nil {
		return ""
	}
	if named.GetStoreHash() != "" && named.GetStoreHash() != store {
		return fmt.Sprintf("the body's store_hash %q is not the path's %q: leave it out of the body", named.GetStoreHash(), store)
	}
	if after, ok := strings.CutPrefix(rest, "orders/"); ok && named.GetOrderId() != 0 {
		id, _, _ := strings.Cut(after, ":")
		if n, err := strconv.ParseUint(id, 10, 64); err == nil && n != named.GetOrderId() {
			return fmt.Sprintf("the body's order_id %d is not the path's %d: leave it out of the body", named.GetOrderId(), n)
		}
	}
	return ""
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
