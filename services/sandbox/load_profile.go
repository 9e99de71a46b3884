package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"
)

// profiler takes CPU profiles of every process of a load run over the same
// window: the services through their DEBUG_ADDR (net/http/pprof), and the
// load process (load generator, simulators, embedded etcd) with
// runtime/pprof. Read them with `go tool pprof -top <file>`.
type profiler struct {
	dir     string
	seconds int
	addrs   map[string]string // service name -> DEBUG_ADDR
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// start begins every profile; wait returns once all are written.
func (p *profiler) start(ctx context.Context) {
	if p == nil {
		return
	}
	for name, addr := range p.addrs {
		p.wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, p.seconds)
			p.fail(fetchTo(ctx, url, filepath.Join(p.dir, name+".pprof")))
		})
	}
	f, err := os.Create(filepath.Join(p.dir, "load.pprof"))
	if err != nil {
		p.fail(err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		p.fail(err)
		f.Close()
		return
	}
	p.wg.Go(func() {
		select {
		case <-time.After(time.Duration(p.seconds) * time.Second):
		case <-ctx.Done():
		}
		pprof.StopCPUProfile()
		p.fail(f.Close())
	})
}

func (p *profiler) wait() error {
	if p == nil {
		return nil
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		return fmt.Errorf("profiles: %v", p.errs)
	}
	return nil
}

func (p *profiler) fail(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
