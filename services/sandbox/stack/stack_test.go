package stack

import (
	"net"
	"strconv"
	"testing"
)

// Ports picked are in their range, free, and never picked twice in one
// process: two picks before either is bound must not collide.
func TestFreePortsAreNotHandedOutTwice(t *testing.T) {
	seen := map[int]bool{}
	for _, r := range []PortRange{MemberPorts, ProcessPorts, ProcessPorts} {
		ports, err := r.Free(200)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p < r.Lo || p >= r.Hi {
				t.Errorf("port %d outside [%d, %d)", p, r.Lo, r.Hi)
			}
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if p, _ := strconv.Atoi(port); seen[p] || p < ProcessPorts.Lo || p >= ProcessPorts.Hi {
		t.Errorf("FreeAddr gave %s: handed out before, or outside ProcessPorts", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr's %s is not free: %v", addr, err)
	}
	l.Close()
}
