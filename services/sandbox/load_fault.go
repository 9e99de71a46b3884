package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/stack"
	"github.com/backorder/backorder/services/sandbox/tropsim"
)

// The faults the load command can inject (-fault), once half of the
// deliveries are answered.
const (
	// faultKillReplica kills fulfillment-0 with SIGKILL, as a crash or an
	// OOM kill would, and starts it again after -fault-down: deliveries in
	// flight to it fail and are retried, its orders wait for its lease to
	// expire, and the other replicas carry on.
	faultKillReplica = "kill-replica"
	// faultStopEtcdLeader stops the embedded cluster's leader (it hands
	// leadership over first, as etcd does on SIGTERM) and starts it again
	// after -fault-down.
	faultStopEtcdLeader = "stop-etcd-leader"
	// faultPauseReplica stops fulfillment-0 where it stands (SIGSTOP), as a
	// frozen VM or a long stall would, and lets it run again (SIGCONT) after
	// -fault-down. It keeps its sockets: connections to it stay open and
	// calls to it hang. Past LOCK_TTL (10 s by default) its leases expire,
	// the other replicas take its orders over, and what it resumes with is
	// refused by fencing.
	faultPauseReplica = "pause-replica"
	// faultSupplierThrottle makes the TropShip simulator answer every live
	// order 429 (Retry-After 1 s) for -fault-down: nothing is created, and
	// the orders are retried.
	faultSupplierThrottle = "supplier-throttle"
	// faultSupplierAmbiguous makes the TropShip simulator create every
	// live order and then answer 500, for -fault-down: the replicas cannot
	// know whether the order exists. With TROPSHIP_LOOKUP they look each
	// reference up once the call's deadline and TROPSHIP_LOOKUP_SETTLE
	// have passed, and adopt the order they find; none may be sent twice.
	faultSupplierAmbiguous = "supplier-ambiguous"
	// faultSupplierTimeout makes the TropShip simulator create every live
	// order and then hold the answer until the replica gives up
	// (TROPSHIP_TIMEOUT), for -fault-down: each such call holds a worker
	// for the whole timeout, and its order is looked up as for
	// faultSupplierAmbiguous.
	faultSupplierTimeout = "supplier-timeout"
	// faultQuorumLoss cuts every member of the embedded etcd off from the
	// others for -fault-down, as a failed network between them would: each
	// member runs and answers its clients, but none has a quorum, so no
	// write commits meanwhile. Deliveries are answered 503 and retried,
	// and processing waits.
	faultQuorumLoss = "etcd-quorum-loss"
	// faultBigCommerceOutage makes the BigCommerce simulator answer every
	// API request 503 for -fault-down: orders cannot be read, nor written
	// back, and wait for their next attempt.
	faultBigCommerceOutage = "bigcommerce-outage"
)

// faults are the -fault values, in the order the usage text names them.
var faults = []string{faultKillReplica, faultPauseReplica, faultStopEtcdLeader, faultQuorumLoss,
	faultSupplierThrottle, faultSupplierAmbiguous, faultSupplierTimeout, faultBigCommerceOutage}

// faultReport is what a -fault did and when.
type faultReport struct {
	Kind string `json:"kind"`
	What string `json:"what"`
	// AtSeconds is when it struck, from the first delivery, once
	// AtDelivered deliveries were answered.
	AtSeconds   float64 `json:"at_seconds"`
	AtDelivered int64   `json:"at_delivered"`
	// NewLeaderMs is, for stop-etcd-leader, how long after the stop
	// another member led.
	NewLeaderMs float64 `json:"new_leader_ms,omitempty"`
	// NewLeader is, for stop-etcd-leader, the member that led next.
	NewLeader int `json:"new_leader,omitempty"`
	// StopMs is, for stop-etcd-leader, how long the member took to stop.
	StopMs float64 `json:"stop_ms,omitempty"`
	// LeaderLostMs is, for etcd-quorum-loss, how long after the cut no
	// member led any more (0: one led throughout).
	LeaderLostMs float64 `json:"leader_lost_ms,omitempty"`
	// LeaderAgainMs is, for etcd-quorum-loss, how long after the members
	// could talk again one of them led.
	LeaderAgainMs float64 `json:"leader_again_ms,omitempty"`
	// BackSeconds is when the replica or member served again, from the
	// first delivery.
	BackSeconds float64 `json:"back_seconds"`
	Error       string  `json:"error,omitempty"`
}

// injectFault waits until half of the planned deliveries are answered,
// then does cfg.Fault and brings the victim back after cfg.FaultDown. It
// fills r.rep.Fault; start is when the first delivery was sent.
func (r *loadRun) injectFault(ctx context.Context, planned int, start time.Time) {
	f := &faultReport{Kind: r.cfg.Fault}
	r.rep.Fault = f
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for r.delivered.Load()*2 < int64(planned) {
		select {
		case <-ctx.Done():
			f.Error = "the run ended before half of the deliveries were answered"
			return
		case <-t.C:
		}
	}
	f.AtSeconds, f.AtDelivered = round3(time.Since(start).Seconds()), r.delivered.Load()
	var err error
	switch r.cfg.Fault {
	case faultKillReplica:
		err = r.killReplica(ctx, f)
	case faultStopEtcdLeader:
		err = r.stopEtcdLeader(ctx, f)
	case faultPauseReplica:
		err = r.pauseReplica(ctx, f)
	case faultQuorumLoss:
		err = r.loseQuorum(ctx, f)
	case faultSupplierThrottle, faultSupplierAmbiguous, faultSupplierTimeout:
		normal := r.ts.Faults()
		faulty := normal
		switch r.cfg.Fault {
		case faultSupplierThrottle:
			f.What = fmt.Sprintf("TropShip answered every live order 429 (Retry-After 1 s) for %s", r.cfg.FaultDown)
			faulty.Throttle, faulty.RetryAfter = tropsim.Trigger{Rate: 1}, time.Second
		case faultSupplierAmbiguous:
			f.What = fmt.Sprintf("TropShip created every live order and answered it 500 for %s", r.cfg.FaultDown)
			faulty.FailAfterCreate = tropsim.Trigger{Rate: 1}
		case faultSupplierTimeout:
			f.What = fmt.Sprintf("TropShip created every live order and held its answer until the caller gave up, for %s", r.cfg.FaultDown)
			faulty.TimeoutAfterCreate = tropsim.Trigger{Rate: 1}
		}
		r.ts.SetFaults(faulty)
		err = sleepCtx(ctx, r.cfg.FaultDown)
		r.ts.SetFaults(normal)
	case faultBigCommerceOutage:
		f.What = fmt.Sprintf("BigCommerce answered every API request 503 for %s", r.cfg.FaultDown)
		normal := r.bc.Faults()
		r.bc.SetFaults(bcsim.Faults{Rate: 1, Status: http.StatusServiceUnavailable})
		err = sleepCtx(ctx, r.cfg.FaultDown)
		r.bc.SetFaults(normal)
	}
	if err != nil {
		f.Error = err.Error()
		return
	}
	f.BackSeconds = round3(time.Since(start).Seconds())
	r.say("fault: %s; back %.1f s after the first delivery", f.What, f.BackSeconds)
}

// killReplica kills fulfillment-0 and starts it again, with the same
// binary and settings, after cfg.FaultDown.
func (r *loadRun) killReplica(ctx context.Context, f *faultReport) error {
	r.procMu.Lock()
	p := r.procs[0]
	pid := r.pids[p.Addr]
	r.killed[p] = true
	r.procMu.Unlock()
	// Its CPU time so far still counts in this run's CPU figures.
	cpu, _ := procCPU(pid)
	p.Kill()
	r.procMu.Lock()
	r.deadCPU += cpu
	r.procMu.Unlock()
	f.What = fmt.Sprintf("SIGKILL %s (pid %d), started again after %s", p.Name, pid, r.cfg.FaultDown)
	if err := sleepCtx(ctx, r.cfg.FaultDown); err != nil {
		return err
	}
	np, err := stack.Start(p.Name, r.bins.Fulfillment, r.replicaEnv[0], r.tee)
	if err != nil {
		return err
	}
	if r.cfg.ProcessNice != 0 { // fulfillment-0 processes: it gets its nice value again
		if err := np.Renice(r.cfg.ProcessNice); err != nil {
			return err
		}
	}
	r.procMu.Lock()
	r.procs[0] = np
	r.pids = childPIDs()
	r.procMu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return np.WaitGRPC(wctx)
}

// pauseReplica stops fulfillment-0 (SIGSTOP) and lets it run again
// (SIGCONT) after cfg.FaultDown.
func (r *loadRun) pauseReplica(ctx context.Context, f *faultReport) error {
	r.procMu.Lock()
	p := r.procs[0]
	pid := r.pids[p.Addr]
	r.procMu.Unlock()
	f.What = fmt.Sprintf("SIGSTOP %s (pid %d), SIGCONT after %s", p.Name, pid, r.cfg.FaultDown)
	if err := p.Pause(); err != nil {
		return err
	}
	err := sleepCtx(ctx, r.cfg.FaultDown)
	if rerr := p.Resume(); rerr != nil {
		return rerr
	}
	return err
}

// stopEtcdLeader stops the embedded cluster's leader and starts it again
// after cfg.FaultDown.
func (r *loadRun) stopEtcdLeader(ctx context.Context, f *faultReport) error {
	l, err := r.cluster.AwaitLeader(30 * time.Second)
	if err != nil {
		return err
	}
	f.What = fmt.Sprintf("stopped etcd member %d, the leader, started again %s after it had stopped", l, r.cfg.FaultDown)
	// The stop hands leadership over first, then drains the member's
	// client connections: watch whom the others follow meanwhile.
	t0 := time.Now()
	stopped := make(chan struct{})
	go func() { defer close(stopped); r.cluster.Stop(l) }()
	next, err := r.cluster.AwaitLeader(time.Minute, l)
	f.NewLeaderMs, f.NewLeader = round3(ms(time.Since(t0))), next
	<-stopped
	f.StopMs = round3(ms(time.Since(t0)))
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, r.cfg.FaultDown); err != nil {
		return err
	}
	return r.cluster.StartMember(l)
}

// loseQuorum cuts every etcd member off from the others for
// cfg.FaultDown, then lets them talk again, and times how long the cluster
// then took to have a leader.
func (r *loadRun) loseQuorum(ctx context.Context, f *faultReport) error {
	l, err := r.cluster.AwaitLeader(30 * time.Second)
	if err != nil {
		return err
	}
	f.What = fmt.Sprintf("cut the %d etcd members off from each other (no quorum; member %d led), mended after %s", r.cfg.EtcdMembers, l, r.cfg.FaultDown)
	if err := r.cluster.CutPeers(); err != nil {
		return err
	}
	// Watch the leader step down: it does once it has not heard from a
	// quorum for an election timeout.
	cut := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	end := time.After(r.cfg.FaultDown)
wait:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-end:
			break wait
		case <-tick.C:
			if f.LeaderLostMs == 0 && r.cluster.Leader() < 0 {
				f.LeaderLostMs = round3(ms(time.Since(cut)))
			}
		}
	}
	t0 := time.Now()
	if merr := r.cluster.MendPeers(); merr != nil {
		return merr
	}
	if err != nil {
		return err
	}
	next, err := r.cluster.AwaitLeader(time.Minute)
	f.LeaderAgainMs, f.NewLeader = round3(ms(time.Since(t0))), next
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
