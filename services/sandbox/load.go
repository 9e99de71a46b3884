package main

// load.go is "sandbox load": it drives the real webhook gateway over HTTP
// with many orders and duplicate deliveries, against fulfillment replicas
// sharing one etcd and the TropShip simulator, and measures what that costs
// (acknowledgement latency, orders per second to SUBMITTED, etcd requests
// per order, BigCommerce and supplier calls, resident memory) next to what
// the same etcd does with bare puts and bare mutex cycles in the same run.
// It measures; it asserts nothing about speed. See PERFORMANCE.md.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/etcdtest"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/tropsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

const (
	loadStore      = "load1"
	loadStoreID    = "1000002"
	loadBCToken    = "load-bc-token"
	loadSecret     = "load-client-secret"
	loadTSID       = "load-tropship-id"
	loadTSSecret   = "load-tropship-secret"
	loadAdminToken = "load-admin"
	// loadFirstOrder is the id of the first seeded order.
	loadFirstOrder = 10000
	// loadAttempts bounds the tries of one delivery that is not answered
	// 200 (BigCommerce retries too); every try's latency is recorded.
	loadAttempts = 5
)

// loadConfig are the load command's flags.
type loadConfig struct {
	Orders      int
	Dup         int
	Mix         []string // scopes, e.g. store/order/created
	Rate        float64  // deliveries per second; 0: closed loop at Concurrency
	Concurrency int
	Replicas    int
	// IntakeReplicas are replicas with ROLE=intake, which then take every
	// delivery (the Replicas get ROLE=process); 0: none, every replica
	// does both (ROLE=all).
	IntakeReplicas int
	// ProcessNice is the nice value of the replicas that process orders,
	// and ProcessProcs their GOMAXPROCS (0: the Go default).
	ProcessNice     int
	ProcessProcs    int
	Workers         int // WORKERS of each replica; 0: the service's default
	SupplierLatency time.Duration
	EtcdEndpoints   string
	JSONPath        string
	KeepLogs        bool
	BenchOps        int
	AfterSubmit     bool
	Lines           int
	Timeout         time.Duration
	Seed            uint64
	Spread          int // 0: shuffle every delivery; else see arrange
	Verbose         bool
	ProfileDir      string
	ProfileSeconds  int
	// WriteBack is the replicas' BIGCOMMERCE_WRITE_BACK: with it, an order
	// is done once WRITTEN_BACK (its id on the BigCommerce order), else
	// once SUBMITTED.
	WriteBack bool
	// BCQuota and BCWindow rate-limit the BigCommerce simulator like a
	// store's plan: BCQuota requests per BCWindow (0: unlimited).
	BCQuota  int
	BCWindow time.Duration
	// BCQuotaBurst is the replicas' BIGCOMMERCE_QUOTA_BURST ("": their
	// default).
	BCQuotaBurst string
	// BCOtherApps is the requests per second the store's other apps spend
	// of its quota, from the first delivery on.
	BCOtherApps float64
	// BCNoSideLoad: the BigCommerce simulator ignores include on an order
	// read, so lines and addresses cost two more requests per order.
	BCNoSideLoad bool
	// EtcdMembers is the size of the embedded etcd (1: a single member).
	EtcdMembers int
	// Fault, when set, is done once half of the deliveries are answered
	// (see load_fault.go); the victim is down for FaultDown.
	Fault     string
	FaultDown time.Duration
	// TropShipLookup is the replicas' TROPSHIP_LOOKUP: an ambiguous live
	// answer is resolved by looking the reference up (the supplier faults
	// need it, or their orders wait for a person). TropShipTimeout and
	// TropShipLookupSettle are their TROPSHIP_TIMEOUT and
	// TROPSHIP_LOOKUP_SETTLE (0: the service's defaults, 30 s and 10 s).
	TropShipLookup       bool
	TropShipTimeout      time.Duration
	TropShipLookupSettle time.Duration
	// TropShipBreaker is the replicas' TROPSHIP_BREAKER ("": their
	// default).
	TropShipBreaker string
	// FirstStatus is the status each order is seeded in. Another than 11
	// (Awaiting Fulfillment) turns 11 just before the order's first
	// statusUpdated delivery is sent, as a payment would turn it: events
	// sent before find it not yet payable.
	FirstStatus uint32
	// History is the number of records of past orders in etcd before the
	// run (see load_probe.go).
	History int
	// Probe, when set, is how often /readyz and every replica's /metrics
	// are asked during the run.
	Probe time.Duration
	// Window is the width of the windows the acknowledgement latency and
	// the answers that were not 200 are also reported by.
	Window time.Duration
}

// doneState is the state in which an order of this run is done.
func (c loadConfig) doneState() backorderv1.OrderState {
	if c.WriteBack {
		return backorderv1.OrderState_ORDER_STATE_WRITTEN_BACK
	}
	return backorderv1.OrderState_ORDER_STATE_SUBMITTED
}

func defaultLoadConfig() loadConfig {
	return loadConfig{
		Orders: 1000, Dup: 3,
		Mix:         []string{webhook.ScopeOrderCreated, webhook.ScopeOrderStatusUpdated, webhook.ScopeOrderUpdated},
		Concurrency: 32, Replicas: 2, BenchOps: 2000, AfterSubmit: true, Lines: 2,
		Timeout: 15 * time.Minute, Seed: 1, WriteBack: true,
		EtcdMembers: 1, FaultDown: 5 * time.Second,
		FirstStatus: bcsim.StatusAwaitingFulfillment,
		Window:      5 * time.Second,
	}
}

func parseLoad(args []string) (loadConfig, error) {
	c := defaultLoadConfig()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.IntVar(&c.Orders, "orders", c.Orders, "number of orders (each seeded in status -first-status, UK address)")
	firstStatus := fs.Uint("first-status", uint(c.FirstStatus), "status each order is seeded in; another than 11 turns 11 just before the order's first statusUpdated delivery is sent (as a payment would), so that its earlier events find it not yet payable (e.g. 7, Awaiting Payment)")
	fs.IntVar(&c.Dup, "dup", c.Dup, "deliveries of each event (1: no duplicates)")
	mix := fs.String("mix", "created,statusUpdated,updated", "events each order gets (comma-separated: created, statusUpdated, updated)")
	fs.Float64Var(&c.Rate, "rate", 0, "target deliveries per second (open loop, at most -concurrency in flight); 0: as fast as -concurrency allows")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "deliveries in flight (with -rate: the cap); also the concurrency of the bare etcd benchmark")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "fulfillment replicas sharing etcd")
	fs.IntVar(&c.IntakeReplicas, "intake-replicas", 0, "more replicas with ROLE=intake, which then take every delivery from the gateway, while the -replicas get ROLE=process and process the orders; 0: every replica does both")
	fs.IntVar(&c.ProcessProcs, "process-gomaxprocs", 0, "GOMAXPROCS of the replicas that process orders (with -intake-replicas): how many CPUs their Go code may run on at once; 0: the Go default, every CPU")
	fs.IntVar(&c.ProcessNice, "process-nice", 0, "nice value (0 to 19) of the replicas that process orders, as a service manager's Nice= would set: with -intake-replicas, acknowledgements then come before order processing for the CPU")
	fs.IntVar(&c.Workers, "workers", 0, "WORKERS of each replica (orders processed concurrently); 0: the service's default (16)")
	fs.DurationVar(&c.SupplierLatency, "supplier-latency", 0, "latency the TropShip simulator adds to every /v1/ answer")
	fs.StringVar(&c.EtcdEndpoints, "etcd-endpoints", "", "comma-separated etcd client URLs; empty: an embedded etcd in this process, in a temporary directory")
	fs.StringVar(&c.JSONPath, "json", "", "write the report as JSON to this file")
	fs.BoolVar(&c.KeepLogs, "keep-logs", false, "keep the temporary directory with the services' logs")
	fs.IntVar(&c.BenchOps, "bench-ops", c.BenchOps, "operations of each bare etcd benchmark (puts, mutex cycles); 0 skips them")
	fs.BoolVar(&c.AfterSubmit, "after-submit", c.AfterSubmit, "once all are SUBMITTED, deliver one exact duplicate and one new event per order and measure their cost")
	fs.IntVar(&c.Lines, "lines", c.Lines, "product lines per order")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "how long to wait for every order to be SUBMITTED")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the delivery shuffle")
	fs.IntVar(&c.Spread, "spread", 0, "0: shuffle all deliveries (most orders' first events come early: a surge of new orders at the start); N: orders arrive at a steady pace and each delivery lands up to N places after its order's turn")
	fs.BoolVar(&c.Verbose, "v", false, "show the services' logs")
	fs.StringVar(&c.ProfileDir, "profile", "", "write CPU profiles of every process (each service through DEBUG_ADDR, and this process) to this directory, from the first delivery on")
	fs.IntVar(&c.ProfileSeconds, "profile-seconds", 10, "length of the -profile window in seconds")
	fs.IntVar(&c.BCQuota, "bc-quota", 0, "BigCommerce API requests the store may make per -bc-window, beyond which the simulator answers 429 (150 is the Standard and Plus plans' quota per 30 s); 0: unlimited")
	fs.DurationVar(&c.BCWindow, "bc-window", 30*time.Second, "the BigCommerce rate-limit window")
	fs.Float64Var(&c.BCOtherApps, "bc-other-apps", 0, "requests per second the store's other apps spend of its -bc-quota, from the first delivery on (the quota is one per store)")
	fs.BoolVar(&c.BCNoSideLoad, "bc-no-side-load", false, "the BigCommerce simulator ignores include=consignments.line_items on an order read, as a store API without it would: lines and addresses are read from their own resources")
	fs.StringVar(&c.BCQuotaBurst, "bc-quota-burst", "", "BIGCOMMERCE_QUOTA_BURST of the replicas: requests sent at once before the rest of the store's quota is spread over its window, or off; empty: the service's default")
	fs.BoolVar(&c.WriteBack, "write-back", c.WriteBack, "BIGCOMMERCE_WRITE_BACK of the replicas: orders are done once WRITTEN_BACK (true) or SUBMITTED (false); \"SUBMITTED\" in the report means done")
	fs.IntVar(&c.EtcdMembers, "etcd-members", c.EtcdMembers, "members of the embedded etcd, all in this process (3: a cluster in which every write needs a quorum); not with -etcd-endpoints")
	fs.StringVar(&c.Fault, "fault", "", "a fault once half of the deliveries are answered, lasting -fault-down: "+
		faultKillReplica+" (SIGKILL fulfillment-0, start it again), "+
		faultPauseReplica+" (SIGSTOP fulfillment-0, then SIGCONT), "+
		faultStopEtcdLeader+" (with -etcd-members 3 or more: stop the leader, start it again), "+
		faultQuorumLoss+" (with -etcd-members 3 or more: cut the members off from each other, then mend), "+
		faultSupplierThrottle+" (TropShip answers every live order 429), "+
		faultSupplierAmbiguous+" (TropShip creates every live order, then answers 500; needs -tropship-lookup), "+
		faultSupplierTimeout+" (TropShip creates every live order, then never answers; needs -tropship-lookup), "+
		faultBigCommerceOutage+" (BigCommerce answers every request 503)")
	fs.BoolVar(&c.TropShipLookup, "tropship-lookup", false, "TROPSHIP_LOOKUP of the replicas: an ambiguous live answer is resolved by looking the reference up at TropShip")
	fs.DurationVar(&c.TropShipTimeout, "tropship-timeout", 0, "TROPSHIP_TIMEOUT of the replicas (a lookup waits for it after an ambiguous attempt's intent); 0: the service's default")
	fs.DurationVar(&c.TropShipLookupSettle, "tropship-lookup-settle", 0, "TROPSHIP_LOOKUP_SETTLE of the replicas; 0: the service's default")
	fs.StringVar(&c.TropShipBreaker, "tropship-breaker", "", "TROPSHIP_BREAKER of the replicas: live answers in a row without a clear outcome that hold live orders back, or off; empty: the service's default")
	fs.IntVar(&c.History, "history", 0, "records of past orders in etcd before the run (their state index keys, "+historyState+"), as in a store that has run for a while: what counting the store's records walks")
	fs.DurationVar(&c.Probe, "probe", 0, "during the run, every this long, ask the gateway's /readyz (it asks a replica's GetServiceStatus) and scrape every replica's /metrics, as a readiness probe and Prometheus would; their etcd reads count in the etcd figures; 0: off")
	fs.DurationVar(&c.FaultDown, "fault-down", c.FaultDown, "how long the -fault lasts (its replica or etcd member stays down, its simulator fails)")
	fs.DurationVar(&c.Window, "window", c.Window, "width of the windows the acknowledgement p99 and the answers not 200 are also reported by (1s shows how a surge's first seconds go)")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	c.FirstStatus = uint32(*firstStatus)
	c.Mix = nil
	for _, m := range strings.Split(*mix, ",") {
		m = strings.TrimSpace(m)
		scope, ok := scopeAliases[m]
		if !ok || m == "archived" {
			fmt.Fprintf(fs.Output(), "-mix: unknown event %q (want created, statusUpdated, updated)\n", m)
			return c, errUsage
		}
		if !slices.Contains(c.Mix, scope) {
			c.Mix = append(c.Mix, scope)
		}
	}
	switch {
	case c.Orders < 1, c.Dup < 1, c.Concurrency < 1, c.Replicas < 1, c.Rate < 0, c.Lines < 1, c.BenchOps < 0, c.IntakeReplicas < 0:
		fmt.Fprintln(fs.Output(), "-orders, -dup, -concurrency, -replicas and -lines must be at least 1; -rate, -bench-ops and -intake-replicas at least 0")
		return c, errUsage
	case c.ProcessNice < 0 || c.ProcessNice > 19:
		fmt.Fprintln(fs.Output(), "-process-nice must be from 0 to 19")
		return c, errUsage
	case c.ProcessProcs < 0:
		fmt.Fprintln(fs.Output(), "-process-gomaxprocs must be at least 0")
		return c, errUsage
	case c.BCQuota < 0, c.BCQuota > 0 && c.BCWindow <= 0:
		fmt.Fprintln(fs.Output(), "-bc-quota must be at least 0, and -bc-window positive")
		return c, errUsage
	case c.BCOtherApps < 0, c.BCOtherApps > 0 && c.BCQuota == 0:
		fmt.Fprintln(fs.Output(), "-bc-other-apps must be at least 0, and needs -bc-quota")
		return c, errUsage
	case !validQuotaBurst(c.BCQuotaBurst):
		fmt.Fprintln(fs.Output(), "-bc-quota-burst must be a whole number from 1 to 10000, or off")
		return c, errUsage
	case c.EtcdMembers < 1, c.EtcdMembers > 1 && c.EtcdEndpoints != "":
		fmt.Fprintln(fs.Output(), "-etcd-members must be at least 1, and 1 with -etcd-endpoints (it sizes the embedded etcd)")
		return c, errUsage
	case c.Fault != "" && !slices.Contains(faults, c.Fault):
		fmt.Fprintf(fs.Output(), "-fault: unknown fault %q (want one of %s)\n", c.Fault, strings.Join(faults, ", "))
		return c, errUsage
	case c.Fault == faultStopEtcdLeader && c.EtcdMembers < 3:
		fmt.Fprintln(fs.Output(), "-fault "+faultStopEtcdLeader+" needs -etcd-members 3 or more: a smaller etcd has no quorum without its leader")
		return c, errUsage
	case c.Fault == faultQuorumLoss && c.EtcdMembers < 3:
		fmt.Fprintln(fs.Output(), "-fault "+faultQuorumLoss+" needs -etcd-members 3 or more: a single member has a quorum of its own")
		return c, errUsage
	case (c.Fault == faultSupplierAmbiguous || c.Fault == faultSupplierTimeout) && !c.TropShipLookup:
		fmt.Fprintln(fs.Output(), "-fault "+c.Fault+" needs -tropship-lookup: without the lookup its orders wait in NEEDS_REVIEW for a person, and the run never ends")
		return c, errUsage
	case c.TropShipTimeout < 0 || c.TropShipLookupSettle < 0:
		fmt.Fprintln(fs.Output(), "-tropship-timeout and -tropship-lookup-settle must not be negative")
		return c, errUsage
	case c.FaultDown < 0:
		fmt.Fprintln(fs.Output(), "-fault-down must not be negative")
		return c, errUsage
	case c.History < 0 || c.Probe < 0:
		fmt.Fprintln(fs.Output(), "-history and -probe must not be negative")
		return c, errUsage
	case c.Window < 100*time.Millisecond:
		fmt.Fprintln(fs.Output(), "-window must be at least 100ms")
		return c, errUsage
	case *firstStatus > 14:
		fmt.Fprintf(fs.Output(), "-first-status: %d is not a BigCommerce status id (0 to 14)\n", *firstStatus)
		return c, errUsage
	case c.FirstStatus != bcsim.StatusAwaitingFulfillment && !slices.Contains(c.Mix, webhook.ScopeOrderStatusUpdated):
		fmt.Fprintln(fs.Output(), "-first-status other than 11 needs statusUpdated in -mix: it is what makes the orders payable")
		return c, errUsage
	}
	return c, nil
}

// runLoad is "sandbox load".
func runLoad(ctx context.Context, args []string) error {
	c, err := parseLoad(args)
	if err != nil {
		return err
	}
	rep, err := runLoadTest(ctx, c, os.Stderr)
	if rep != nil {
		rep.writeTable(os.Stdout)
		if c.JSONPath != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(c.JSONPath, append(b, '\n'), 0o644); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	return err
}

// loadReport is what a run measured. Times are in milliseconds or seconds
// as the field names say.
type loadReport struct {
	Conditions struct {
		Start        time.Time `json:"start"`
		GoVersion    string    `json:"go_version"`
		CPUs         int       `json:"cpus"`
		LoadAvgStart string    `json:"loadavg_start"`
		LoadAvgEnd   string    `json:"loadavg_end"`
		// CPU is how busy the machine was from the first delivery until
		// writes went quiet after the last SUBMITTED, in cores (of CPUs):
		// the whole machine, this run's processes, and steal.
		CPU         machineCPU `json:"cpu"`
		Etcd        string     `json:"etcd"`
		EtcdDataDir string     `json:"etcd_data_dir,omitempty"`
		Prefix      string     `json:"etcd_prefix"`
	} `json:"conditions"`
	Config struct {
		Orders            int      `json:"orders"`
		Dup               int      `json:"dup"`
		Mix               []string `json:"mix"`
		Rate              float64  `json:"rate"`
		Concurrency       int      `json:"concurrency"`
		Replicas          int      `json:"replicas"`
		IntakeReplicas    int      `json:"intake_replicas,omitempty"`
		ProcessNice       int      `json:"process_nice,omitempty"`
		ProcessProcs      int      `json:"process_gomaxprocs,omitempty"`
		Workers           int      `json:"workers_per_replica"`
		SupplierLatencyMs float64  `json:"supplier_latency_ms"`
		Lines             int      `json:"lines"`
		BenchOps          int      `json:"bench_ops"`
		Seed              uint64   `json:"seed"`
		Spread            int      `json:"spread"`
		BCQuota           int      `json:"bc_quota,omitempty"`
		BCWindowMs        float64  `json:"bc_window_ms,omitempty"`
		BCQuotaBurst      string   `json:"bc_quota_burst,omitempty"`
		BCOtherApps       float64  `json:"bc_other_apps,omitempty"`
		BCNoSideLoad      bool     `json:"bc_no_side_load,omitempty"`
		WriteBack         bool     `json:"write_back"`
		EtcdMembers       int      `json:"etcd_members"`
		Fault             string   `json:"fault,omitempty"`
		FaultDownMs       float64  `json:"fault_down_ms,omitempty"`
		TropShipLookup    bool     `json:"tropship_lookup,omitempty"`
		TropShipTimeoutMs float64  `json:"tropship_timeout_ms,omitempty"`
		LookupSettleMs    float64  `json:"tropship_lookup_settle_ms,omitempty"`
		TropShipBreaker   string   `json:"tropship_breaker,omitempty"`
		FirstStatus       uint32   `json:"first_status"`
		History           int      `json:"history,omitempty"`
		ProbeMs           float64  `json:"probe_ms,omitempty"`
		WindowMs          float64  `json:"window_ms"`
	} `json:"config"`
	// Probes is what -probe measured, if set.
	Probes *probeStats `json:"probes,omitempty"`
	// Fault is what -fault did, if set.
	Fault      *faultReport  `json:"fault_injected,omitempty"`
	Deliveries deliveryStats `json:"deliveries"`
	EndToEnd   struct {
		Submitted int  `json:"submitted"`
		All       bool `json:"all_submitted"`
		// Seconds from the first delivery sent until every order was
		// SUBMITTED.
		Seconds      float64 `json:"seconds"`
		OrdersPerSec float64 `json:"orders_per_sec"`
		// ListedSubmitted is what ListOrders(SUBMITTED), paged, returned
		// at the end.
		ListedSubmitted int `json:"listed_submitted"`
		// ToSupplier is, for each order ListOrders returned, the time from
		// the first delivery sent for it to its submitted_at (the supplier's
		// answer stored): how long a customer's order waits to reach the
		// supplier, in ms.
		ToSupplier latencySummary `json:"to_supplier_ms"`
		// CPUMsPerOrder is the CPU time of all of this run's processes
		// over the measured window (deliveries, processing, and the 2 s of
		// quiet that end it) per order.
		CPUMsPerOrder float64 `json:"cpu_ms_per_order"`
	} `json:"end_to_end"`
	Supplier struct {
		LiveOrders          int `json:"live_orders"`
		ExtraOrders         int `json:"extra_orders"`
		DuplicateReferences int `json:"duplicate_references"`
		Requests            int `json:"requests"`
		TokensIssued        int `json:"tokens_issued"`
		// Faulted is what the simulator's faults did during the run:
		// orders created and answered 500 or never answered, lookups
		// by reference.
		FailedAfterCreate   int `json:"failed_after_create,omitempty"`
		TimedOutAfterCreate int `json:"timed_out_after_create,omitempty"`
		Throttled           int `json:"throttled,omitempty"`
		Lookups             int `json:"lookups,omitempty"`
		// BreakerHeld is the live orders the replicas' TropShip breakers
		// held back (their metrics, summed).
		BreakerHeld float64 `json:"breaker_held,omitempty"`
	} `json:"supplier"`
	BigCommerce struct {
		Calls         int         `json:"calls"`
		CallsPerOrder float64     `json:"calls_per_order"`
		Stats         bcsim.Stats `json:"stats"`
		// ResetWaits and SpreadWaits are the replicas' requests that
		// first waited for the quota's reset, or to spread it over its
		// window (their metrics, summed; a replica that does not answer
		// is left out).
		ResetWaits  float64 `json:"replica_reset_waits"`
		SpreadWaits float64 `json:"replica_spread_waits"`
		// OtherAppsRefused is what -bc-other-apps could not spend (the
		// quota was spent); what it did spend is Stats.OtherApps.
		OtherAppsRefused int `json:"other_apps_refused,omitempty"`
	} `json:"bigcommerce"`
	// Etcd is what the etcd server counted between the first delivery and
	// the moment writes went quiet after the last order was SUBMITTED,
	// divided by the number of orders. The load tool's own polling is
	// subtracted.
	Etcd struct {
		Total    etcdCounts `json:"total"`
		PerOrder etcdCounts `json:"per_order"`
		Polls    int        `json:"polls_subtracted"`
		// DBBytes and Keys are the whole etcd's database size and live
		// keys once every order was SUBMITTED (nothing compacts the
		// history during a run).
		DBBytes float64 `json:"db_bytes"`
		Keys    float64 `json:"keys"`
	} `json:"etcd"`
	// AfterSubmit is the cost of deliveries for orders already SUBMITTED:
	// one exact duplicate of an event seen before and one new event per
	// order.
	AfterSubmit *afterSubmitStats `json:"after_submit,omitempty"`
	Bare        struct {
		Ops               int     `json:"ops"`
		Concurrency       int     `json:"concurrency"`
		PutsPerSec        float64 `json:"puts_per_sec"`
		MutexCyclesPerSec float64 `json:"mutex_cycles_per_sec"`
		ValueBytes        int     `json:"value_bytes"`
		// MutexCycleCPUMs is the CPU time (all of this run's processes)
		// per bare mutex cycle.
		MutexCycleCPUMs float64 `json:"mutex_cycle_cpu_ms"`
	} `json:"bare_etcd"`
	Ratios struct {
		// OrdersVsMutex is end-to-end orders/s over bare mutex cycles/s
		// (target at least 0.5).
		OrdersVsMutex float64 `json:"orders_per_sec_vs_mutex_cycles_per_sec"`
		// DeliveriesVsPuts is deliveries/s over bare puts/s.
		DeliveriesVsPuts float64 `json:"deliveries_per_sec_vs_puts_per_sec"`
		// CPUCeiling is the CPU time of a bare mutex cycle over that of an
		// order (all deliveries and processing): the highest OrdersVsMutex
		// a CPU-bound machine allows.
		CPUCeiling float64 `json:"cpu_ceiling_orders_vs_mutex_cycles"`
	} `json:"ratios"`
	Memory struct {
		// End is VmRSS per process at the end, in KiB; "load" is this
		// process (simulators, load generator and, if embedded, etcd).
		End map[string]int `json:"end_rss_kib"`
		// CPUSeconds is user+system CPU time per process at the end.
		CPUSeconds map[string]float64 `json:"cpu_seconds"`
		// AtHalf is the first sample taken once half of the deliveries
		// were answered; AtSent right after the last one.
		AtHalf  *rssSample  `json:"at_half_deliveries,omitempty"`
		AtSent  *rssSample  `json:"at_all_deliveries,omitempty"`
		Samples []rssSample `json:"samples"`
	} `json:"memory"`
	Problems []string `json:"problems,omitempty"`
}

type deliveryStats struct {
	Planned    int                       `json:"planned"`
	Attempts   int                       `json:"attempts"`
	Retries    int                       `json:"retries"`
	Failed     int                       `json:"failed"`
	Statuses   map[string]int            `json:"statuses"`
	Recorded   int                       `json:"recorded"`
	Duplicate  int                       `json:"duplicate"`
	Ignored    int                       `json:"ignored"`
	Seconds    float64                   `json:"seconds"`
	PerSec     float64                   `json:"per_sec"`
	AckLatency latencySummary            `json:"ack_latency_ms"`
	ByKind     map[string]latencySummary `json:"ack_latency_ms_by_answer"`
	// Windows is the acknowledgement latency of the tries started in each
	// successive window of the run's -window, to tell a start-up transient or a
	// passing disturbance from a steady tail.
	Windows []latencySummary `json:"ack_latency_ms_by_window"`
	// NotOK counts the tries not answered 200 (any other status, or no
	// answer), in all and in each window: BigCommerce blocklists a
	// destination whose success ratio falls below 90 % over two minutes.
	NotOK         int   `json:"tries_not_ok"`
	NotOKByWindow []int `json:"tries_not_ok_by_window"`
	// Hops is each service's own view of the same acknowledgements.
	Hops *hops `json:"server_side,omitempty"`
	// firstSent is when each order's first delivery was sent.
	firstSent map[uint64]time.Time
}

type latencySummary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

type afterSubmitStats struct {
	Deliveries deliveryStats `json:"deliveries"`
	// Per delivery:
	SupplierCalls    float64    `json:"supplier_calls_per_delivery"`
	BigCommerceCalls float64    `json:"bigcommerce_calls_per_delivery"`
	Etcd             etcdCounts `json:"etcd_per_delivery"`
	Total            etcdCounts `json:"etcd_total"`
}

// etcdCounts are counters of the etcd server. Requests are gRPC calls
// handled (any code); Writes are raft proposals committed (every Put,
// DeleteRange, non-read-only Txn, LeaseGrant and LeaseRevoke is one);
// Reads are Range calls plus read-only Txn calls; Mvcc* count the key
// operations inside them (a Txn of 3 ops counts 3).
type etcdCounts struct {
	Requests        float64 `json:"requests"`
	Reads           float64 `json:"reads"`
	Writes          float64 `json:"writes"`
	Range           float64 `json:"range"`
	Txn             float64 `json:"txn"`
	Put             float64 `json:"put"`
	DeleteRange     float64 `json:"delete_range"`
	LeaseGrant      float64 `json:"lease_grant"`
	LeaseRevoke     float64 `json:"lease_revoke"`
	WatchStreams    float64 `json:"watch_streams"`
	MvccRange       float64 `json:"mvcc_range"`
	MvccPut         float64 `json:"mvcc_put"`
	MvccDelete      float64 `json:"mvcc_delete"`
	MvccTxn         float64 `json:"mvcc_multi_op_txn"`
	LeaseKeepAlives float64 `json:"lease_keepalives"`
	// WALFsyncs and WALFsyncSeconds are the server's write-ahead-log
	// fsyncs and the time they took (in a per-order view: per order).
	WALFsyncs       float64 `json:"wal_fsyncs"`
	WALFsyncSeconds float64 `json:"wal_fsync_seconds"`
	// WALFsyncP99Ms and BackendCommitP99Ms are the upper bounds of the
	// histogram buckets that hold the 99th percentile WAL fsync and the
	// 99th percentile commit of the backend (bbolt, every 100 ms, which
	// holds up applies while it runs); etcd's buckets double from 1 ms.
	// Set on a run's totals only.
	WALFsyncP99Ms      float64 `json:"wal_fsync_p99_ms,omitempty"`
	BackendCommitP99Ms float64 `json:"backend_commit_p99_ms,omitempty"`
	// hists are etcd's duration histograms, by metric: cumulative counts
	// by bucket bound in seconds (the +Inf bucket holds the count). Left
	// out of div.
	hists map[string]histogram
	// Gauges, not counters: left out of sub and div.
	dbBytes, keys float64
}

// The etcd histograms the load report reads.
const (
	histWALFsync      = "etcd_disk_wal_fsync_duration_seconds"
	histBackendCommit = "etcd_disk_backend_commit_duration_seconds"
)

// p99 returns the bound, in ms, of the first bucket of histogram name
// that holds 99 % of its observations, or 0 without any.
func (c etcdCounts) p99(name string) float64 {
	return c.hists[name].p99Ms()
}

// meanFsyncMs is the mean WAL fsync time.
func (c etcdCounts) meanFsyncMs() float64 {
	if c.WALFsyncs == 0 {
		return 0
	}
	return round3(c.WALFsyncSeconds / c.WALFsyncs * 1000)
}

type machineCPU struct {
	Seconds    float64 `json:"seconds"`
	BusyCores  float64 `json:"machine_busy_cores"`
	OurCores   float64 `json:"our_processes_cores"`
	OtherCores float64 `json:"other_processes_cores"`
	StealCores float64 `json:"steal_cores"`
}

// cpuMark is a reading of the machine's and this run's CPU time.
type cpuMark struct {
	at          time.Time
	busy, steal float64 // seconds, all CPUs
	ours        float64
}

func (r *loadRun) markCPU() cpuMark {
	m := cpuMark{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f); i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			switch i {
			case 4, 5: // idle, iowait
			case 8:
				m.steal = v / 100
			default:
				if i <= 7 {
					m.busy += v / 100
				}
			}
		}
	}
	for _, pid := range r.pidsWithSelf() {
		if c, ok := procCPU(pid); ok {
			m.ours += c
		}
	}
	r.procMu.Lock()
	m.ours += r.deadCPU
	r.procMu.Unlock()
	return m
}

func cpuBetween(a, b cpuMark) machineCPU {
	sec := b.at.Sub(a.at).Seconds()
	if sec <= 0 {
		return machineCPU{}
	}
	c := machineCPU{
		Seconds:    round3(sec),
		BusyCores:  round3((b.busy - a.busy) / sec),
		OurCores:   round3((b.ours - a.ours) / sec),
		StealCores: round3((b.steal - a.steal) / sec),
	}
	c.OtherCores = round3(max(c.BusyCores-c.OurCores, 0))
	return c
}

type rssSample struct {
	Seconds   float64        `json:"seconds"`
	Delivered int64          `json:"delivered"`
	Submitted int            `json:"submitted"`
	RSSKiB    map[string]int `json:"rss_kib"`
}

// loadRun is the state of one run.
type loadRun struct {
	cfg loadConfig
	say func(format string, a ...any)
	rep *loadReport
	// problemsMu guards rep.Problems while deliveries are sent.
	problemsMu sync.Mutex
	dir        string
	prefix     string
	etcdURLs   []string
	embedded   *embed.Etcd
	cluster    *etcdtest.Cluster // -etcd-members > 1
	cli        *clientv3.Client
	bc         *bcsim.Server
	ts         *tropsim.Server
	servers    []*http.Server
	bins       stack.Binaries
	tee        *os.File
	// replicaEnv is each replica's environment, to start it again.
	replicaEnv []map[string]string

	// procMu guards what a -fault changes while the run goes on.
	procMu  sync.Mutex
	procs   []*stack.Proc // replicas, then the gateway
	pids    map[string]int
	killed  map[*stack.Proc]bool // killed on purpose: their exit is no failure
	deadCPU float64              // CPU seconds of killed processes

	sender *webhook.Sender
	// gatewayURL and metricsURLs (the replicas' METRICS_ADDR) serve the
	// services' own metrics: their side of each acknowledgement.
	gatewayURL  string
	metricsURLs []string
	hc          *http.Client
	polls       atomic.Int64 // count-only reads of the state index, subtracted
	prof        *profiler    // nil unless -profile

	delivered atomic.Int64
	// done follows the orders done while the measured run goes on.
	done     *doneCounter
	sampleMu sync.Mutex
	samples  []rssSample
}

// runLoadTest runs one load test and returns its report; progress goes to
// progress. The report is returned with what was measured even when the
// run failed part way.
func runLoadTest(ctx context.Context, cfg loadConfig, progress io.Writer) (rep *loadReport, err error) {
	r := &loadRun{cfg: cfg, rep: &loadReport{}, killed: map[*stack.Proc]bool{}}
	// The fault's goroutine reports too, while the run goes on.
	var sayMu sync.Mutex
	r.say = func(format string, a ...any) {
		sayMu.Lock()
		defer sayMu.Unlock()
		fmt.Fprintf(progress, "load: "+format+"\n", a...)
	}
	rep = r.rep
	rep.Conditions.Start = time.Now().UTC()
	rep.Conditions.GoVersion = runtime.Version()
	rep.Conditions.CPUs = runtime.NumCPU()
	rep.Conditions.LoadAvgStart = loadAvg()
	rep.Config.Orders, rep.Config.Dup, rep.Config.Mix = cfg.Orders, cfg.Dup, cfg.Mix
	rep.Config.Rate, rep.Config.Concurrency, rep.Config.Replicas = cfg.Rate, cfg.Concurrency, cfg.Replicas
	rep.Config.Workers = cmp.Or(cfg.Workers, 16)
	rep.Config.IntakeReplicas, rep.Config.ProcessNice, rep.Config.ProcessProcs = cfg.IntakeReplicas, cfg.ProcessNice, cfg.ProcessProcs
	rep.Config.Spread = cfg.Spread
	rep.Config.WriteBack = cfg.WriteBack
	rep.Config.EtcdMembers = cfg.EtcdMembers
	if cfg.Fault != "" {
		rep.Config.Fault, rep.Config.FaultDownMs = cfg.Fault, ms(cfg.FaultDown)
	}
	rep.Config.TropShipLookup = cfg.TropShipLookup
	rep.Config.TropShipTimeoutMs, rep.Config.LookupSettleMs = ms(cfg.TropShipTimeout), ms(cfg.TropShipLookupSettle)
	rep.Config.TropShipBreaker = cfg.TropShipBreaker
	if cfg.BCQuota > 0 {
		rep.Config.BCQuota, rep.Config.BCWindowMs = cfg.BCQuota, ms(cfg.BCWindow)
	}
	rep.Config.BCQuotaBurst, rep.Config.BCOtherApps = cfg.BCQuotaBurst, cfg.BCOtherApps
	rep.Config.BCNoSideLoad = cfg.BCNoSideLoad
	rep.Config.SupplierLatencyMs = ms(cfg.SupplierLatency)
	rep.Config.Lines, rep.Config.BenchOps, rep.Config.Seed = cfg.Lines, cfg.BenchOps, cfg.Seed
	rep.Config.FirstStatus = cfg.FirstStatus
	rep.Config.History, rep.Config.ProbeMs = cfg.History, ms(cfg.Probe)
	rep.Config.WindowMs = ms(cfg.Window)
	rep.Memory.End = map[string]int{}
	rep.Memory.CPUSeconds = map[string]float64{}
	// A stable prefix would leave the last run's keys in an external etcd.
	r.prefix = fmt.Sprintf("/backorder-load-%d-%x/", time.Now().Unix(), rand.Uint32())
	rep.Conditions.Prefix = r.prefix

	r.dir, err = os.MkdirTemp("", "backorder-load-")
	if err != nil {
		return rep, err
	}
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		rep.Conditions.LoadAvgEnd = loadAvg()
		if cfg.KeepLogs {
			r.say("logs and binaries kept in %s", r.dir)
		} else {
			os.RemoveAll(r.dir)
		}
	}()
	if err := r.start(ctx); err != nil {
		return rep, err
	}
	if err := r.measure(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// start builds and starts everything.
func (r *loadRun) start(ctx context.Context) error {
	cfg := r.cfg
	r.say("building the services...")
	bins, err := stack.Build(ctx, r.dir, false, false)
	if err != nil {
		return err
	}
	r.bins = bins

	// etcd: the one given, or an embedded member in this process.
	if cfg.EtcdEndpoints != "" {
		for _, e := range strings.Split(cfg.EtcdEndpoints, ",") {
			if e = strings.TrimSpace(e); e != "" {
				r.etcdURLs = append(r.etcdURLs, e)
			}
		}
		r.rep.Conditions.Etcd = "external: " + strings.Join(r.etcdURLs, ",")
	} else if cfg.EtcdMembers > 1 {
		r.rep.Conditions.EtcdDataDir = filepath.Join(r.dir, "etcd")
		var opts []etcdtest.Option
		if cfg.Fault == faultQuorumLoss {
			opts = append(opts, etcdtest.WithPeerGates())
		}
		c, err := etcdtest.NewCluster(cfg.EtcdMembers, r.rep.Conditions.EtcdDataDir, opts...)
		if err != nil {
			return err
		}
		r.cluster = c
		r.etcdURLs = c.Endpoints()
		r.rep.Conditions.Etcd = fmt.Sprintf("embedded %d-member cluster in the load process (%s), data on %s; its metrics are the process's, so key operations and WAL fsyncs are those of all members",
			cfg.EtcdMembers, strings.Join(r.etcdURLs, ","), fsOf(r.rep.Conditions.EtcdDataDir))
	} else {
		r.rep.Conditions.EtcdDataDir = filepath.Join(r.dir, "etcd")
		e, err := etcdtest.StartSingle(ctx, "load", r.rep.Conditions.EtcdDataDir)
		if err != nil {
			return err
		}
		r.embedded = e
		r.etcdURLs = []string{"http://" + e.Clients[0].Addr().String()}
		r.rep.Conditions.Etcd = "embedded single member in the load process (" + r.etcdURLs[0] + "), data on " + fsOf(r.rep.Conditions.EtcdDataDir)
	}
	r.cli, err = clientv3.New(clientv3.Config{Endpoints: r.etcdURLs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	if _, err := r.fetchEtcdMetrics(ctx); err != nil {
		return fmt.Errorf("etcd metrics (needed to count requests): %w", err)
	}
	r.say("etcd: %s", r.rep.Conditions.Etcd)
	if err := r.writeHistory(ctx, cfg.History); err != nil {
		return err
	}

	// The simulators, in this process.
	r.bc = bcsim.New(bcsim.Options{Tokens: map[string]string{loadStore: loadBCToken}, Quota: cfg.BCQuota, Window: cfg.BCWindow, NoSideLoad: cfg.BCNoSideLoad})
	r.ts = tropsim.New(tropsim.Options{ClientID: loadTSID, ClientSecret: loadTSSecret})
	r.ts.SetFaults(tropsim.Faults{Latency: cfg.SupplierLatency})
	var simURLs []string
	for _, h := range []http.Handler{r.bc, r.ts} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		r.servers = append(r.servers, srv)
		simURLs = append(simURLs, "http://"+l.Addr().String())
	}
	lines := bcsim.Lines(cfg.Lines)
	for i := range cfg.Orders {
		r.bc.AddOrder(loadStore, bcsim.NewUKOrder(uint64(loadFirstOrder+i), cfg.FirstStatus, lines...))
	}
	r.say("simulators: BigCommerce %s (%d orders seeded, status %d), TropShip %s (latency %s, live)", simURLs[0], cfg.Orders, cfg.FirstStatus, simURLs[1], cfg.SupplierLatency)

	// The services, as processes.
	if cfg.Verbose {
		r.tee = os.Stderr
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return err
		}
		r.prof = &profiler{dir: cfg.ProfileDir, seconds: max(1, cfg.ProfileSeconds), addrs: map[string]string{}}
	}
	// debugEnv gives a service a DEBUG_ADDR when profiles are taken.
	debugEnv := func(name string, env map[string]string) (map[string]string, error) {
		if r.prof == nil {
			return env, nil
		}
		a, err := stack.FreeAddr()
		if err != nil {
			return nil, err
		}
		env["DEBUG_ADDR"], r.prof.addrs[name] = a, a
		return env, nil
	}
	var targets, intakeTargets []string
	for i := range cfg.Replicas + cfg.IntakeReplicas {
		addr, err := stack.FreeAddr()
		if err != nil {
			return err
		}
		name, role := replicaName(i, cfg.Replicas), "all"
		switch {
		case i >= cfg.Replicas:
			role = "intake"
		case cfg.IntakeReplicas > 0:
			role = "process"
		}
		maddr, err := stack.FreeAddr()
		if err != nil {
			return err
		}
		r.metricsURLs = append(r.metricsURLs, "http://"+maddr)
		env, err := debugEnv(name, map[string]string{
			"LISTEN_ADDR": addr, "METRICS_ADDR": maddr,
			"ETCD_ENDPOINTS": strings.Join(r.etcdURLs, ","), "ETCD_PREFIX": r.prefix,
			"BIGCOMMERCE_API_URL": simURLs[0], "BIGCOMMERCE_STORE_HASH": loadStore,
			"BIGCOMMERCE_ACCESS_TOKEN": loadBCToken,
			"TROPSHIP_BASE_URL":        simURLs[1], "TROPSHIP_CLIENT_ID": loadTSID,
			"TROPSHIP_CLIENT_SECRET": loadTSSecret, "TROPSHIP_MODE": "live",
			"LOG_LEVEL": "warn", "SWEEP_INTERVAL": "1s",
			"BIGCOMMERCE_WRITE_BACK": strconv.FormatBool(cfg.WriteBack),
			"ROLE":                   role,
		})
		if cfg.Workers > 0 {
			env["WORKERS"] = strconv.Itoa(cfg.Workers)
		}
		if cfg.BCQuotaBurst != "" {
			env["BIGCOMMERCE_QUOTA_BURST"] = cfg.BCQuotaBurst
		}
		if cfg.TropShipLookup {
			env["TROPSHIP_LOOKUP"] = "true"
		}
		if cfg.TropShipTimeout > 0 {
			env["TROPSHIP_TIMEOUT"] = cfg.TropShipTimeout.String()
		}
		if cfg.TropShipLookupSettle > 0 {
			env["TROPSHIP_LOOKUP_SETTLE"] = cfg.TropShipLookupSettle.String()
		}
		if cfg.TropShipBreaker != "" {
			env["TROPSHIP_BREAKER"] = cfg.TropShipBreaker
		}
		if cfg.ProcessProcs > 0 && role != "intake" {
			env["GOMAXPROCS"] = strconv.Itoa(cfg.ProcessProcs)
		}
		if err != nil {
			return err
		}
		p, err := stack.Start(name, bins.Fulfillment, env, r.tee)
		if err != nil {
			return err
		}
		r.procs = append(r.procs, p)
		r.replicaEnv = append(r.replicaEnv, env)
		if role == "intake" {
			intakeTargets = append(intakeTargets, addr)
			continue
		}
		targets = append(targets, addr)
		if cfg.ProcessNice != 0 {
			if err := p.Renice(cfg.ProcessNice); err != nil {
				return err
			}
		}
	}
	if len(intakeTargets) > 0 {
		targets = intakeTargets // the gateway's: the processing replicas take none
	}
	for _, p := range r.procs {
		if err := p.WaitGRPC(wctx); err != nil {
			return err
		}
	}
	gwAddr, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	gwEnv, err := debugEnv("webhook-gateway", map[string]string{
		"LISTEN_ADDR": gwAddr, "FULFILLMENT_ADDR": strings.Join(targets, ","),
		"BIGCOMMERCE_CLIENT_SECRET": loadSecret, "ADMIN_TOKEN": loadAdminToken, "LOG_LEVEL": "warn",
	})
	if err != nil {
		return err
	}
	gw, err := stack.Start("webhook-gateway", bins.Gateway, gwEnv, r.tee)
	if err != nil {
		return err
	}
	r.procs = append(r.procs, gw)
	if err := gw.WaitHTTP(wctx, "/readyz"); err != nil {
		return err
	}
	r.pids = childPIDs()
	r.say("services: %d fulfillment replicas, the gateway's %v, gateway http://%s", cfg.Replicas+cfg.IntakeReplicas, targets, gwAddr)

	r.hc = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: 2 * cfg.Concurrency, MaxIdleConnsPerHost: 2 * cfg.Concurrency,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		},
	}
	r.sender = &webhook.Sender{URL: "http://" + gwAddr + "/v1/webhooks/bigcommerce", ClientSecret: loadSecret, Client: r.hc}
	r.gatewayURL = "http://" + gwAddr
	return nil
}

// replicaName names the i-th fulfillment replica: the -replicas first, then
// the -intake-replicas.
func replicaName(i, replicas int) string {
	if i >= replicas {
		return fmt.Sprintf("fulfillment-intake-%d", i-replicas)
	}
	return fmt.Sprintf("fulfillment-%d", i)
}

// measure runs the phases and fills the report.
func (r *loadRun) measure(ctx context.Context) error {
	cfg, rep := r.cfg, r.rep

	// The deliveries: every event of every order, Dup times, shuffled.
	var deliveries []webhook.Event
	first := map[uint64]webhook.Event{}
	for i := range cfg.Orders {
		id := uint64(loadFirstOrder + i)
		for _, scope := range cfg.Mix {
			ev := webhook.New(scope, loadStore, loadStoreID, id)
			if scope == webhook.ScopeOrderStatusUpdated {
				previous := cfg.FirstStatus
				if previous == bcsim.StatusAwaitingFulfillment {
					previous = bcsim.StatusPending
				}
				ev.Data.Status = &webhook.StatusChange{PreviousStatusID: previous, NewStatusID: bcsim.StatusAwaitingFulfillment}
			}
			if _, ok := first[id]; !ok {
				first[id] = ev
			}
			for range cfg.Dup {
				deliveries = append(deliveries, ev)
			}
		}
	}
	deliveries = arrange(deliveries, cfg.Spread, cfg.Seed)
	mode := fmt.Sprintf("closed loop, %d in flight", cfg.Concurrency)
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f/s, at most %d in flight", cfg.Rate, cfg.Concurrency)
	}
	r.say("sending %d deliveries (%d orders x %d events x %d), %s...", len(deliveries), cfg.Orders, len(cfg.Mix), cfg.Dup, mode)

	before, err := r.fetchEtcdMetrics(ctx)
	if err != nil {
		return err
	}
	bcBefore, tsBefore := r.bc.Stats(), r.ts.Ledger().Counts
	cpu0 := r.markCPU()

	// Until every order is SUBMITTED, followed from the first delivery on
	// (orders may all be SUBMITTED before the last duplicate is sent) by
	// one count-only range on the state index and a watch from there; the
	// range is subtracted from the counts below. ListOrders would cost etcd
	// one read per listed order and swamp what is being measured; it is
	// used once, at the end.
	dctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	if r.done, err = r.followDone(dctx); err != nil {
		return err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	samplingDone := make(chan struct{})
	go func() { defer close(samplingDone); r.sampleRSS(sctx, len(deliveries)) }()

	start := time.Now()
	type watched struct {
		n      int
		doneAt time.Time
		err    error
	}
	watch := make(chan watched, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		n, doneAt, err := r.waitSubmitted(wctx)
		watch <- watched{n, doneAt, err}
	}()
	octx, stopOthers := context.WithCancel(ctx)
	defer stopOthers()
	othersDone := make(chan int, 1)
	go func() { othersDone <- r.otherApps(octx, cfg.BCOtherApps) }()
	faultDone := make(chan struct{})
	if cfg.Fault != "" {
		fctx, stopFault := context.WithCancel(ctx)
		defer func() { stopFault(); <-faultDone }()
		go func() { defer close(faultDone); r.injectFault(fctx, len(deliveries), start) }()
	} else {
		close(faultDone)
	}
	probed := make(chan *probeStats, 1)
	pctx, stopProbing := context.WithCancel(ctx)
	defer stopProbing()
	if cfg.Probe > 0 {
		go func() { probed <- r.probe(pctx, cfg.Probe) }()
	}
	r.prof.start(ctx)
	defer func() {
		if r.prof == nil {
			return
		}
		if err := r.prof.wait(); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		} else {
			r.say("CPU profiles of the first %d s written to %s (go tool pprof -top FILE)", r.prof.seconds, r.prof.dir)
		}
	}()
	hopsBefore := r.hopHistograms(ctx)
	rep.Deliveries = r.send(ctx, deliveries)
	sent := time.Now()
	rep.Deliveries.Hops = hopsBetween(hopsBefore, r.hopHistograms(ctx))
	rep.Memory.AtSent = r.takeSample(start)
	r.say("sent in %.1f s: %.0f deliveries/s, ack p50 %.1f ms, p99 %.1f ms; statuses %v",
		rep.Deliveries.Seconds, rep.Deliveries.PerSec, rep.Deliveries.AckLatency.P50, rep.Deliveries.AckLatency.P99, rep.Deliveries.Statuses)
	if ctx.Err() != nil {
		stopSampling()
		return ctx.Err()
	}
	var w watched
	select {
	case w = <-watch:
	case <-time.After(cfg.Timeout):
		stopWatch()
		w = <-watch
		w.err = fmt.Errorf("not all SUBMITTED %s after the last delivery (-timeout)", cfg.Timeout)
	}
	if cfg.Probe > 0 {
		stopProbing()
		rep.Probes = <-probed
		rep.Probes.Orders = r.orderCounts(ctx)
	}
	// The fault's victim is back before anything is counted.
	<-faultDone
	if f := rep.Fault; f != nil && f.Error != "" {
		rep.Problems = append(rep.Problems, "fault "+f.Kind+": "+f.Error)
	}
	rep.EndToEnd.Submitted, rep.EndToEnd.All = w.n, w.n == cfg.Orders
	if !w.doneAt.IsZero() {
		rep.EndToEnd.Seconds = w.doneAt.Sub(start).Seconds()
		rep.EndToEnd.OrdersPerSec = float64(cfg.Orders) / rep.EndToEnd.Seconds
		r.say("all %d orders SUBMITTED %.1f s after the first delivery (%+.1f s from the last): %.1f orders/s",
			w.n, rep.EndToEnd.Seconds, w.doneAt.Sub(sent).Seconds(), rep.EndToEnd.OrdersPerSec)
	} else {
		rep.Problems = append(rep.Problems, fmt.Sprintf("only %d of %d orders SUBMITTED: %v", w.n, cfg.Orders, w.err))
		r.say("only %d of %d orders SUBMITTED: %v", w.n, cfg.Orders, w.err)
	}
	after, err := r.quiesce(ctx)
	if err != nil {
		stopSampling()
		return err
	}
	rep.Conditions.CPU = cpuBetween(cpu0, r.markCPU())
	rep.EndToEnd.CPUMsPerOrder = round3(rep.Conditions.CPU.OurCores * rep.Conditions.CPU.Seconds / float64(cfg.Orders) * 1000)
	rep.Etcd.DBBytes, rep.Etcd.Keys = after.dbBytes, after.keys
	total := after.sub(before)
	polls := r.polls.Load()
	total.Range -= float64(polls)
	total.MvccRange -= float64(polls)
	total.finish()
	total.WALFsyncP99Ms, total.BackendCommitP99Ms = total.p99(histWALFsync), total.p99(histBackendCommit)
	rep.Etcd.Total, rep.Etcd.PerOrder, rep.Etcd.Polls = total, total.div(float64(cfg.Orders)), int(polls)
	stopOthers()
	rep.BigCommerce.OtherAppsRefused = <-othersDone
	bcAfter, ledger := r.bc.Stats(), r.ts.Ledger()
	rep.BigCommerce.Stats = subStats(bcAfter, bcBefore)
	rep.BigCommerce.Calls = rep.BigCommerce.Stats.Total
	rep.BigCommerce.CallsPerOrder = float64(rep.BigCommerce.Calls) / float64(cfg.Orders)
	rep.BigCommerce.ResetWaits, rep.BigCommerce.SpreadWaits, rep.Supplier.BreakerHeld = r.replicaCounters(ctx)
	rep.Supplier.LiveOrders, rep.Supplier.ExtraOrders = len(ledger.Orders), ledger.ExtraOrders
	rep.Supplier.DuplicateReferences = ledger.DuplicateReferences
	rep.Supplier.Requests = ledger.Requests - tsBefore.Requests
	rep.Supplier.TokensIssued = ledger.TokensIssued - tsBefore.TokensIssued
	rep.Supplier.FailedAfterCreate = ledger.FailedAfterCreate - tsBefore.FailedAfterCreate
	rep.Supplier.TimedOutAfterCreate = ledger.TimedOutAfterCreate - tsBefore.TimedOutAfterCreate
	rep.Supplier.Throttled = ledger.Throttled - tsBefore.Throttled
	rep.Supplier.Lookups = ledger.Lookups - tsBefore.Lookups
	if ledger.ExtraOrders != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the supplier ledger has %d duplicate orders", ledger.ExtraOrders))
	}
	listed, toSupplier, err := r.listSubmitted(ctx, rep.Deliveries.firstSent)
	if err != nil {
		rep.Problems = append(rep.Problems, "ListOrders: "+err.Error())
	}
	rep.EndToEnd.ListedSubmitted, rep.EndToEnd.ToSupplier = listed, summarize(toSupplier)

	if cfg.AfterSubmit && rep.EndToEnd.All {
		if err := r.afterSubmit(ctx, first); err != nil {
			stopSampling()
			return err
		}
		if l := r.ts.Ledger(); l.ExtraOrders != 0 {
			rep.Supplier.ExtraOrders, rep.Supplier.DuplicateReferences = l.ExtraOrders, l.DuplicateReferences
			rep.Problems = append(rep.Problems, fmt.Sprintf("after the after-submit phase the supplier ledger has %d duplicate orders", l.ExtraOrders))
		}
	}

	stopSampling()
	<-samplingDone
	end := r.takeSample(start)
	r.sampleMu.Lock()
	rep.Memory.Samples = slices.Clone(r.samples)
	r.sampleMu.Unlock()
	rep.Memory.End = end.RSSKiB
	for name, pid := range r.pidsWithSelf() {
		if cpu, ok := procCPU(pid); ok {
			rep.Memory.CPUSeconds[name] = cpu
		}
	}

	if cfg.BenchOps > 0 {
		if err := r.bench(ctx); err != nil {
			return err
		}
	}
	if rep.Bare.MutexCyclesPerSec > 0 {
		rep.Ratios.OrdersVsMutex = rep.EndToEnd.OrdersPerSec / rep.Bare.MutexCyclesPerSec
	}
	if rep.Bare.PutsPerSec > 0 {
		rep.Ratios.DeliveriesVsPuts = rep.Deliveries.PerSec / rep.Bare.PutsPerSec
	}
	if rep.EndToEnd.CPUMsPerOrder > 0 {
		rep.Ratios.CPUCeiling = round3(rep.Bare.MutexCycleCPUMs / rep.EndToEnd.CPUMsPerOrder)
	}
	return nil
}

// arrange orders the deliveries, which come grouped by order. With spread
// 0 they are shuffled whole: a delivery of any order can come at any time,
// so most orders' first events come in the first part of the run, a surge
// of new orders. With spread N, each delivery moves from its place in the
// grouped list to a random place at most N positions away: orders arrive at
// a steady pace, as in a flash sale, and each one's events and duplicates
// come within about N deliveries of each other.
func arrange(d []webhook.Event, spread int, seed uint64) []webhook.Event {
	rng := rand.New(rand.NewPCG(seed, seed))
	if spread <= 0 {
		rng.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
		return d
	}
	type placed struct {
		at float64
		ev webhook.Event
	}
	p := make([]placed, len(d))
	for i, ev := range d {
		p[i] = placed{at: float64(i) + rng.Float64()*float64(spread), ev: ev}
	}
	slices.SortStableFunc(p, func(a, b placed) int { return cmp.Compare(a.at, b.at) })
	for i := range p {
		d[i] = p[i].ev
	}
	return d
}

// payment turns one order payable once, before its first statusUpdated
// delivery; every copy of that delivery waits for it and sees its error.
type payment struct {
	once sync.Once
	err  error
}

// problem records a problem of the run, from any goroutine.
func (r *loadRun) problem(p string) {
	r.problemsMu.Lock()
	defer r.problemsMu.Unlock()
	r.rep.Problems = append(r.rep.Problems, p)
}

// send delivers every event (retrying answers other than 200 a few times,
// as BigCommerce does) at the configured rate or concurrency.
func (r *loadRun) send(ctx context.Context, deliveries []webhook.Event) deliveryStats {
	cfg := r.cfg
	type result struct {
		lat    []time.Duration // one per try
		at     []time.Duration // when each try started, from start
		status []int
		answer string // recorded, duplicate, ignored, or "" (failed)
	}
	results := make([]result, len(deliveries))
	var start time.Time // set before the first try
	var paid sync.Map   // order id -> *payment (see loadConfig.FirstStatus)
	one := func(i int) {
		defer r.delivered.Add(1)
		res := &results[i]
		if ev := deliveries[i]; cfg.FirstStatus != bcsim.StatusAwaitingFulfillment && ev.Scope == webhook.ScopeOrderStatusUpdated {
			// Once per order, and every copy waits for it: a copy sent
			// before the change would find the order unpaid, and the
			// copies after it are duplicates that change nothing.
			v, _ := paid.LoadOrStore(ev.Data.ID, new(payment))
			pay := v.(*payment)
			pay.once.Do(func() {
				if pay.err = r.bc.SetStatus(loadStore, ev.Data.ID, bcsim.StatusAwaitingFulfillment); pay.err != nil {
					r.problem(fmt.Sprintf("order %d: turning it %d: %v", ev.Data.ID, bcsim.StatusAwaitingFulfillment, pay.err))
				}
			})
			if pay.err != nil {
				res.status = append(res.status, 0)
				return
			}
		}
		for attempt := range loadAttempts {
			req, err := r.sender.Request(ctx, deliveries[i])
			if err != nil {
				res.status = append(res.status, 0)
				return
			}
			t0 := time.Now()
			res.at = append(res.at, t0.Sub(start))
			resp, err := r.hc.Do(req)
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
			}
			res.lat = append(res.lat, time.Since(t0))
			if err != nil {
				res.status = append(res.status, 0)
			} else {
				res.status = append(res.status, resp.StatusCode)
			}
			if err == nil && resp.StatusCode == http.StatusOK {
				var a struct{ Recorded, Duplicate, Ignored bool }
				_ = json.Unmarshal(body, &a)
				switch {
				case a.Duplicate:
					res.answer = "duplicate"
				case a.Recorded:
					res.answer = "recorded"
				case a.Ignored:
					res.answer = "ignored"
				default:
					res.answer = "other"
				}
				break
			}
			if ctx.Err() != nil || attempt == loadAttempts-1 {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
		}
	}

	start = time.Now()
	if cfg.Rate > 0 {
		// A fixed pool of Concurrency senders, fed on schedule: a delivery
		// that finds every sender busy waits for one (at most Concurrency
		// in flight), and no goroutine is started per delivery.
		due := make(chan int)
		var wg sync.WaitGroup
		for range cfg.Concurrency {
			wg.Go(func() {
				for i := range due {
					one(i)
				}
			})
		}
	pace:
		for i := range deliveries {
			at := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					break pace
				case <-time.After(d):
				}
			}
			select {
			case <-ctx.Done():
				break pace
			case due <- i:
			}
		}
		close(due)
		wg.Wait()
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range cfg.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= len(deliveries) {
						return
					}
					one(i)
				}
			})
		}
		wg.Wait()
	}
	elapsed := time.Since(start)

	st := deliveryStats{Planned: len(deliveries), Statuses: map[string]int{}, Seconds: elapsed.Seconds(), ByKind: map[string]latencySummary{},
		firstSent: make(map[uint64]time.Time)}
	var all []time.Duration
	byKind := map[string][]time.Duration{}
	var windows [][]time.Duration
	var notOK []int
	for i, res := range results {
		if len(res.at) > 0 {
			id, at := deliveries[i].Data.ID, start.Add(res.at[0])
			if t, ok := st.firstSent[id]; !ok || at.Before(t) {
				st.firstSent[id] = at
			}
		}
		for j, at := range res.at {
			w := int(at / r.cfg.Window)
			for len(windows) <= w {
				windows = append(windows, nil)
				notOK = append(notOK, 0)
			}
			windows[w] = append(windows[w], res.lat[j])
			if res.status[j] != http.StatusOK {
				notOK[w]++
			}
		}
		st.Attempts += len(res.lat)
		if len(res.status) > 1 {
			st.Retries += len(res.status) - 1
		}
		for _, s := range res.status {
			st.Statuses[strconv.Itoa(s)]++
		}
		all = append(all, res.lat...)
		switch res.answer {
		case "recorded":
			st.Recorded++
		case "duplicate":
			st.Duplicate++
		case "ignored":
			st.Ignored++
		case "":
			st.Failed++
		}
		if res.answer != "" && len(res.lat) > 0 {
			byKind[res.answer] = append(byKind[res.answer], res.lat[len(res.lat)-1])
		}
	}
	st.PerSec = float64(len(deliveries)) / elapsed.Seconds()
	st.AckLatency = summarize(all)
	for k, v := range byKind {
		st.ByKind[k] = summarize(v)
	}
	for i, w := range windows {
		st.Windows = append(st.Windows, summarize(w))
		st.NotOKByWindow = append(st.NotOKByWindow, notOK[i])
		st.NotOK += notOK[i]
	}
	return st
}

// waitSubmitted waits until the done state's index (see doneState) counts
// every order, or ctx ends, and says when it did.
func (r *loadRun) waitSubmitted(ctx context.Context) (int, time.Time, error) {
	for {
		n, at, changed, err := r.done.get()
		if n >= r.cfg.Orders {
			return n, at, nil
		}
		if err != nil {
			return n, time.Time{}, err
		}
		if err := r.exited(); err != nil {
			return n, time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return n, time.Time{}, ctx.Err()
		case <-changed:
		case <-time.After(100 * time.Millisecond): // to notice a process that exited
		}
	}
}

// doneCounter follows the count of the done state's index (see doneState).
//
// It used to be polled with a count-only range every 100 ms. etcd walks
// every key of a counted range, under its index lock, so in a fifteen-minute
// run the polls cost more as orders were done (50 000 keys ten times a
// second by the end), and delayed the very writes being measured.
type doneCounter struct {
	mu      sync.Mutex
	n       int
	at      time.Time     // when n last changed
	changed chan struct{} // closed and replaced when n changes
	err     error         // the watch ended
}

func (c *doneCounter) get() (n int, at time.Time, changed <-chan struct{}, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.at, c.changed, c.err
}

// followDone counts the done state's index once (a count-only range,
// subtracted from etcd's figures) and follows it with a watch from that
// revision: a key created counts one, a key deleted minus one. A watch that
// breaks (a leader stopped by -fault, a compaction) is followed by a new
// count and a new watch. It follows until ctx ends.
func (r *loadRun) followDone(ctx context.Context) (*doneCounter, error) {
	state := strings.TrimPrefix(r.cfg.doneState().String(), "ORDER_STATE_")
	prefix := r.prefix + "index/state/" + state + "/" + loadStore + "/"
	count := func() (int, int64, error) {
		r.polls.Add(1)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := r.cli.Get(cctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, 0, fmt.Errorf("count the %s index: %w", state, err)
		}
		return int(resp.Count), resp.Header.Revision, nil
	}
	n, rev, err := count()
	if err != nil {
		return nil, err
	}
	c := &doneCounter{n: n, at: time.Now(), changed: make(chan struct{})}
	// set makes the count to(the count).
	set := func(to func(int) int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n := to(c.n); n != c.n {
			c.n, c.at = n, time.Now()
			close(c.changed)
			c.changed = make(chan struct{})
		}
	}
	go func() {
		defer func() {
			c.mu.Lock()
			c.err = fmt.Errorf("following the %s index: %w", state, context.Cause(ctx))
			c.mu.Unlock()
		}()
		for {
			wctx, stopWatch := context.WithCancel(clientv3.WithRequireLeader(ctx))
			watch := r.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
			for wr := range watch {
				if wr.Err() != nil {
					break
				}
				d := 0
				for _, ev := range wr.Events {
					switch {
					case ev.Type == clientv3.EventTypeDelete:
						d--
					case ev.IsCreate():
						d++
					}
				}
				set(func(n int) int { return n + d })
			}
			stopWatch()
			// The watch broke: count again, and watch from there.
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				if n, rev, err = count(); err == nil {
					set(func(int) int { return n })
					break
				}
			}
		}
	}()
	return c, nil
}

// quiesce waits until the etcd server has committed no proposal for two
// seconds (work left after the last SUBMITTED: re-runs for events that came
// during processing, unlocks), at most 30 s, and returns its counters.
func (r *loadRun) quiesce(ctx context.Context) (etcdCounts, error) {
	last, err := r.fetchEtcdMetrics(ctx)
	if err != nil {
		return last, err
	}
	stable := time.Now()
	for limit := time.Now().Add(30 * time.Second); time.Now().Before(limit); {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		cur, err := r.fetchEtcdMetrics(ctx)
		if err != nil {
			return last, err
		}
		if cur.Writes != last.Writes {
			stable = time.Now()
		}
		last = cur
		if time.Since(stable) >= 2*time.Second {
			break
		}
	}
	return last, nil
}

// listSubmitted counts done orders (see doneState) with ListOrders, a page
// of 500 at a time, from the first replica, and gives each one's time from
// its first delivery (firstSent) to its submitted_at.
func (r *loadRun) listSubmitted(ctx context.Context, firstSent map[uint64]time.Time) (int, []time.Duration, error) {
	r.procMu.Lock()
	addr := r.procs[0].Addr
	r.procMu.Unlock()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	client := backorderv1.NewFulfillmentServiceClient(conn)
	n, token := 0, ""
	var toSupplier []time.Duration
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := client.ListOrders(cctx, &backorderv1.ListOrdersRequest{
			StoreHash: loadStore, State: r.cfg.doneState(), PageSize: 500, PageToken: token,
		})
		cancel()
		if err != nil {
			return n, toSupplier, err
		}
		for _, o := range resp.GetOrders() {
			if o.GetOfflineOrderId() == "" {
				continue
			}
			n++
			if sent, ok := firstSent[o.GetOrderId()]; ok && o.GetSubmittedAt() != nil {
				toSupplier = append(toSupplier, o.GetSubmittedAt().AsTime().Sub(sent))
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return n, toSupplier, nil
		}
	}
}

// afterSubmit delivers, for every order (now SUBMITTED), one exact
// duplicate of an event seen before and one new event, and measures what
// they cost.
func (r *loadRun) afterSubmit(ctx context.Context, first map[uint64]webhook.Event) error {
	var deliveries []webhook.Event
	for i := range r.cfg.Orders {
		id := uint64(loadFirstOrder + i)
		deliveries = append(deliveries, first[id], webhook.Updated(loadStore, loadStoreID, id))
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed+1, r.cfg.Seed+1))
	rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	r.say("after-submit: %d deliveries to SUBMITTED orders (one exact duplicate, one new event each)...", len(deliveries))
	before, err := r.fetchEtcdMetrics(ctx)
	if err != nil {
		return err
	}
	bcBefore, tsBefore := r.bc.Stats(), r.ts.Ledger().Counts
	polls := r.polls.Load()
	st := r.send(ctx, deliveries)
	after, err := r.quiesce(ctx)
	if err != nil {
		return err
	}
	total := after.sub(before)
	total.Range -= float64(r.polls.Load() - polls)
	total.MvccRange -= float64(r.polls.Load() - polls)
	total.finish()
	n := float64(len(deliveries))
	a := &afterSubmitStats{
		Deliveries:       st,
		SupplierCalls:    float64(r.ts.Ledger().Requests-tsBefore.Requests) / n,
		BigCommerceCalls: float64(r.bc.Stats().Total-bcBefore.Total) / n,
		Etcd:             total.div(n),
		Total:            total,
	}
	r.rep.AfterSubmit = a
	r.say("after-submit: per delivery %.2f supplier calls, %.2f BigCommerce calls, %.2f etcd writes, %.2f etcd reads; ack p99 %.1f ms",
		a.SupplierCalls, a.BigCommerceCalls, a.Etcd.Writes, a.Etcd.Reads, st.AckLatency.P99)
	return nil
}

// bench measures bare puts and bare mutex cycles (lock, one fenced put,
// unlock) on the same etcd, at the same concurrency, under a fresh prefix.
func (r *loadRun) bench(ctx context.Context) error {
	cfg := r.cfg
	prefix := r.prefix + "bench/"
	val := strings.Repeat("v", 256)
	r.rep.Bare.Ops, r.rep.Bare.Concurrency, r.rep.Bare.ValueBytes = cfg.BenchOps, cfg.Concurrency, len(val)
	run := func(op func(ctx context.Context, i int) error) (float64, error) {
		var next atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		start := time.Now()
		for range cfg.Concurrency {
			g.Go(func() error {
				for {
					i := int(next.Add(1) - 1)
					if i >= cfg.BenchOps {
						return nil
					}
					if err := op(gctx, i); err != nil {
						return err
					}
				}
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
		return float64(cfg.BenchOps) / time.Since(start).Seconds(), nil
	}
	var err error
	r.rep.Bare.PutsPerSec, err = run(func(ctx context.Context, i int) error {
		_, err := r.cli.Put(ctx, fmt.Sprintf("%sput/%d", prefix, i), val)
		return err
	})
	if err != nil {
		return fmt.Errorf("bare puts: %w", err)
	}
	// One session, as one fulfillment replica has.
	sess, err := concurrency.NewSession(r.cli, concurrency.WithTTL(10))
	if err != nil {
		return fmt.Errorf("bare mutex: %w", err)
	}
	defer sess.Close()
	cpu0 := r.markCPU()
	r.rep.Bare.MutexCyclesPerSec, err = run(func(ctx context.Context, i int) error {
		m := concurrency.NewMutex(sess, fmt.Sprintf("%slocks/%d/", prefix, i))
		if err := m.Lock(ctx); err != nil {
			return err
		}
		resp, err := r.cli.Txn(ctx).If(m.IsOwner()).Then(clientv3.OpPut(fmt.Sprintf("%srec/%d", prefix, i), val)).Commit()
		if err == nil && !resp.Succeeded {
			err = errors.New("fenced put refused")
		}
		return errors.Join(err, m.Unlock(ctx))
	})
	if err != nil {
		return fmt.Errorf("bare mutex cycles: %w", err)
	}
	r.rep.Bare.MutexCycleCPUMs = round3((r.markCPU().ours - cpu0.ours) / float64(cfg.BenchOps) * 1000)
	r.say("bare etcd at concurrency %d: %.0f puts/s, %.0f mutex cycles/s", cfg.Concurrency, r.rep.Bare.PutsPerSec, r.rep.Bare.MutexCyclesPerSec)
	_, err = r.cli.Delete(ctx, prefix, clientv3.WithPrefix())
	return err
}

// exited reports a service process that ended.
func (r *loadRun) exited() error {
	r.procMu.Lock()
	defer r.procMu.Unlock()
	for _, p := range r.procs {
		if r.killed[p] {
			continue
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.Err(), tail(p.Output(), 4000))
		default:
		}
	}
	return nil
}

// close stops everything, gracefully, in order: the gateway, the replicas,
// the simulators, the client, etcd.
func (r *loadRun) close() error {
	var errs []error
	var procs []*stack.Proc
	r.procMu.Lock()
	for _, p := range r.procs {
		if !r.killed[p] { // killed by -fault and never started again
			procs = append(procs, p)
		}
	}
	r.procMu.Unlock()
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w\n%s", p.Name, err, tail(p.Output(), 2000)))
		}
		if r.cfg.KeepLogs {
			_ = os.WriteFile(filepath.Join(r.dir, p.Name+".log"), []byte(p.Output()), 0o644)
		}
	}
	for _, s := range r.servers {
		s.Close()
	}
	if r.ts != nil {
		r.ts.Close()
	}
	if r.cli != nil {
		if r.embedded == nil && r.cluster == nil && r.prefix != "" {
			// An external etcd keeps no trace of the run.
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = r.cli.Delete(dctx, r.prefix, clientv3.WithPrefix())
			cancel()
		}
		r.cli.Close()
	}
	if r.embedded != nil {
		r.embedded.Close()
	}
	if r.cluster != nil {
		r.cluster.Close()
	}
	return errors.Join(errs...)
}

// fetchEtcdMetrics reads the counters of the first etcd endpoint that
// answers its Prometheus /metrics (served on the client URL). Embedded
// members share this process's registry, so any of them gives the same.
func (r *loadRun) fetchEtcdMetrics(ctx context.Context) (etcdCounts, error) {
	var errs []error
	for _, u := range r.etcdURLs {
		c, err := fetchMetrics(ctx, u)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return etcdCounts{}, errors.Join(errs...)
}

func fetchMetrics(ctx context.Context, endpoint string) (etcdCounts, error) {
	samples, err := scrape(ctx, strings.TrimSuffix(endpoint, "/"), 10*time.Second)
	if err != nil {
		return etcdCounts{}, err
	}
	return countsFrom(samples), nil
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (what etcd's
// /metrics serves), skipping comments.
func parseMetrics(rd io.Reader) ([]metricSample, error) {
	var out []metricSample
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := metricSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i < 0 {
			continue
		} else {
			s.name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			var ok bool
			rest, ok = parseLabels(rest[1:], s.labels)
			if !ok {
				return nil, fmt.Errorf("metrics: cannot read line %q", line)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `a="x",b="y"}` into m and returns what follows the
// closing brace.
func parseLabels(s string, m map[string]string) (string, bool) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], true
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return "", false
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", false
		}
		m[name] = val.String()
		s = s[i+1:]
	}
}

// countsFrom picks etcd's counters out of its metrics.
func countsFrom(samples []metricSample) etcdCounts {
	var c etcdCounts
	for _, s := range samples {
		switch s.name {
		case "grpc_server_handled_total":
			switch s.labels["grpc_method"] {
			case "Range":
				c.Range += s.value
			case "Txn":
				c.Txn += s.value
			case "Put":
				c.Put += s.value
			case "DeleteRange":
				c.DeleteRange += s.value
			case "LeaseGrant":
				c.LeaseGrant += s.value
			case "LeaseRevoke":
				c.LeaseRevoke += s.value
			}
		case "grpc_server_started_total":
			if s.labels["grpc_method"] == "Watch" {
				c.WatchStreams += s.value
			}
		case "grpc_server_msg_received_total":
			if s.labels["grpc_method"] == "LeaseKeepAlive" {
				c.LeaseKeepAlives += s.value
			}
		case "etcd_server_proposals_committed_total":
			c.Writes += s.value
		case "etcd_mvcc_range_total":
			c.MvccRange += s.value
		case "etcd_mvcc_put_total":
			c.MvccPut += s.value
		case "etcd_mvcc_delete_total":
			c.MvccDelete += s.value
		case "etcd_mvcc_txn_total":
			c.MvccTxn += s.value
		case "etcd_mvcc_db_total_size_in_bytes":
			c.dbBytes = s.value
		case "etcd_debugging_mvcc_keys_total":
			c.keys = s.value
		case histWALFsync + "_bucket", histBackendCommit + "_bucket":
			name := strings.TrimSuffix(s.name, "_bucket")
			if c.hists == nil {
				c.hists = map[string]histogram{}
			}
			if c.hists[name] == nil {
				c.hists[name] = histogram{}
			}
			c.hists[name].add(s)
		case "etcd_disk_wal_fsync_duration_seconds_count":
			c.WALFsyncs += s.value
		case "etcd_disk_wal_fsync_duration_seconds_sum":
			c.WALFsyncSeconds += s.value
		}
	}
	return c
}

func (c etcdCounts) sub(o etcdCounts) etcdCounts {
	return etcdCounts{
		Writes: c.Writes - o.Writes, Range: c.Range - o.Range, Txn: c.Txn - o.Txn, Put: c.Put - o.Put,
		DeleteRange: c.DeleteRange - o.DeleteRange, LeaseGrant: c.LeaseGrant - o.LeaseGrant,
		LeaseRevoke: c.LeaseRevoke - o.LeaseRevoke, WatchStreams: c.WatchStreams - o.WatchStreams,
		MvccRange: c.MvccRange - o.MvccRange, MvccPut: c.MvccPut - o.MvccPut,
		MvccDelete: c.MvccDelete - o.MvccDelete, MvccTxn: c.MvccTxn - o.MvccTxn,
		LeaseKeepAlives: c.LeaseKeepAlives - o.LeaseKeepAlives,
		WALFsyncs:       c.WALFsyncs - o.WALFsyncs, WALFsyncSeconds: c.WALFsyncSeconds - o.WALFsyncSeconds,
		hists: subHists(c.hists, o.hists),
	}
}

func subHists(a, b map[string]histogram) map[string]histogram {
	d := make(map[string]histogram, len(a))
	for name, h := range a {
		d[name] = histogram{}
		d[name].addDiff(b[name], h)
	}
	return d
}

// histogram is a cumulative Prometheus histogram: counts by bucket bound
// in seconds, the +Inf bucket holding the count.
type histogram map[float64]float64

// add adds one _bucket sample.
func (h histogram) add(s metricSample) {
	if le, err := strconv.ParseFloat(s.labels["le"], 64); err == nil {
		h[le] += s.value
	}
}

// addDiff adds what was counted from before to after.
func (h histogram) addDiff(before, after histogram) {
	for le, v := range after {
		h[le] += v - before[le]
	}
}

func (h histogram) count() float64 { return h[math.Inf(1)] }

// p99Ms returns, in ms, the bound of the first bucket that holds 99 % of
// the observations, or 0 without any.
func (h histogram) p99Ms() float64 {
	n := h.count()
	if n <= 0 {
		return 0
	}
	for _, le := range slices.Sorted(maps.Keys(h)) {
		if h[le] >= 0.99*n {
			return round3(le * 1000)
		}
	}
	return 0
}

// finish derives Requests and Reads: a Txn that is not a proposal was
// read-only.
func (c *etcdCounts) finish() {
	c.Requests = c.Range + c.Txn + c.Put + c.DeleteRange + c.LeaseGrant + c.LeaseRevoke
	writeTxns := c.Writes - c.Put - c.DeleteRange - c.LeaseGrant - c.LeaseRevoke
	c.Reads = c.Range + max(c.Txn-writeTxns, 0)
}

func (c etcdCounts) div(n float64) etcdCounts {
	r := func(v float64) float64 { return math.Round(v/n*1000) / 1000 }
	return etcdCounts{
		Requests: r(c.Requests), Reads: r(c.Reads), Writes: r(c.Writes), Range: r(c.Range), Txn: r(c.Txn),
		Put: r(c.Put), DeleteRange: r(c.DeleteRange), LeaseGrant: r(c.LeaseGrant), LeaseRevoke: r(c.LeaseRevoke),
		WatchStreams: r(c.WatchStreams), MvccRange: r(c.MvccRange), MvccPut: r(c.MvccPut),
		MvccDelete: r(c.MvccDelete), MvccTxn: r(c.MvccTxn), LeaseKeepAlives: r(c.LeaseKeepAlives),
		WALFsyncs: r(c.WALFsyncs), WALFsyncSeconds: round3(c.WALFsyncSeconds / n),
	}
}

func subStats(a, b bcsim.Stats) bcsim.Stats {
	return bcsim.Stats{
		Order: a.Order - b.Order, Products: a.Products - b.Products, ShippingAddresses: a.ShippingAddresses - b.ShippingAddresses,
		List: a.List - b.List, PutOrder: a.PutOrder - b.PutOrder, MetafieldsGet: a.MetafieldsGet - b.MetafieldsGet,
		MetafieldsPost: a.MetafieldsPost - b.MetafieldsPost, MetafieldsPut: a.MetafieldsPut - b.MetafieldsPut,
		MetafieldsDelete: a.MetafieldsDelete - b.MetafieldsDelete, Total: a.Total - b.Total,
		Unauthorized: a.Unauthorized - b.Unauthorized, RateLimited: a.RateLimited - b.RateLimited,
		Faulted: a.Faulted - b.Faulted, PutOrderExtraFields: a.PutOrderExtraFields - b.PutOrderExtraFields,
		OtherApps: a.OtherApps - b.OtherApps,
	}
}

func summarize(d []time.Duration) latencySummary {
	if len(d) == 0 {
		return latencySummary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return latencySummary{
		Count: len(s), Mean: round3(ms(sum) / float64(len(s))),
		P50: round3(q(0.50)), P90: round3(q(0.90)), P99: round3(q(0.99)), Max: round3(ms(s[len(s)-1])),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// sampleRSS records every process's VmRSS, and how many orders are
// SUBMITTED, every second until ctx ends.
func (r *loadRun) sampleRSS(ctx context.Context, total int) {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := r.takeSample(start)
			if r.rep.Memory.AtHalf == nil && s.Delivered*2 >= int64(total) {
				r.rep.Memory.AtHalf = s
			}
		}
	}
}

func (r *loadRun) takeSample(start time.Time) *rssSample {
	s := rssSample{Seconds: round3(time.Since(start).Seconds()), Delivered: r.delivered.Load(), RSSKiB: map[string]int{}}
	if r.done != nil {
		s.Submitted, _, _, _ = r.done.get()
	}
	for name, pid := range r.pidsWithSelf() {
		if kib, ok := procRSS(pid); ok {
			s.RSSKiB[name] = kib
		}
	}
	r.sampleMu.Lock()
	r.samples = append(r.samples, s)
	r.sampleMu.Unlock()
	return &s
}

func (r *loadRun) pidsWithSelf() map[string]int {
	r.procMu.Lock()
	defer r.procMu.Unlock()
	m := map[string]int{"load": os.Getpid()}
	for _, p := range r.procs {
		if pid, ok := r.pids[p.Addr]; ok {
			m[p.Name] = pid
		}
	}
	return m
}

// childPIDs maps the LISTEN_ADDR of each child process of this one to its
// pid (stack.Proc does not expose its pid).
func childPIDs() map[string]int {
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		addr := ""
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("LISTEN_ADDR=")); ok {
				addr = string(v) // the last one is the one in effect
			}
		}
		if addr != "" {
			out[addr] = pid
		}
	}
	return out
}

// procRSS returns VmRSS of a process in KiB.
func procRSS(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.Atoi(f[0])
				return n, err == nil
			}
		}
	}
	return 0, false
}

// procCPU returns user+system CPU seconds of a process (clock ticks of
// 1/100 s, Linux's USER_HZ).
func procCPU(pid int) (float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (u + s) / 100, true
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// fsOf names the file system type that holds dir (from /proc/mounts).
func fsOf(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, typ := "", "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if (dir == f[1] || strings.HasPrefix(dir, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) > len(best) {
			best, typ = f[1], f[2]
		}
	}
	return fmt.Sprintf("%s (%s, fsync on)", best, typ)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// writeTable prints the report for people.
func (rep *loadReport) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	head := func(s string) { fmt.Fprintf(tw, "%s\t\n", s) }
	c, d := rep.Config, rep.Deliveries
	ackWindow := time.Duration(c.WindowMs * float64(time.Millisecond))
	mode := fmt.Sprintf("concurrency %d", c.Concurrency)
	if c.Rate > 0 {
		mode = fmt.Sprintf("rate %.0f/s (at most %d in flight)", c.Rate, c.Concurrency)
	}
	mix := make([]string, len(c.Mix))
	for i, m := range c.Mix {
		mix[i] = strings.TrimPrefix(m, "store/order/")
	}
	head("RUN")
	row("orders x events x dup", "%d x %d (%s) x %d = %d deliveries, %s", c.Orders, len(c.Mix), strings.Join(mix, ","), c.Dup, d.Planned, mode)
	row("fulfillment replicas", "%d with %d workers each; supplier latency %.0f ms; %d lines per order", c.Replicas, c.Workers, c.SupplierLatencyMs, c.Lines)
	if c.IntakeReplicas > 0 || c.ProcessNice != 0 || c.ProcessProcs != 0 {
		row("replica roles", "%d with ROLE=intake take every delivery; the others process, at nice %d, GOMAXPROCS %d (0: default)", c.IntakeReplicas, c.ProcessNice, c.ProcessProcs)
	}
	if c.FirstStatus != bcsim.StatusAwaitingFulfillment {
		row("orders seeded", "in status %d, turned 11 before their first statusUpdated delivery", c.FirstStatus)
	}
	row("etcd", "%s", rep.Conditions.Etcd)
	if f := rep.Fault; f != nil {
		row("fault", "%s at %.1f s (%d deliveries answered); back at %.1f s", f.What, f.AtSeconds, f.AtDelivered, f.BackSeconds)
		if f.NewLeaderMs > 0 {
			row("", "member %d led %.0f ms after the stop began; the stop took %.0f ms", f.NewLeader, f.NewLeaderMs, f.StopMs)
		}
		if f.Kind == faultQuorumLoss && f.Error == "" {
			lost := "a member led throughout the cut (it had not yet missed its quorum for an election timeout)"
			if f.LeaderLostMs > 0 {
				lost = fmt.Sprintf("no member led from %.0f ms into the cut", f.LeaderLostMs)
			}
			row("", "%s; member %d led %.0f ms after the members could talk again", lost, f.NewLeader, f.LeaderAgainMs)
		}
		if f.Error != "" {
			row("", "failed: %s", f.Error)
		}
	}
	row("machine", "%d CPUs, %s, load average %s at start, %s at end", rep.Conditions.CPUs, rep.Conditions.GoVersion, rep.Conditions.LoadAvgStart, rep.Conditions.LoadAvgEnd)
	if c.TropShipLookup || c.TropShipTimeoutMs > 0 || c.LookupSettleMs > 0 || c.TropShipBreaker != "" {
		row("TropShip settings", "TROPSHIP_LOOKUP %v, TROPSHIP_TIMEOUT %s, TROPSHIP_LOOKUP_SETTLE %s, TROPSHIP_BREAKER %s", c.TropShipLookup,
			orDefault(c.TropShipTimeoutMs), orDefault(c.LookupSettleMs), cmp.Or(c.TropShipBreaker, "default"))
	}
	if c.History > 0 {
		row("history", "%d records of past orders (%s) in etcd before the run", c.History, historyState)
	}
	if u := rep.Conditions.CPU; u.Seconds > 0 {
		row("CPU while measured", "machine busy %.2f cores: this run %.2f, other processes %.2f; steal %.2f (over %.1f s)", u.BusyCores, u.OurCores, u.OtherCores, u.StealCores, u.Seconds)
	}
	if p := rep.Probes; p != nil {
		row("probes", "every %.0f ms: /readyz p50 %.2f p99 %.2f max %.2f ms (%d); replicas' /metrics p50 %.2f p99 %.2f max %.2f ms (%d); %d not answered 200, %d ticks skipped (last probe unanswered)",
			p.EveryMs, p.Readyz.P50, p.Readyz.P99, p.Readyz.Max, p.Readyz.Count, p.Metrics.P50, p.Metrics.P99, p.Metrics.Max, p.Metrics.Count, p.Failed, p.Skipped)
		for i, by := range p.Orders {
			name := replicaName(i, c.Replicas)
			if by == nil {
				row(fmt.Sprintf("  %s's counts", name), "none: the scrape failed, or could not read etcd")
				continue
			}
			var counts []string
			for _, st := range slices.Sorted(maps.Keys(by)) {
				counts = append(counts, fmt.Sprintf("%s %.0f", st, by[st]))
			}
			row(fmt.Sprintf("  %s's counts", name), "%s (backorder_orders, once every order was done)", strings.Join(counts, ", "))
		}
	}
	head("DELIVERIES (gateway acknowledgements)")
	row("deliveries/s", "%.0f (%d in %.2f s)", d.PerSec, d.Planned, d.Seconds)
	row("answers", "recorded %d, duplicate %d, ignored %d, failed %d; HTTP %v; retries %d", d.Recorded, d.Duplicate, d.Ignored, d.Failed, d.Statuses, d.Retries)
	row("ack latency ms", "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (mean %.2f)", d.AckLatency.P50, d.AckLatency.P90, d.AckLatency.P99, d.AckLatency.Max, d.AckLatency.Mean)
	for _, k := range []string{"recorded", "duplicate"} {
		if l, ok := d.ByKind[k]; ok {
			row("  answered "+k, "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", l.P50, l.P90, l.P99, l.Max)
		}
	}
	if len(d.Windows) > 1 {
		var p99s []string
		for _, w := range d.Windows {
			p99s = append(p99s, fmt.Sprintf("%.1f", w.P99))
		}
		row(fmt.Sprintf("  p99 by %s window", ackWindow), "%s", strings.Join(p99s, " "))
		if h := d.Hops; h != nil && h.Count > 0 {
			left := ""
			if h.ReplicasNotCounted > 0 {
				left = fmt.Sprintf("; %d replica(s) left out (restarted or not answering)", h.ReplicasNotCounted)
			}
			row("  services' own p99", "gateway answering a webhook ≤ %g ms, replicas recording a delivery ≤ %g ms, replicas waiting for etcd: Txn ≤ %g ms, Range ≤ %g ms (histogram buckets%s)",
				h.GatewayWebhookP99Ms, h.ReplicaIntakeP99Ms, h.EtcdTxnP99Ms, h.EtcdRangeP99Ms, left)
		}
		if d.NotOK > 0 {
			var worst float64
			var counts []string
			for i, n := range d.NotOKByWindow {
				counts = append(counts, strconv.Itoa(n))
				if c := d.Windows[i].Count; c > 0 {
					worst = max(worst, float64(n)/float64(c))
				}
			}
			row(fmt.Sprintf("  tries not 200 by %s window", ackWindow), "%s (worst window %.1f %% of its tries)", strings.Join(counts, " "), 100*worst)
		}
	}
	head("END TO END")
	e := rep.EndToEnd
	row("orders SUBMITTED", "%d of %d (ListOrders confirms %d)", e.Submitted, c.Orders, e.ListedSubmitted)
	row("orders/s to SUBMITTED", "%.1f (%.2f s from the first delivery)", e.OrdersPerSec, e.Seconds)
	if t := e.ToSupplier; t.Count > 0 {
		row("order's first delivery to supplier", "p50 %.0f / p90 %.0f / p99 %.0f / max %.0f ms (%d orders)", t.P50, t.P90, t.P99, t.Max, t.Count)
	}
	s := rep.Supplier
	row("supplier ledger", "live orders %d, duplicates %d (extra orders), requests %d (tokens %d)", s.LiveOrders, s.ExtraOrders, s.Requests, s.TokensIssued)
	if s.FailedAfterCreate+s.TimedOutAfterCreate+s.Throttled+s.Lookups > 0 || s.BreakerHeld > 0 {
		row("supplier faults", "created then 500: %d, created then no answer: %d, 429: %d; lookups by reference: %d; live orders held back by the breakers: %.0f",
			s.FailedAfterCreate, s.TimedOutAfterCreate, s.Throttled, s.Lookups, s.BreakerHeld)
	}
	b := rep.BigCommerce
	row("BigCommerce calls/order", "%.2f (%d: order %d, products %d, addresses %d, metafields get %d post %d, put order %d)",
		b.CallsPerOrder, b.Calls, b.Stats.Order, b.Stats.Products, b.Stats.ShippingAddresses, b.Stats.MetafieldsGet, b.Stats.MetafieldsPost, b.Stats.PutOrder)
	if c.BCQuota > 0 {
		// The quota spent per order, as measured: 429 and 401 answers
		// spend none (the nominal reads, 2 or 4 as the simulator
		// side-loads lines or not, and the write-back, when nothing was
		// measured).
		perOrder := 2.0
		if c.BCNoSideLoad {
			perOrder = 4
		}
		if c.WriteBack {
			perOrder++
		}
		if spent := b.Stats.Total - b.Stats.RateLimited - b.Stats.Unauthorized; spent > 0 && c.Orders > 0 {
			perOrder = float64(spent) / float64(c.Orders)
		}
		window := time.Duration(c.BCWindowMs * float64(time.Millisecond))
		most := float64(c.BCQuota) / window.Seconds() / perOrder
		row("BigCommerce quota", "%d requests per %s: at most %.1f orders/s (with no other app spending it) at %.2f quota-spending calls each; answered 429 %d times",
			c.BCQuota, window, most, perOrder, b.Stats.RateLimited)
		row("quota waits", "the replicas held %.0f requests for the reset, %.0f to spread the quota (BIGCOMMERCE_QUOTA_BURST %s)",
			b.ResetWaits, b.SpreadWaits, cmp.Or(c.BCQuotaBurst, "default"))
		if c.BCOtherApps > 0 {
			row("other apps", "%.1f requests/s asked: %d spent of the quota, %d refused (none left)", c.BCOtherApps, b.Stats.OtherApps, b.OtherAppsRefused)
		}
	}
	head("ETCD PER ORDER (reads and writes)")
	p := rep.Etcd.PerOrder
	row("requests", "%.2f: reads %.2f, writes (raft proposals) %.2f", p.Requests, p.Reads, p.Writes)
	row("by call", "Range %.2f, Txn %.2f, Put %.2f, DeleteRange %.2f, LeaseGrant %.3f; Watch streams %.2f", p.Range, p.Txn, p.Put, p.DeleteRange, p.LeaseGrant, p.WatchStreams)
	row("key operations", "range %.2f, put %.2f, delete %.2f (multi-op txns %.2f)", p.MvccRange, p.MvccPut, p.MvccDelete, p.MvccTxn)
	row("WAL fsyncs", "%.2f per order, mean %.2f ms, 99 %% within %g ms (%.0f in the run); backend commits: 99 %% within %g ms",
		p.WALFsyncs, rep.Etcd.Total.meanFsyncMs(), rep.Etcd.Total.WALFsyncP99Ms, rep.Etcd.Total.WALFsyncs, rep.Etcd.Total.BackendCommitP99Ms)
	row("etcd size after", "%.1f MiB database, %.0f live keys", rep.Etcd.DBBytes/(1<<20), rep.Etcd.Keys)
	if a := rep.AfterSubmit; a != nil {
		head("DELIVERIES TO SUBMITTED ORDERS (per delivery)")
		row("deliveries", "%d at %.0f/s; ack p50 %.2f  p99 %.2f  max %.2f ms", a.Deliveries.Planned, a.Deliveries.PerSec, a.Deliveries.AckLatency.P50, a.Deliveries.AckLatency.P99, a.Deliveries.AckLatency.Max)
		row("supplier / BigCommerce calls", "%.3f / %.3f", a.SupplierCalls, a.BigCommerceCalls)
		row("etcd", "writes %.3f (key puts %.3f), reads %.3f, requests %.3f", a.Etcd.Writes, a.Etcd.MvccPut, a.Etcd.Reads, a.Etcd.Requests)
	}
	head("BARE ETCD (same etcd, same run)")
	if rep.Bare.Ops == 0 {
		row("not measured", "-bench-ops 0: CPU per order %.3f ms", rep.EndToEnd.CPUMsPerOrder)
	} else {
		row("puts/s", "%.0f (%d ops, concurrency %d, %d-byte values)", rep.Bare.PutsPerSec, rep.Bare.Ops, rep.Bare.Concurrency, rep.Bare.ValueBytes)
		row("mutex cycles/s", "%.0f (lock, one fenced put, unlock)", rep.Bare.MutexCyclesPerSec)
		row("orders/s vs mutex cycles/s", "%.3f (target >= 0.5)", rep.Ratios.OrdersVsMutex)
		row("CPU per mutex cycle / per order", "%.3f ms / %.3f ms: a CPU-bound machine allows at most %.3f", rep.Bare.MutexCycleCPUMs, rep.EndToEnd.CPUMsPerOrder, rep.Ratios.CPUCeiling)
		row("deliveries/s vs puts/s", "%.3f", rep.Ratios.DeliveriesVsPuts)
	}
	head("MEMORY (VmRSS, MiB) AND CPU (s)")
	for _, name := range slices.Sorted(maps.Keys(rep.Memory.End)) {
		half, sent := "-", "-"
		if rep.Memory.AtHalf != nil {
			half = mib(rep.Memory.AtHalf.RSSKiB[name])
		}
		if rep.Memory.AtSent != nil {
			sent = mib(rep.Memory.AtSent.RSSKiB[name])
		}
		row(name, "%s at half the deliveries, %s after all, %s at the end; CPU %.1f s", half, sent, mib(rep.Memory.End[name]), rep.Memory.CPUSeconds[name])
	}
	for _, p := range rep.Problems {
		row("PROBLEM", "%s", p)
	}
	tw.Flush()
}

func mib(kib int) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }

// hops is the services' own view of the acknowledgements of a run: the
// 99th percentile of the gateway's time to answer a webhook (from the
// request read to the answer written) and of the replicas' time to record
// a delivery (the gRPC call, its etcd read and write included), each as
// the upper bound of the histogram bucket that holds it. The rest of an
// acknowledgement is the HTTP exchange and the load generator itself.
type hops struct {
	Count               float64 `json:"count"`
	GatewayWebhookP99Ms float64 `json:"gateway_webhook_p99_ms_at_most"`
	ReplicaIntakeP99Ms  float64 `json:"replica_intake_p99_ms_at_most"`
	ReplicaIntakeCount  float64 `json:"replica_intake_count"`
	// EtcdTxnP99Ms and EtcdRangeP99Ms are the replicas' waits for etcd's
	// answers (all their requests: intake's and processing's).
	EtcdTxnP99Ms       float64 `json:"replica_etcd_txn_p99_ms_at_most"`
	EtcdRangeP99Ms     float64 `json:"replica_etcd_range_p99_ms_at_most"`
	ReplicasNotCounted int     `json:"replicas_not_counted,omitempty"`
}

// hopSnapshot is the services' histograms at one moment, by bucket bound:
// the gateway's, and each replica's (in -replicas order).
type hopSnapshot struct {
	gateway  histogram // nil: not read
	replicas []replicaHists
}

type replicaHists struct {
	ok               bool
	intake, txn, rng histogram
}

const (
	gatewayHist = "backorder_gateway_http_request_duration_seconds_bucket"
	replicaHist = "backorder_grpc_request_duration_seconds_bucket"
	etcdHist    = "backorder_etcd_request_duration_seconds_bucket"
	// hopScrapeTimeout bounds a scrape of a service's metrics: a replica
	// paused by -fault does not answer at all.
	hopScrapeTimeout = 3 * time.Second
)

// hopHistograms reads the gateway's webhook histogram and each replica's
// HandleOrderWebhook and etcd histograms. A service that does not answer
// (killed or paused by a -fault) is left unread.
func (r *loadRun) hopHistograms(ctx context.Context) hopSnapshot {
	type hist struct {
		name, label, value string
		into               histogram
	}
	read := func(url string, hs ...hist) bool {
		samples, err := scrape(ctx, url, hopScrapeTimeout)
		if err != nil {
			return false
		}
		for _, s := range samples {
			for _, h := range hs {
				if s.name == h.name && s.labels[h.label] == h.value && s.labels["result"] != "error" {
					h.into.add(s)
				}
			}
		}
		return true
	}
	var snap hopSnapshot
	if g := (histogram{}); read(r.gatewayURL, hist{gatewayHist, "route", "webhook", g}) {
		snap.gateway = g
	}
	for _, u := range r.metricsURLs {
		rh := replicaHists{intake: histogram{}, txn: histogram{}, rng: histogram{}}
		rh.ok = read(u, hist{replicaHist, "method", "HandleOrderWebhook", rh.intake},
			hist{etcdHist, "method", "Txn", rh.txn}, hist{etcdHist, "method", "Range", rh.rng})
		snap.replicas = append(snap.replicas, rh)
	}
	return snap
}

// hopsBetween is what the services counted between two snapshots. A
// replica read only once, or whose counts went down (it was started again
// by -fault kill-replica), is left out and counted in ReplicasNotCounted.
func hopsBetween(a, b hopSnapshot) *hops {
	if a.gateway == nil || b.gateway == nil || len(a.replicas) != len(b.replicas) {
		return nil
	}
	g := histogram{}
	g.addDiff(a.gateway, b.gateway)
	intake, txn, rng := histogram{}, histogram{}, histogram{}
	h := &hops{Count: g.count()}
	for i, ra := range a.replicas {
		rb := b.replicas[i]
		if !ra.ok || !rb.ok || rb.intake.count() < ra.intake.count() || rb.txn.count() < ra.txn.count() {
			h.ReplicasNotCounted++
			continue
		}
		intake.addDiff(ra.intake, rb.intake)
		txn.addDiff(ra.txn, rb.txn)
		rng.addDiff(ra.rng, rb.rng)
	}
	h.ReplicaIntakeCount = intake.count()
	h.GatewayWebhookP99Ms, h.ReplicaIntakeP99Ms = g.p99Ms(), intake.p99Ms()
	h.EtcdTxnP99Ms, h.EtcdRangeP99Ms = txn.p99Ms(), rng.p99Ms()
	return h
}

// otherApps spends perSec requests a second of the store's quota, as its
// other apps would, until ctx ends, and returns how many the quota refused
// (the simulator counts those it spent).
func (r *loadRun) otherApps(ctx context.Context, perSec float64) (refused int) {
	if perSec <= 0 {
		return 0
	}
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return refused
		case <-t.C:
		}
		owed += perSec * tick.Seconds()
		n := int(owed)
		owed -= float64(n)
		refused += n - r.bc.SpendQuota(loadStore, n)
	}
}

// validQuotaBurst says whether s is a BIGCOMMERCE_QUOTA_BURST the replicas
// take (or empty, for their default).
func validQuotaBurst(s string) bool {
	if s == "" || strings.EqualFold(s, "off") {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 10_000
}

// replicaCounters sums, over the replicas' metrics, the BigCommerce
// requests that waited for the quota's reset, those that waited to spread
// it, and the runs their TropShip breakers held back.
func (r *loadRun) replicaCounters(ctx context.Context) (reset, spread, held float64) {
	for _, u := range r.metricsURLs {
		samples, err := scrape(ctx, u, hopScrapeTimeout)
		if err != nil {
			continue
		}
		for _, s := range samples {
			switch s.name {
			case "backorder_bigcommerce_paced_waits_total":
				reset += s.value
			case "backorder_bigcommerce_spread_waits_total":
				spread += s.value
			case "backorder_supplier_breaker_held_total":
				held += s.value
			}
		}
	}
	return reset, spread, held
}

// scrape reads a Prometheus text endpoint's samples, within timeout.
func scrape(ctx context.Context, base string, timeout time.Duration) ([]metricSample, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// orDefault writes a setting given in milliseconds, 0 being the service's
// default.
func orDefault(ms float64) string {
	if ms == 0 {
		return "default"
	}
	return (time.Duration(ms * float64(time.Millisecond))).String()
}
