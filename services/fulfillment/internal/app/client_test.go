package app

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The supplier's client closes an idle connection itself, well before a
// server's usual keep-alive timeout, so that a live order is never written
// on a connection the server is closing.
func TestSupplierClientClosesIdleConnections(t *testing.T) {
	if supplierIdleTimeout >= 5*time.Second {
		t.Fatalf("supplierIdleTimeout %s: want it under the 5 s keep-alive of Node.js and Apache", supplierIdleTimeout)
	}
	var closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Config.IdleTimeout = time.Hour // the server never closes first
	srv.Start()
	t.Cleanup(srv.Close)

	c := pooledClient(4, 50*time.Millisecond)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client kept its idle connection open")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
