package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// A store's history and its operators' probes: what a deployment that has
// run for a while carries besides a flash sale's orders.

// historyState is the state the -history records are written in: orders
// that were looked at and not sent (most of a store's orders are not
// backorders), so that they count as records without being orders of the
// run.
const historyState = "INELIGIBLE"

// historyFirstOrder is the id of the first -history record, far from the
// run's orders.
const historyFirstOrder = 100_000_000

// writeHistory writes n records' state index keys of the store before the
// services start: what counting the store's records walks. The records
// themselves are left out (nothing of the run reads them), so a large
// history costs little disk.
func (r *loadRun) writeHistory(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	start := time.Now()
	const perTxn, writers = 128, 8
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writers)
	for first := 0; first < n; first += perTxn {
		g.Go(func() error {
			ops := make([]clientv3.Op, 0, perTxn)
			for i := first; i < min(first+perTxn, n); i++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sindex/state/%s/%s/%d", r.prefix, historyState, loadStore, historyFirstOrder+i), ""))
			}
			_, err := r.cli.Txn(gctx).Then(ops...).Commit()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("write the -history records: %w", err)
	}
	r.say("history: %d %s records written in %.1f s", n, historyState, time.Since(start).Seconds())
	return nil
}

// probeStats is what -probe measured: the gateway's /readyz (which asks a
// replica's GetServiceStatus) and a scrape of every replica's /metrics,
// each every EveryMs.
type probeStats struct {
	EveryMs float64        `json:"every_ms"`
	Readyz  latencySummary `json:"readyz_ms"`
	Metrics latencySummary `json:"metrics_ms"`
	// The latencies are of the probes answered 200. Failed counts the
	// others; FirstFailure says why the first was not. Skipped counts the
	// ticks that found their target's last probe unanswered (a stall
	// longer than the interval is one latency, and these).
	Failed       int    `json:"failed"`
	FirstFailure string `json:"first_failure,omitempty"`
	Skipped      int    `json:"skipped"`
	// Orders is each replica's backorder_orders by state, scraped once
	// every order was done.
	Orders []map[string]float64 `json:"orders_by_state_per_replica"`
}

// orderCounts scrapes each replica's backorder_orders by state (nil for a
// replica that does not answer, or whose scrape could not read etcd:
// backorder_store_up 0).
func (r *loadRun) orderCounts(ctx context.Context) []map[string]float64 {
	var out []map[string]float64
	for _, u := range r.metricsURLs {
		samples, err := scrape(ctx, u, hopScrapeTimeout)
		if err != nil {
			out = append(out, nil)
			continue
		}
		by := map[string]float64{}
		for _, s := range samples {
			switch {
			case s.name == "backorder_store_up" && s.value != 1:
				by = nil
			case s.name == "backorder_orders" && s.value != 0 && by != nil:
				by[s.labels["state"]] = s.value
			}
		}
		out = append(out, by)
	}
	return out
}

// probe asks /readyz and scrapes each replica's /metrics every interval,
// as a readiness probe and Prometheus would, until ctx ends. A probe that
// is cut off by the end counts for nothing.
func (r *loadRun) probe(ctx context.Context, every time.Duration) *probeStats {
	var (
		mu              sync.Mutex
		readyz, scrapes []time.Duration
		failed          int
		firstFailure    string
		skipped         int
		wg              sync.WaitGroup
		client          = &http.Client{Timeout: 10 * time.Second}
		get             = func(url string, into *[]time.Duration) {
			defer wg.Done()
			t := time.Now()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			why := ""
			if err != nil {
				why = err.Error()
			} else {
				body, _ := io.ReadAll(resp.Body) // all of it, as a scraper does
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					why = fmt.Sprintf("%s: %s %.200s", url, resp.Status, body)
				}
			}
			took := time.Since(t)
			if ctx.Err() != nil {
				return // cut off by the end of the run: not an answer
			}
			mu.Lock()
			defer mu.Unlock()
			if why == "" {
				*into = append(*into, took)
			} else {
				failed++
				if firstFailure == "" {
					firstFailure = why
				}
			}
		}
	)
	targets := []string{r.gatewayURL + "/readyz"}
	for _, u := range r.metricsURLs {
		targets = append(targets, u+"/metrics")
	}
	busy := make([]atomic.Bool, len(targets))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return &probeStats{EveryMs: ms(every), Readyz: summarize(readyz), Metrics: summarize(scrapes),
				Failed: failed, FirstFailure: firstFailure, Skipped: skipped}
		case <-t.C:
			// One probe of a target at a time, as Prometheus and the
			// kubelet do: a tick finding the last one unanswered passes.
			for i, u := range targets {
				if !busy[i].CompareAndSwap(false, true) {
					mu.Lock()
					skipped++
					mu.Unlock()
					continue
				}
				wg.Add(1)
				go func() {
					defer busy[i].Store(false)
					if i == 0 {
						get(u, &readyz)
					} else {
						get(u, &scrapes)
					}
				}()
			}
		}
	}
}
