//go:build !failpoints

// Package failpoint crashes the process at named points of the flow, for the
// whole-process crash tests. This is the release build: every point is a
// no-op the compiler removes. Build with -tags failpoints to arm them.
package failpoint

// Enabled reports whether this binary was built with failpoints.
const Enabled = false

// Inject does nothing in release builds.
func Inject(string) {}
