package debugserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOffWhenEmpty(t *testing.T) {
	addr, err := Start(t.Context(), "", slog.New(slog.DiscardHandler))
	if addr != nil || err != nil {
		t.Fatalf("Start(\"\") = %v, %v; want nothing started", addr, err)
	}
}

func TestServesProfilesUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, err := Start(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/debug/pprof/"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET %s: %s %.200s", url, resp.Status, body)
	}
	cancel()
	// Close is asynchronous: the listener goes away shortly after.
	for i := 0; ; i++ {
		r, err := http.Get(url)
		if err != nil {
			break
		}
		r.Body.Close()
		if i > 1000 {
			t.Fatal("still serving 10 s after ctx ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestValidate(t *testing.T) {
	for addr, ok := range map[string]bool{"": true, "127.0.0.1:6060": true, ":6060": true, "6060": false, "localhost": false} {
		if err := Validate(addr); (err == nil) != ok {
			t.Errorf("Validate(%q) = %v", addr, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "": false, "0.0.0.0": false, "10.0.0.5": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
