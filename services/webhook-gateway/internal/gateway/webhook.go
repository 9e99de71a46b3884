package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/backorder/backorder/services/internal/webhookscope"
	"github.com/backorder/backorder/services/webhook-gateway/internal/config"
)

// envelope is the part of a delivery the gateway reads itself: the scope to
// filter on, the store and order for the log line, and store_id, which
// BigCommerce documents as a number in a string.
type envelope struct {
	Scope    string          `json:"scope"`
	Producer string          `json:"producer"`
	StoreID  json.RawMessage `json:"store_id"`
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
		checked, err := s.verifier.Verify(r.Header, body)
		if err != nil {
			warn(ctx, slog.String("reject", err.Error()))
			writeError(w, http.StatusUnauthorized, "delivery not authenticated")
			return
		}
		annotate(ctx, slog.String("verified", string(checked)))
		if !s.verifier.Enabled() {
			// Loud on every delivery, not only at start, so that nobody can
			// miss that this gateway accepts anything.
			warn(ctx, slog.String("warning", "delivery NOT VERIFIED: "+config.EnvInsecureSkipVerify+"=true"))
		}

		// A field of another type than expected (json.UnmarshalTypeError;
		// decoding goes on past it) is not refused here: an ignored scope
		// must be answered 200 whatever its data, and for the scopes acted
		// on the generated handler judges the fields it needs.
		var env envelope
		if err := json.Unmarshal(body, &env); err != nil {
			if te, typeErr := errors.AsType[*json.UnmarshalTypeError](err); !typeErr || te.Field == "" { // "": not an object at all
				annotate(ctx, slog.String("error", "decode envelope: "+err.Error()))
				writeError(w, http.StatusBadRequest, "malformed JSON body")
				return
			}
		}
		if !isObject(body) { // null decodes without an error
			writeError(w, http.StatusBadRequest, "malformed JSON body: not an object")
			return
		}
		if env.Scope == "" {
			// Every BigCommerce event names its scope: this is no delivery.
			writeError(w, http.StatusBadRequest, "malformed envelope: scope is missing")
			return
		}
		annotate(ctx, slog.String("scope", env.Scope),
			slog.String("store", strings.TrimPrefix(env.Producer, "stores/")),
			slog.String("order_id", clip(string(env.Data.ID))))
		if !webhookscope.ActedOn(env.Scope) {
			// Other scopes carry other shapes of data: answered here, they
			// can never fail to decode and be retried for 48 h.
			annotate(ctx, slog.Bool("ignored", true))
			writeJSON(w, http.StatusOK, map[string]bool{"ignored": true})
			return
		}
		if body, err = quoteStoreID(body, env.StoreID); err != nil {
			annotate(ctx, slog.String("error", "store_id: "+err.Error()))
			writeError(w, http.StatusBadRequest, "malformed JSON body")
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

// isObject reports whether a JSON text is an object.
func isObject(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// wrongWebhookPath answers paths under /v1/webhooks/ that are not the
// webhook route (a hook set up with a trailing slash, say), before the
// operator API's bearer check would send its owner looking for a token.
// It is logged at WARN (unlike other 404s): a hook set up with such a URL
// fails every delivery until someone sees it.
func wrongWebhookPath(w http.ResponseWriter, r *http.Request) {
	warn(r.Context(), slog.String("reject", "not the webhook route: BigCommerce's hook URL is wrong"))
	writeError(w, http.StatusNotFound, "no such route: BigCommerce deliveries go to POST "+WebhookPath+" (exactly, no trailing slash)")
}

// clip bounds what a delivery can put into a log line.
func clip(s string) string {
	const maxLen = 32
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}

// quoteStoreID turns a store_id sent as a JSON number into the documented
// string ("a number in a string"), so that a sender who writes it unquoted
// is not refused. Anything else is left for the generated handler to judge.
// The signature was checked on the bytes as sent; only what is forwarded
// changes.
func quoteStoreID(body []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return body, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	q, err := json.Marshal(string(raw))
	if err != nil {
		return nil, err
	}
	fields["store_id"] = q
	return json.Marshal(fields)
}
