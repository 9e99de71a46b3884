//go:build failpoints

// Package failpoint crashes the process at named points of the flow, for the
// whole-process crash tests. It is compiled only with -tags failpoints;
// release builds get the no-op in off.go.
//
// FAILPOINTS lists the armed points, comma-separated, e.g.
// FAILPOINTS=after-intent. An armed point kills the process with SIGKILL, as
// a power cut would: no deferred call, no graceful shutdown.
package failpoint

import (
	"os"
	"strings"
	"syscall"
)

// Enabled reports whether this binary was built with failpoints.
const Enabled = true

var armed = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("FAILPOINTS"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			m[n] = true
		}
	}
	return m
}()

// Inject kills the process if the point is armed.
func Inject(name string) {
	if armed[name] {
		os.Stderr.WriteString("failpoint " + name + ": SIGKILL\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
