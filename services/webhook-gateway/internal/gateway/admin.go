package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

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
		next.ServeHTTP(w, fwd)
	})
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
