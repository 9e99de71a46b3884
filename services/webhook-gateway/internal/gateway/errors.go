package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retryAfterSeconds is sent with every 503. BigCommerce follows its own
// schedule (first retry after 60 s) whatever we say; operators' clients and
// load balancers do read it.
const retryAfterSeconds = 30

// HTTPStatus maps a gRPC code to the HTTP status the gateway answers with.
// It is the only such mapping in the gateway.
//
// The statuses are chosen for BigCommerce, which retries every non-2xx with
// backoff for about 48 hours, then deactivates the hook, and blocklists a
// domain whose success ratio drops under 90 %:
//
//   - AlreadyExists is a duplicate delivery: success, so 200, or BigCommerce
//     would retry it for two days and count it as a failure.
//   - Transient failures (Unavailable, ResourceExhausted, Aborted,
//     DeadlineExceeded, Canceled, Internal, Unknown) are 503 with Retry-After:
//     "try again" (the delivery may have been recorded if a deadline passed
//     after the write; the retry is then a duplicate), which is exactly what
//     BigCommerce's retry does.
//   - FailedPrecondition is 409 Conflict: the request is well-formed but the
//     order's current state does not allow it (e.g. ProcessOrder on an order
//     waiting for review). Unlike 400 it does not call the request malformed,
//     and a later retry can succeed once the state changes.
//   - Request errors keep their usual statuses (400, 401, 403, 404), so an
//     operator sees what is wrong.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK, codes.AlreadyExists:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded,
		codes.Canceled, codes.Internal, codes.Unknown:
		return http.StatusServiceUnavailable
	default: // DataLoss and codes this table does not know yet.
		return http.StatusInternalServerError
	}
}

// errorBody is the JSON shape of every error the gateway answers with.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// handleError is the grpc-gateway error handler: every failed call (and every
// request the generated handlers cannot decode, as InvalidArgument) ends here.
func (s *Server) handleError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		annotate(r.Context(), slog.String("error", err.Error()))
		writeError(w, httpErr.HTTPStatus, http.StatusText(httpErr.HTTPStatus))
		return
	}
	st := status.Convert(err)
	code := HTTPStatus(st.Code())
	annotate(r.Context(), slog.String("grpc_code", st.Code().String()), slog.String("grpc_error", st.Message()))
	if st.Code() == codes.AlreadyExists {
		// Same shape as HandleOrderWebhookResponse.duplicate.
		writeJSON(w, http.StatusOK, map[string]bool{"duplicate": true})
		return
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	msg := st.Message()
	if code >= 500 && r.URL.Path == WebhookPath {
		// The reason stays in our log: internal details are not for the
		// internet, and BigCommerce's action is the same whatever it is.
		// An operator (past the bearer check) is told the cause.
		msg = http.StatusText(code)
		if code == http.StatusServiceUnavailable {
			msg = "fulfillment temporarily unavailable, try again later"
		}
	}
	writeJSON(w, code, errorBody{Error: msg, Code: st.Code().String()})
}

// handleRoutingError answers requests the grpc-gateway mux has no route for,
// with the plain HTTP status (404, 405) rather than a gRPC code.
func handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	writeError(w, httpStatus, http.StatusText(httpStatus))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are written here; this cannot happen.
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
