package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/status"
)

// requestLog collects what the layers of one request learn (scope, rejection
// reason, gRPC code) so that logRequests writes a single line per request.
type requestLog struct {
	mu    sync.Mutex
	attrs []slog.Attr
	level slog.Level
}

type requestLogKey struct{}

// annotate adds attributes to the request's log line. It is a no-op outside
// logRequests.
func annotate(ctx context.Context, attrs ...slog.Attr) {
	if rl, ok := ctx.Value(requestLogKey{}).(*requestLog); ok {
		rl.mu.Lock()
		rl.attrs = append(rl.attrs, attrs...)
		rl.mu.Unlock()
	}
}

// warn is annotate, and raises the line to WARN.
func warn(ctx context.Context, attrs ...slog.Attr) {
	if rl, ok := ctx.Value(requestLogKey{}).(*requestLog); ok {
		rl.mu.Lock()
		rl.attrs = append(rl.attrs, attrs...)
		rl.level = max(rl.level, slog.LevelWarn)
		rl.mu.Unlock()
	}
}

func errAttr(err error) slog.Attr {
	st := status.Convert(err)
	return slog.Group("error", slog.String("code", st.Code().String()), slog.String("message", st.Message()))
}

// logRequests writes one line per request. It deliberately logs no header
// values except the delivery id: signatures, the shared secret and the bearer
// token must never reach a log.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rl := &requestLog{level: slog.LevelInfo}
		r = r.WithContext(context.WithValue(r.Context(), requestLogKey{}, rl))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.metrics.observe(r.URL.Path, rec.status, time.Since(start))

		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		}
		if id := r.Header.Get("Webhook-Id"); id != "" {
			attrs = append(attrs, slog.String("webhook_id", clip(id)))
		}
		rl.mu.Lock()
		attrs = append(attrs, rl.attrs...)
		level := rl.level
		rl.mu.Unlock()
		// Refused deliveries (400, 401, 403, 413, ...) and failures are
		// what an operator looks for; 404 and 405 are any scanner's noise.
		if rec.status >= 500 || (rec.status >= 400 && rec.status != http.StatusNotFound && rec.status != http.StatusMethodNotAllowed) {
			level = max(level, slog.LevelWarn)
		}
		s.log.LogAttrs(r.Context(), level, "http request", attrs...)
	})
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush keeps streaming responses working through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
