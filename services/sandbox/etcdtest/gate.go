package etcdtest

import (
	"io"
	"net"
	"sync"
	"time"
)

// A gate forwards one member's peer traffic: the member listens on a port
// of its own and advertises the gate's, so every connection another member
// opens to it passes through the gate. Cutting the gate closes those
// connections and turns new ones away at once, as a network that drops a
// member's links would; the member itself keeps running and serving its
// clients.
type gate struct {
	ln net.Listener
	to string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newGate listens on addr and forwards every connection to to.
func newGate(addr, to string) (*gate, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	g := &gate{ln: ln, to: to, conns: map[net.Conn]struct{}{}}
	g.wg.Go(g.serve)
	return g, nil
}

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return // closed
		}
		g.wg.Go(func() { g.forward(c) })
	}
}

func (g *gate) forward(in net.Conn) {
	g.mu.Lock()
	cut := g.cut
	g.mu.Unlock()
	if cut {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", g.to, time.Second)
	if err != nil {
		in.Close()
		return
	}
	if !g.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	// Either side ended: end both, so the other copy ends too.
	in.Close()
	out.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, in)
	delete(g.conns, out)
	g.mu.Unlock()
}

// track registers a forwarded pair, unless the gate is cut.
func (g *gate) track(in, out net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut {
		return false
	}
	g.conns[in], g.conns[out] = struct{}{}, struct{}{}
	return true
}

// setCut cuts the gate (closing what it forwards) or mends it.
func (g *gate) setCut(cut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = cut
	if cut {
		for c := range g.conns {
			c.Close()
		}
	}
}

func (g *gate) close() {
	g.ln.Close()
	g.setCut(true)
	g.wg.Wait()
}
