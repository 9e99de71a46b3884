// Package debugserver serves Go's runtime profiles (net/http/pprof) on a
// separate listener of either service, for measuring where CPU and memory
// go. It is off unless DEBUG_ADDR is set, and should listen on loopback only:
// profiles reveal internals and cost CPU while they run.
package debugserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// EnvAddr is the setting that turns the debug listener on.
const EnvAddr = "DEBUG_ADDR"

// Validate checks a DEBUG_ADDR value ("" means off). Its error says what is
// wrong; the caller names the setting in its own style.
func Validate(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not a host:port address (e.g. 127.0.0.1:6060)", addr)
	}
	return nil
}

// Start listens on addr and serves /debug/pprof/ until ctx ends, and
// returns the address bound. With an empty addr it does nothing and returns
// nil.
func Start(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	if addr == "" {
		return nil, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	bound, err := Serve(ctx, EnvAddr, addr, mux, log)
	if err != nil {
		return nil, err
	}
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) {
		log.Warn("debug listener (pprof) is reachable beyond this host; profiles expose internals and cost CPU: prefer 127.0.0.1",
			"setting", EnvAddr, "addr", bound.String())
	} else {
		log.Info("debug listener (pprof) started", "addr", bound.String())
	}
	return bound, nil
}

// Serve listens on addr (the value of setting, named in errors) and serves
// h there until ctx ends, and returns the address bound: a side listener
// of either service (profiles, metrics).
func Serve(ctx context.Context, setting, addr string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", setting, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("listener stopped", "setting", setting, "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr(), nil
}

// isLoopback reports whether host (from DEBUG_ADDR) names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
