package tropsim

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// handleToken implements the OAuth2 client-credentials grant. Credentials
// may come in the form or in HTTP Basic auth (URL-encoded, as RFC 6749
// §2.3.1 says): golang.org/x/oauth2 tries the header first and falls back to
// the form, so both must work.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.Requests++
	s.mu.Unlock()

	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError("invalid_request"))
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	user, pass, basic := r.BasicAuth()
	if basic {
		id, secret = unescape(user), unescape(pass)
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, oauthError("unsupported_grant_type"))
		return
	}
	if !s.validClient(id, secret) {
		s.mu.Lock()
		s.counts.Unauthorized++
		s.mu.Unlock()
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="tropship"`)
		}
		writeJSON(w, http.StatusUnauthorized, oauthError("invalid_client"))
		return
	}
	tok := s.issueToken()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   max(int((s.opts.TokenTTL+time.Second-1)/time.Second), 1),
	})
}

func oauthError(code string) map[string]string { return map[string]string{"error": code} }

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

func (s *Server) validClient(id, secret string) bool {
	okID := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID))
	okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret))
	return okID&okSecret == 1 && s.opts.ClientID != ""
}

// issueToken records a new token. Its expires_in always advertises
// Options.TokenTTL, while Faults.TokenTTL, when set, is its real lifetime: a
// token that dies before the client expects is what makes a client meet a
// 401 (golang.org/x/oauth2 refreshes ten seconds before the advertised
// expiry, so an honestly short TTL would never be seen expiring).
func (s *Server) issueToken() string {
	tok := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	ttl := s.opts.TokenTTL
	if s.faults.TokenTTL > 0 {
		ttl = s.faults.TokenTTL
	}
	s.tokens[tok] = s.opts.Now().Add(ttl)
	s.counts.TokensIssued++
	return tok
}

// authorizedLocked reports whether the request carries a live bearer token,
// and forgets expired tokens it meets.
func (s *Server) authorizedLocked(r *http.Request) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	exp, ok := s.tokens[tok]
	if !ok {
		return false
	}
	if !s.opts.Now().Before(exp) {
		delete(s.tokens, tok)
		return false
	}
	return true
}

func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeErrors(w, http.StatusUnauthorized, APIError{Code: "invalid_token", Message: "The access token is missing, expired or revoked."})
}
