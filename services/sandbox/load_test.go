package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backorder/backorder/services/sandbox/webhook"
)

// TestLoadSmoke runs the load command's whole pipeline small: the built
// services, an embedded etcd, the simulators.
func TestLoadSmoke(t *testing.T) {
	ctx := loadTestCtx(t)
	c := defaultLoadConfig()
	c.Orders, c.Dup, c.Concurrency, c.BenchOps, c.Timeout = 20, 2, 8, 50, 3*time.Minute
	c.ProfileDir, c.ProfileSeconds = t.TempDir(), 1
	// A history past the 20 000 records from which the replicas follow
	// their counts with watches instead of counting, and probes.
	c.History, c.Probe = 25_000, 20*time.Millisecond
	c.Window = 200 * time.Millisecond
	rep := runLoadLogged(ctx, t, c)

	checkEachOrderOnce(t, rep, c)
	if p := rep.Probes; p == nil || p.Readyz.Count == 0 || p.Metrics.Count == 0 || p.Failed != 0 || len(p.Orders) != c.Replicas {
		t.Errorf("probes: %+v; want some of each, every one answered, the counts of %d replicas", p, c.Replicas)
	} else {
		// Both replicas count the history and the run's orders, done.
		want := map[string]float64{historyState: float64(c.History), c.doneState().String()[len("ORDER_STATE_"):]: float64(c.Orders)}
		for i, by := range p.Orders {
			if !maps.Equal(by, want) {
				t.Errorf("fulfillment-%d's backorder_orders: %v, want %v", i, by, want)
			}
		}
	}
	// Every order's wait for the supplier is measured, from its first
	// delivery: positive, and within the run.
	if ts := rep.EndToEnd.ToSupplier; ts.Count != c.Orders || ts.P50 <= 0 || ts.Max > rep.EndToEnd.Seconds*1000 {
		t.Errorf("first delivery to supplier: %+v for %d orders done %.2f s after the first delivery", ts, c.Orders, rep.EndToEnd.Seconds)
	}
	// Step 9 once per order: 2 reads (the order with its lines and
	// address, the metafield) and 1 write-back each.
	if b := rep.BigCommerce; b.Stats.MetafieldsPost != c.Orders || b.CallsPerOrder != 3 || b.Stats.Products+b.Stats.ShippingAddresses != 0 {
		t.Errorf("BigCommerce %+v: %d metafield writes for %d orders, %.2f calls per order; want one each, 3, and no read of lines or addresses apart", b.Stats, b.Stats.MetafieldsPost, c.Orders, b.CallsPerOrder)
	}
	if want := c.Orders * len(c.Mix) * c.Dup; rep.Deliveries.Planned != want || rep.Deliveries.Failed != 0 {
		t.Errorf("deliveries: %d planned, %d failed; want %d, 0", rep.Deliveries.Planned, rep.Deliveries.Failed, want)
	}
	if rep.Deliveries.Recorded != c.Orders*len(c.Mix) {
		t.Errorf("%d deliveries recorded, want one per event (%d)", rep.Deliveries.Recorded, c.Orders*len(c.Mix))
	}
	if rep.Etcd.PerOrder.Writes <= 0 || rep.Etcd.PerOrder.Reads <= 0 {
		t.Errorf("etcd per order not counted: %+v", rep.Etcd.PerOrder)
	}
	if a := rep.AfterSubmit; a == nil {
		t.Error("no after-submit phase")
	} else {
		if a.SupplierCalls != 0 || a.BigCommerceCalls != 0 {
			t.Errorf("deliveries to SUBMITTED orders made %v supplier and %v BigCommerce calls each", a.SupplierCalls, a.BigCommerceCalls)
		}
		// Half of them are exact duplicates, which write nothing; the
		// other half write their dedupe key. (The margin is for a stray
		// write of the quiet window, such as a lease grant.)
		if a.Etcd.Writes > 0.6 {
			t.Errorf("deliveries to SUBMITTED orders cost %.3f etcd writes each, want 0.5 (duplicates write nothing)", a.Etcd.Writes)
		}
	}
	// Every try falls in one window, of -window's width.
	tries := 0
	for _, w := range rep.Deliveries.Windows {
		tries += w.Count
	}
	if tries != rep.Deliveries.Attempts || rep.Config.WindowMs != 200 {
		t.Errorf("%d tries in windows of %v ms; want all %d, in windows of 200 ms", tries, rep.Config.WindowMs, rep.Deliveries.Attempts)
	}
	if len(rep.Deliveries.Windows) == 0 || rep.EndToEnd.CPUMsPerOrder <= 0 || rep.Bare.MutexCycleCPUMs <= 0 || rep.Ratios.CPUCeiling <= 0 {
		t.Errorf("windows %v, CPU per order %v, per mutex cycle %v, ceiling %v: not measured",
			rep.Deliveries.Windows, rep.EndToEnd.CPUMsPerOrder, rep.Bare.MutexCycleCPUMs, rep.Ratios.CPUCeiling)
	}
	for _, name := range []string{"fulfillment-0", "fulfillment-1", "webhook-gateway", "load"} {
		if fi, err := os.Stat(filepath.Join(c.ProfileDir, name+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("CPU profile of %s: %v", name, err)
		}
	}
	// The services' own view, from their metrics: the names scraped are
	// the ones the services export.
	if h := rep.Deliveries.Hops; h == nil || h.Count < float64(rep.Deliveries.Planned) || h.ReplicaIntakeCount < float64(rep.Deliveries.Planned) ||
		h.GatewayWebhookP99Ms <= 0 || h.ReplicaIntakeP99Ms <= 0 || h.EtcdTxnP99Ms <= 0 || h.EtcdRangeP99Ms <= 0 || h.ReplicasNotCounted != 0 {
		t.Errorf("services' own p99 not measured: %+v", h)
	}
	if rep.Etcd.Total.WALFsyncP99Ms <= 0 || rep.Etcd.Total.BackendCommitP99Ms <= 0 {
		t.Errorf("etcd's fsync and commit p99 not measured: %v, %v", rep.Etcd.Total.WALFsyncP99Ms, rep.Etcd.Total.BackendCommitP99Ms)
	}
	if rep.Bare.PutsPerSec <= 0 || rep.Bare.MutexCyclesPerSec <= 0 {
		t.Errorf("bare etcd not measured: %+v", rep.Bare)
	}
	for _, name := range []string{"fulfillment-0", "fulfillment-1", "webhook-gateway", "load"} {
		if rep.Memory.End[name] <= 0 {
			t.Errorf("no resident memory for %s: %v", name, rep.Memory.End)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
}

// TestLoadFaults runs the load command small with each -fault: the fault
// strikes mid-run, its victim comes back, and every order still reaches
// the supplier exactly once with no delivery lost or answered anything but
// 200 in the end (a frozen replica's deliveries are tried on the other).
func TestLoadFaults(t *testing.T) {
	for _, tc := range []struct {
		fault   string
		members int
		down    time.Duration // -fault-down; 0: 1 s
		breaker string        // -tropship-breaker
		// struck says whether the fault did what it says, from the report.
		struck func(*loadReport) bool
	}{
		{fault: faultKillReplica, members: 1},
		{fault: faultPauseReplica, members: 1},
		{fault: faultStopEtcdLeader, members: 3},
		// No write commits while the members are cut off: the first-seen
		// events sent then wait for the cut to mend (or are answered 503
		// and tried again), for the 3 s of the cut, longer than an
		// election timeout (2 s), so the leader steps down meanwhile.
		{fault: faultQuorumLoss, members: 3, down: 3 * time.Second, struck: func(r *loadReport) bool {
			return r.Deliveries.NotOK > 0 || r.Deliveries.AckLatency.Max >= 2000
		}},
		{fault: faultSupplierThrottle, members: 1, struck: func(r *loadReport) bool { return r.Supplier.Throttled > 0 }},
		// Each order created and answered 500 was looked up, found and
		// adopted: checkEachOrderOnce finds no second order. For 3 s,
		// about 25 orders: both replicas' breakers (TROPSHIP_BREAKER 2)
		// open, and the orders they held back are sent once the probe
		// after the cool-down is answered.
		{fault: faultSupplierAmbiguous, members: 1, down: 3 * time.Second, breaker: "2", struck: func(r *loadReport) bool {
			return r.Supplier.FailedAfterCreate > 0 && r.Supplier.Lookups >= r.Supplier.FailedAfterCreate && r.Supplier.BreakerHeld > 0
		}},
		{fault: faultSupplierTimeout, members: 1, struck: func(r *loadReport) bool {
			return r.Supplier.TimedOutAfterCreate > 0 && r.Supplier.Lookups >= r.Supplier.TimedOutAfterCreate
		}},
		{fault: faultBigCommerceOutage, members: 1},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			ctx := loadTestCtx(t)
			c := defaultLoadConfig()
			c.Orders, c.Dup, c.Rate, c.Spread, c.BenchOps, c.AfterSubmit, c.Timeout = 60, 2, 50, 30, 0, false, 3*time.Minute
			c.EtcdMembers, c.Fault, c.FaultDown = tc.members, tc.fault, cmp.Or(tc.down, time.Second)
			if tc.fault == faultSupplierAmbiguous || tc.fault == faultSupplierTimeout {
				// Looked up 2 s after the intent and 0.5 s to settle,
				// not 40 s: the test waits for every order.
				c.TropShipLookup, c.TropShipTimeout, c.TropShipLookupSettle = true, 2*time.Second, 500*time.Millisecond
			}
			c.TropShipBreaker = tc.breaker
			rep := runLoadLogged(ctx, t, c)
			f := rep.Fault
			if f == nil || f.Error != "" || f.AtDelivered*2 < int64(rep.Deliveries.Planned) || f.BackSeconds < f.AtSeconds+c.FaultDown.Seconds()-0.01 { // both rounded to 1 ms
				t.Fatalf("fault %+v: not done mid-run and undone", f)
			}
			if tc.fault == faultStopEtcdLeader && (f.StopMs <= 0 || f.NewLeaderMs <= 0) {
				t.Errorf("leader stop not timed: %+v", f)
			}
			if tc.struck != nil && !tc.struck(rep) {
				t.Errorf("the fault did not strike: fault %+v, supplier %+v, %d tries not answered 200", f, rep.Supplier, rep.Deliveries.NotOK)
			}
			checkEachOrderOnce(t, rep, c)
			events := c.Orders * len(c.Mix)
			recordedOK := rep.Deliveries.Recorded == events
			if tc.fault == faultPauseReplica || tc.fault == faultQuorumLoss {
				// A delivery whose first try found the frozen replica may
				// have been recorded by it all the same (before it froze,
				// or when it resumed), and a write that timed out without
				// a quorum may commit once there is one again: its next
				// try is then answered "duplicate". Every delivery is
				// answered 200 either way.
				recordedOK = rep.Deliveries.Recorded <= events && rep.Deliveries.Recorded+rep.Deliveries.Duplicate == rep.Deliveries.Planned
			}
			if rep.Deliveries.Failed != 0 || !recordedOK {
				t.Errorf("deliveries: %d failed, %d recorded, %d duplicate of %d; want 0 failed, %d recorded",
					rep.Deliveries.Failed, rep.Deliveries.Recorded, rep.Deliveries.Duplicate, rep.Deliveries.Planned, events)
			}
			if len(rep.Problems) != 0 {
				t.Errorf("problems: %v", rep.Problems)
			}
		})
	}
}

// TestLoadFirstStatus runs orders that are not payable when created, on a
// store API that does not side-load lines: every event before the payment
// costs one BigCommerce read (the order), and the lines, addresses and
// metafield are read once per order, once it is paid.
func TestLoadFirstStatus(t *testing.T) {
	ctx := loadTestCtx(t)
	c := defaultLoadConfig()
	c.Orders, c.Dup, c.Concurrency, c.BenchOps, c.AfterSubmit, c.Timeout = 30, 2, 8, 0, false, 3*time.Minute
	c.FirstStatus, c.BCNoSideLoad = 7, true
	rep := runLoadLogged(ctx, t, c)
	checkEachOrderOnce(t, rep, c)
	b := rep.BigCommerce.Stats
	if b.Products != c.Orders || b.ShippingAddresses != c.Orders || b.MetafieldsGet != c.Orders || b.MetafieldsPost != c.Orders {
		t.Errorf("BigCommerce %+v: want lines, addresses, metafield read and write once per order (%d)", b, c.Orders)
	}
	// One order read per run: the paid run, and at most one for each of
	// the two events that may come before the payment.
	// (With 30 orders, some event certainly finds its order unpaid.)
	if b.Order <= c.Orders || b.Order > 3*c.Orders {
		t.Errorf("%d order reads for %d orders, want more than %d (some before the payment), at most %d", b.Order, c.Orders, c.Orders, 3*c.Orders)
	}
}

// TestLoadQuota runs orders at a store's quota that other apps spend too:
// the replicas spread what is left (BIGCOMMERCE_QUOTA_BURST, reported from
// their metrics), every order is done once, and the other apps get a share.
func TestLoadQuota(t *testing.T) {
	ctx := loadTestCtx(t)
	c := defaultLoadConfig()
	c.Orders, c.Dup, c.Rate, c.BenchOps, c.AfterSubmit, c.Timeout = 20, 2, 40, 0, false, 3*time.Minute
	c.BCQuota, c.BCWindow, c.BCOtherApps = 40, 2*time.Second, 4
	rep := runLoadLogged(ctx, t, c)
	checkEachOrderOnce(t, rep, c)
	b := rep.BigCommerce
	if b.SpreadWaits == 0 {
		t.Errorf("the replicas held no request to spread the quota (%+v)", b)
	}
	if b.Stats.OtherApps == 0 {
		t.Errorf("the report counts no request of the other apps (%+v)", b.Stats)
	}
}

// TestLoadRoles runs a replica that only records (ROLE=intake) in front of
// one that processes at the lowest CPU priority (ROLE=process, nice 19) on
// one CPU (GOMAXPROCS 1): every order reaches the supplier once.
func TestLoadRoles(t *testing.T) {
	ctx := loadTestCtx(t)
	c := defaultLoadConfig()
	c.Orders, c.Dup, c.Concurrency, c.BenchOps, c.AfterSubmit, c.Timeout = 30, 2, 8, 0, false, 3*time.Minute
	c.Replicas, c.IntakeReplicas, c.ProcessNice, c.ProcessProcs = 1, 1, 19, 1
	rep := runLoadLogged(ctx, t, c)
	checkEachOrderOnce(t, rep, c)
	if rep.Config.ProcessProcs != 1 {
		t.Errorf("report config %+v: want process_gomaxprocs 1", rep.Config)
	}
	for _, name := range []string{"fulfillment-0", "fulfillment-intake-0"} {
		if rep.Memory.End[name] <= 0 {
			t.Errorf("no resident memory for %s: %v", name, rep.Memory.End)
		}
	}
}

// runLoadLogged runs a load test, logs its progress and table, and fails
// the test if it fails.
// loadTestCtx skips a test that runs the load command in -short mode, and
// bounds it otherwise.
func loadTestCtx(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the services; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkEachOrderOnce asserts that every order of the run reached the
// supplier exactly once and was counted done, by the run's watch and by
// ListOrders.
func checkEachOrderOnce(t *testing.T, rep *loadReport, c loadConfig) {
	t.Helper()
	if s := rep.Supplier; s.ExtraOrders != 0 || s.DuplicateReferences != 0 || s.LiveOrders != c.Orders {
		t.Errorf("supplier: %d live orders, %d extra, %d duplicate references; want %d, 0, 0", s.LiveOrders, s.ExtraOrders, s.DuplicateReferences, c.Orders)
	}
	if e := rep.EndToEnd; !e.All || e.Submitted != c.Orders || e.ListedSubmitted != c.Orders {
		t.Errorf("done: %d (listed %d) of %d", e.Submitted, e.ListedSubmitted, c.Orders)
	}
}

func runLoadLogged(ctx context.Context, t *testing.T, c loadConfig) *loadReport {
	t.Helper()
	var progress bytes.Buffer
	rep, err := runLoadTest(ctx, c, &progress)
	t.Log(progress.String())
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.writeTable(&table)
	t.Log("\n" + table.String())
	return rep
}

func TestParseLoadFlags(t *testing.T) {
	c, err := parseLoad([]string{"-orders", "5", "-mix", "created,updated", "-rate", "500", "-bc-quota", "150", "-bc-window", "3s", "-write-back=false"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Orders != 5 || c.Rate != 500 || len(c.Mix) != 2 || c.Mix[1] != webhook.ScopeOrderUpdated ||
		c.BCQuota != 150 || c.BCWindow != 3*time.Second || c.WriteBack || c.doneState().String() != "ORDER_STATE_SUBMITTED" {
		t.Errorf("parsed %+v", c)
	}
	if c, err := parseLoad([]string{"-bc-quota-burst", "off"}); err != nil || c.BCQuotaBurst != "off" {
		t.Errorf("-bc-quota-burst off: %q, %v", c.BCQuotaBurst, err)
	}
	if c, err := parseLoad([]string{"-window", "1s"}); err != nil || c.Window != time.Second {
		t.Errorf("-window 1s: %v, %v", c.Window, err)
	}
	if c, err := parseLoad([]string{"-first-status", "7"}); err != nil || c.FirstStatus != 7 {
		t.Errorf("-first-status 7: %d, %v", c.FirstStatus, err)
	}
	if c, _ := parseLoad(nil); !c.WriteBack || c.doneState().String() != "ORDER_STATE_WRITTEN_BACK" || c.FirstStatus != 11 {
		t.Errorf("defaults: write-back %v, done at %v; want on, WRITTEN_BACK", c.WriteBack, c.doneState())
	}
	if c, err := parseLoad([]string{"-etcd-members", "3", "-fault", "stop-etcd-leader", "-fault-down", "2s"}); err != nil ||
		c.EtcdMembers != 3 || c.Fault != faultStopEtcdLeader || c.FaultDown != 2*time.Second {
		t.Errorf("parsed %+v, %v", c, err)
	}
	if c, err := parseLoad([]string{"-fault", "supplier-timeout", "-tropship-lookup", "-tropship-timeout", "3s", "-tropship-lookup-settle", "1s"}); err != nil ||
		!c.TropShipLookup || c.TropShipTimeout != 3*time.Second || c.TropShipLookupSettle != time.Second {
		t.Errorf("parsed %+v, %v", c, err)
	}
	for _, bad := range [][]string{
		{"-mix", "archived"}, {"-orders", "0"}, {"-dup", "0"}, {"-bc-quota", "-1"}, {"-bc-quota", "5", "-bc-window", "0s"},
		{"-etcd-members", "0"}, {"-etcd-members", "3", "-etcd-endpoints", "http://127.0.0.1:2379"},
		{"-fault", "unplug"}, {"-fault", "stop-etcd-leader"}, {"-fault", "stop-etcd-leader", "-etcd-members", "2"},
		{"-fault", "kill-replica", "-fault-down", "-1s"},
		{"-fault", "etcd-quorum-loss"}, {"-fault", "supplier-ambiguous"}, {"-fault", "supplier-timeout"},
		{"-tropship-timeout", "-1s"}, {"-tropship-lookup-settle", "-1s"},
		{"-first-status", "15"}, {"-first-status", "7", "-mix", "created,updated"},
		{"-window", "0s"}, {"-window", "50ms"},
		{"-bc-quota-burst", "0"}, {"-bc-quota-burst", "some"}, {"-bc-other-apps", "2"}, {"-bc-other-apps", "-1", "-bc-quota", "5"},
	} {
		if _, err := parseLoad(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	const text = `# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 12
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_handled_total{grpc_code="OK",grpc_method="DeleteRange",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 3
etcd_server_proposals_committed_total 9
etcd_mvcc_put_total 6
weird{a="x\"y,z}"} 1.5e3
`
	samples, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 8 || samples[7].labels["a"] != `x"y,z}` || samples[7].value != 1500 {
		t.Fatalf("parsed %+v", samples)
	}
	c := countsFrom(samples)
	c.finish()
	// 9 proposals: 2 deletes and 7 write txns; 13 ranges; no read-only txn.
	if c.Range != 13 || c.Txn != 7 || c.Writes != 9 || c.Reads != 13 || c.WatchStreams != 3 || c.MvccPut != 6 || c.Requests != 22 {
		t.Errorf("counts %+v", c)
	}
}

func TestArrange(t *testing.T) {
	const orders, per, spread = 200, 9, 50
	var d []webhook.Event
	for i := range orders {
		for range per {
			d = append(d, webhook.New(webhook.ScopeOrderCreated, "s", "1", uint64(i)))
		}
	}
	pos := func(d []webhook.Event) map[uint64][]int {
		m := map[uint64][]int{}
		for i, ev := range d {
			m[ev.Data.ID] = append(m[ev.Data.ID], i)
		}
		return m
	}
	got := pos(arrange(slices.Clone(d), spread, 1))
	for id, at := range got {
		if len(at) != per {
			t.Fatalf("order %d has %d deliveries, want %d", id, len(at), per)
		}
		// Every delivery moved at most spread places from where its
		// order's group stood.
		lo, hi := int(id)*per-spread, int(id)*per+per-1+spread
		for _, i := range at {
			if i < lo || i > hi {
				t.Errorf("order %d: a delivery at %d, outside [%d, %d]", id, i, lo, hi)
			}
		}
	}
	// Spread 0 shuffles whole: some order's deliveries end up far apart.
	far := false
	for _, at := range pos(arrange(slices.Clone(d), 0, 1)) {
		if at[len(at)-1]-at[0] > len(d)/2 {
			far = true
		}
	}
	if !far {
		t.Error("spread 0 did not shuffle across the run")
	}
}

// The services' own p99 comes from histogram buckets; a replica started
// again (its counts went down) or not read is left out, not subtracted.
func TestHopsBetween(t *testing.T) {
	inf := math.Inf(1)
	h := func(le5, le10, all float64) histogram {
		return histogram{0.005: le5, 0.01: le10, inf: all}
	}
	a := hopSnapshot{gateway: h(0, 0, 0), replicas: []replicaHists{
		{ok: true, intake: h(0, 0, 0), txn: h(0, 0, 0), rng: h(0, 0, 0)},
		{ok: true, intake: h(500, 500, 500), txn: h(500, 500, 500), rng: h(500, 500, 500)},
		{ok: true, intake: h(0, 0, 0), txn: h(0, 0, 0), rng: h(0, 0, 0)},
	}}
	b := hopSnapshot{gateway: h(90, 100, 100), replicas: []replicaHists{
		// 100 deliveries, 99 within 5 ms
		{ok: true, intake: h(99, 100, 100), txn: h(50, 100, 100), rng: h(100, 100, 100)},
		// restarted: counts went down
		{ok: true, intake: h(10, 10, 10), txn: h(10, 10, 10), rng: h(10, 10, 10)},
		// not read at the end
		{ok: false},
	}}
	got := hopsBetween(a, b)
	if got == nil || got.Count != 100 || got.ReplicaIntakeCount != 100 || got.ReplicasNotCounted != 2 ||
		got.GatewayWebhookP99Ms != 10 || got.ReplicaIntakeP99Ms != 5 || got.EtcdTxnP99Ms != 10 || got.EtcdRangeP99Ms != 5 {
		t.Errorf("hopsBetween = %+v; want 100 deliveries, gateway ≤ 10 ms, intake ≤ 5 ms, Txn ≤ 10 ms, Range ≤ 5 ms, 2 replicas left out", got)
	}
	if hopsBetween(hopSnapshot{}, b) != nil {
		t.Error("a gateway not read gave figures")
	}
}
