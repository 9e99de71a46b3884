package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
)

// orderScopePrefix selects the deliveries the fulfillment service acts on.
// Other scopes carry differently shaped data, which would not decode into
// HandleOrderWebhookRequest.
const orderScopePrefix = "store/order/"

// envelope is the part of a delivery the gateway reads itself: the scope to
// filter on, and the store and order for the log line.
type envelope struct {
	Scope    string `json:"scope"`
	Producer string `json:"producer"`
	Data     struct {
		// Raw: the gateway only logs it; decoding is the generated
		// handler's job, and a type mismatch is reported there.
		ID json.RawMessage `json:"id"`
	} `json:"data"`
}

// webhook guards the delivery route. It reads the raw body first, because
// the signature covers the exact bytes sent, verifies it, filters out scopes
// that are not order events, and only then gives the body back to next (the
// grpc-gateway mux). A delivery that fails any step reaches nothing.
func (s *Server) webhook(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
				writeError(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
				return
			}
			annotate(ctx, slog.String("error", "read body: "+err.Error()))
			writeError(w, http.StatusBadRequest, "could not read body")
			return
		}
		if err := s.verifier.Verify(r.Header, body); err != nil {
			warn(ctx, slog.String("reject", err.Error()))
			writeError(w, http.StatusUnauthorized, "delivery not authenticated")
			return
		}
		if !s.verifier.Enabled() {
			// Loud on every delivery, not only at start, so that nobody can
			// miss that this gateway accepts anything.
			warn(ctx, slog.String("warning", "delivery NOT VERIFIED: "+config.EnvInsecureSkipVerify+"=true"))
		}

		var env envelope
		if err := json.Unmarshal(body, &env); err != nil {
			annotate(ctx, slog.String("error", "decode envelope: "+err.Error()))
			writeError(w, http.StatusBadRequest, "malformed JSON body")
			return
		}
		annotate(ctx, slog.String("scope", env.Scope),
			slog.String("store", strings.TrimPrefix(env.Producer, "stores/")),
			slog.String("order_id", clip(string(env.Data.ID))))
		if !strings.HasPrefix(env.Scope, orderScopePrefix) {
			annotate(ctx, slog.Bool("ignored", true))
			writeJSON(w, http.StatusOK, map[string]bool{"ignored": true})
			return
		}

		fwd := r.Clone(ctx)
		// The secrets have done their job; they do not travel further.
		// (grpc-gateway forwards Authorization as metadata unconditionally,
		// and a shared secret may be sent in it.)
		fwd.Header.Del("Authorization")
		if s.cfg.SecretHeader != "" {
			fwd.Header.Del(s.cfg.SecretHeader)
		}
		fwd.Body = io.NopCloser(bytes.NewReader(body))
		fwd.ContentLength = int64(len(body))
		next.ServeHTTP(w, fwd)
	})
}

// clip bounds what a delivery can put into a log line.
func clip(s string) string {
	const maxLen = 32
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
