package failpoint

import "testing"

// A release build must never crash at a failpoint, whatever FAILPOINTS says.
func TestReleaseBuildIgnoresFailpoints(t *testing.T) {
	if Enabled {
		t.Skip("built with -tags failpoints")
	}
	t.Setenv("FAILPOINTS", "after-intent")
	Inject("after-intent")
}
