package fulfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/failpoint"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// ProcessOptions change how Process treats one order.
type ProcessOptions struct {
	// Force processes the order even when no work is queued for it (an
	// operator or internal client asked).
	Force bool
	// ValidateOnly asks the supplier to validate only, whatever the mode.
	ValidateOnly bool
	// NoWait skips the order (returning nil, nil) when another holder has
	// it, instead of waiting: for queued work, which stays queued and is
	// found again by a sweep, so replicas do not queue up behind each other
	// on one backlog.
	NoWait bool
}

// Process is steps 3 to 10 of design.md for one order, under its mutex, and
// returns the record as it was left. It returns ErrFenced or ErrLockLost when
// this process lost the order to another, and then has changed nothing.
func (s *Service) Process(ctx context.Context, k order.Key, opt ProcessOptions) (*order.Order, error) {
	o, _, err := s.process(ctx, k, opt)
	return o, err
}

// process is Process, and also returns the store's revision its run
// loaded the order at (0: it loaded nothing).
func (s *Service) process(ctx context.Context, k order.Key, opt ProcessOptions) (*order.Order, int64, error) {
	if err := s.serves(k); err != nil {
		return nil, 0, err
	}
	ctx, stop := s.untilStopped(ctx)
	defer stop()
	// Step 3: the per-order mutex.
	lock := s.store.Lock
	if opt.NoWait {
		lock = s.store.TryLock
	}
	lk, err := lock(ctx, k)
	if opt.NoWait && errors.Is(err, ErrLocked) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	failpoint.Inject("after-lock")
	defer func() {
		// Unlock even when ctx ended: a held lock blocks the order until
		// the session lease runs out.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lk.Unlock(uctx)
	}()
	// Stop every call of this run once the lock may be lost. The caller's
	// ctx (a shutdown, a client that went away) stops the run only until
	// it commits to a supplier call: from the intent on, the call and the
	// storing of its answer go on, bounded by the call's deadline, because
	// cutting them off half-way would leave an outcome nobody knows.
	parent := ctx
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	p := &run{s: s, lk: lk, k: k, opt: opt, now: s.cfg.Now(), caller: parent}
	go func() {
		stop := parent.Done()
		for {
			select {
			case <-lk.Done():
				cancel(ErrLockLost)
				return
			case <-stop:
				stop = nil
				if p.stopUnlessCommitted() {
					cancel(context.Cause(parent))
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := p.step(ctx); err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrLockLost) && !errors.Is(err, ErrLockLost) {
			err = fmt.Errorf("%w: %w", ErrLockLost, err)
		}
		return p.o, p.seen, err
	}
	return p.o, p.seen, nil
}

// run is one pass over one order under its lock.
type run struct {
	s   *Service
	lk  Locked
	k   order.Key
	opt ProcessOptions
	now time.Time
	o   *order.Order
	// unknown: nothing of the order was stored when the run began.
	unknown bool
	// seen is the store's revision the run loaded the order at.
	seen int64
	// caller is the context Process was called with: it no longer stops
	// the run once committed, but it still cuts a write-back short.
	caller context.Context
	// commitMu guards committed and stopped: a run either commits to its
	// supplier call (from then on only a lost lock or the call's deadline
	// stops it) or is stopped by its caller first, never both.
	commitMu  sync.Mutex
	committed bool
	stopped   bool
}

// commit marks the run as committed to a supplier call. It returns false
// when the caller stopped the run first.
func (p *run) commit() bool {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if !p.stopped {
		p.committed = true
	}
	return p.committed
}

// stopUnlessCommitted stops the run if it has not committed yet, and says
// whether it did.
func (p *run) stopUnlessCommitted() bool {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if !p.committed {
		p.stopped = true
	}
	return p.stopped
}

func (p *run) log() *slog.Logger {
	return p.s.log.With("store", p.k.Store, "order_id", p.k.ID, "state", p.o.State.String(), "reference", p.o.Reference)
}

// save writes the record (fenced), says what to do with the queue entry,
// and releases the mutex in the same write: it is the run's last write.
func (p *run) save(ctx context.Context, q QueueOp) error {
	return p.lk.SaveAndUnlock(ctx, p.o, q)
}

// saveSure saves like save, but rides out etcd being briefly unavailable (a
// leader election, a lost member) by trying again until ctx ends. An attempt
// that failed on the wire may still have committed; the next attempt then
// meets its own write as a fence, which is told apart from a real one by
// reading the record back.
//
// With last, it is the run's last write and releases the mutex (as save);
// without, the mutex stays held (the intent, before the supplier call).
func (p *run) saveSure(ctx context.Context, q QueueOp, last bool) error {
	write := p.lk.Save
	if last {
		write = p.lk.SaveAndUnlock
	}
	uncertain := false
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		err := write(ctx, p.o, q)
		switch {
		case err == nil:
			return nil
		case uncertain && errors.Is(err, ErrFenced):
			if p.landed(ctx) {
				return nil
			}
			return err
		case !errors.Is(err, ErrUnavailable):
			return err
		}
		uncertain = true
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// landed reports whether the stored record is the one this run wrote. A
// last write also released the mutex, so another holder may have written
// after it: a stored offline_order_id equal to the one this run stores
// counts as landed too.
func (p *run) landed(ctx context.Context) bool {
	loaded, err := p.lk.Load(ctx)
	if err != nil || loaded.Order == nil {
		return false
	}
	got := loaded.Order
	if p.o.OfflineOrderID != "" && got.OfflineOrderID == p.o.OfflineOrderID {
		return true
	}
	return got.State == p.o.State && got.Attempts == p.o.Attempts &&
		got.OfflineOrderID == p.o.OfflineOrderID && got.UpdatedAt.Equal(p.o.UpdatedAt)
}

// done saves the record and takes the order off the queue.
func (p *run) done(ctx context.Context) error {
	return p.save(ctx, QueueOp{Done: true, At: p.now})
}

func (p *run) step(ctx context.Context) error {
	loaded, err := p.lk.Load(ctx)
	if err != nil {
		return err
	}
	p.o, p.seen = loaded.Order, loaded.Revision
	p.unknown = p.o == nil && len(loaded.Events) == 0 && !loaded.Queued // nothing of it stored
	if p.o == nil {
		p.o = order.New(p.k, p.now)
	}
	p.o.AddEvents(loaded.Events...)
	p.o.Pending = loaded.Queued
	if !p.opt.Force && !loaded.Queued {
		// Another replica finished this work while we waited for the lock.
		return nil
	}

	// Step 4: a supplier reference means the supplier has the order. All
	// that may be left is writing it back (step 9).
	if p.o.HasSupplierOrder() {
		if p.o.State == order.Submitted && p.s.cfg.WriteBack {
			switch {
			case p.opt.Force:
				// A person asked (after fixing the cause): a fresh budget.
				p.o.WriteBackFailures = 0
			case p.now.Before(p.o.NextAttemptAt):
				// Run again early (the sweep saw the entry due while the
				// last attempt ran): keep to the backoff.
				return p.save(ctx, QueueOp{At: p.o.NextAttemptAt})
			}
			return p.writeBack(ctx)
		}
		return p.done(ctx)
	}
	switch p.o.State {
	case order.Submitting:
		if p.o.Mode == order.ModeLive {
			return p.unknownOutcome(ctx)
		}
		// An interrupted validation created nothing: just go on.
	case order.Rejected, order.NeedsReview, order.Failed:
		// Waiting for a person: never resent automatically. A person who
		// asks is told which action sends it again.
		if p.opt.Force {
			return fmt.Errorf("%w: order %s is %s and ProcessOrder never resends it: %s",
				order.ErrInvalidTransition, p.k, p.o.State, p.o.WaitsForPerson())
		}
		return p.done(ctx)
	case order.RetryScheduled:
		if !p.opt.Force && p.now.Before(p.o.NextAttemptAt) {
			return p.save(ctx, QueueOp{At: p.o.NextAttemptAt})
		}
	}

	if !p.opt.Force && p.o.ReadTooSoon(p.now) {
		// BigCommerce asked for a wait (or STOREFRONT_RETRY set one) in
		// a run that ended after this one was started (an event or a
		// sweep came meanwhile): keep to it, as an event that comes now
		// does (intake keeps the later due time), or to a later hold of
		// the breaker since.
		if p.o.ReadAfter.After(p.o.NextAttemptAt) {
			p.o.NextAttemptAt = p.o.ReadAfter
		}
		return p.save(ctx, QueueOp{At: p.o.NextAttemptAt})
	}

	// TropShip is not being sent live orders now (the breaker): read
	// nothing from BigCommerce either, and look again when one may go.
	if p.s.breaker != nil && p.s.cfg.Mode == order.ModeLive && !p.opt.ValidateOnly {
		if h, held := p.s.breaker.Holding(); held {
			return p.holdBack(ctx, h)
		}
	}

	// Step 5: the order as BigCommerce has it; the webhook is never trusted.
	sfo, err := p.s.storefront.Order(ctx, p.k)
	switch {
	case errors.Is(err, ErrOrderNotFound) && p.unknown:
		// A person asked for an order nobody announced, and BigCommerce
		// has none: a typo, most likely. Nothing is stored.
		return fmt.Errorf("order %s: %w", p.k, ErrOrderNotFound)
	case errors.Is(err, ErrOrderNotFound):
		return p.ineligible(ctx, "BigCommerce has no such order")
	case err != nil:
		return p.storefrontFailed(ctx, err)
	}
	p.o.StorefrontAnswered()
	p.o.StatusID = sfo.StatusID
	// Step 6, first by status alone: most events of an order come before
	// it is payable or after it shipped, and each then costs the store's
	// API quota the one request of the order. Nothing is sent, so the
	// metafield need not be read (an id adopted there would change nothing
	// but the record's state).
	if reason := p.s.cfg.Policy.StatusReason(sfo); reason != "" {
		return p.ineligible(ctx, reason)
	}
	if !sfo.ContentsRead {
		if sfo.Lines, sfo.Shipping, err = p.s.storefront.Contents(ctx, p.k); err != nil {
			return p.storefrontFailed(ctx, err)
		}
	}
	sub, reason := p.s.cfg.Policy.Decide(p.k, sfo)
	if reason != "" {
		return p.ineligible(ctx, reason)
	}
	// The order is for the supplier. Before anything is sent, the
	// metafield: an earlier run may have created it and written its id
	// back, in a record this etcd no longer has.
	ref, err := p.s.storefront.SupplierReference(ctx, p.k)
	if errors.Is(err, ErrOrderNotFound) {
		// The order was just read: a 404 on its metafields means it has
		// none (or the API offers none), so there is no reference to adopt.
		ref, err = "", nil
	}
	if err != nil {
		return p.storefrontFailed(ctx, err)
	}
	if ref != "" {
		// An earlier run created it and wrote it back; adopt, never resend.
		// The reference is on the order already: WRITTEN_BACK.
		p.o.OfflineOrderID, p.o.Reference, p.o.SubmittedAt = ref, order.Reference(p.k), p.now
		if err := p.o.Transition(order.Submitted, p.now); err != nil {
			return err
		}
		if err := p.o.WroteBack(p.now); err != nil {
			return err
		}
		return p.done(ctx)
	}

	mode := p.s.cfg.Mode
	if p.opt.ValidateOnly {
		mode = order.ModeValidate
	}
	if mode == order.ModeLive && p.s.cfg.ValidateFirst {
		// The live call follows only a passed pre-check. A refusal ends as
		// REJECTED; a throttled, unsent or unclear pre-check created
		// nothing and is tried again later, pre-check first.
		if r := p.s.supplier.Submit(ctx, sub, true); r.Outcome != order.Valid {
			if p.s.breaker != nil {
				p.s.breaker.RecordPrecheck(r)
			}
			return p.submitAndApply(ctx, sub, order.ModeValidate, &r)
		}
	}
	return p.submitAndApply(ctx, sub, mode, nil)
}

// submitAndApply is steps 7 and 8: the fenced intent, the supplier call, and
// the fenced result. With known set, the answer is already there (a refused
// validation) and no call is made.
func (p *run) submitAndApply(ctx context.Context, sub order.Submission, mode order.Mode, known *order.Result) error {
	// The reads and a pre-check took time: the intent and the call's
	// deadline count from now.
	p.now = p.s.cfg.Now()
	// The breaker decides here, once, before the intent: a held run
	// writes no intent and counts no attempt. Every live call's answer is
	// recorded; a probe's slot is given back whatever stops it before
	// its call.
	breaker := p.s.breaker
	if mode != order.ModeLive || known != nil {
		breaker = nil
	}
	probe, recorded := false, false
	if breaker != nil {
		var h Hold
		var held bool
		if probe, h, held = breaker.Admit(); held {
			return p.holdBack(ctx, h)
		}
		defer func() {
			if !recorded {
				breaker.Record(order.Result{}, probe)
			}
		}()
	}
	if err := p.o.Transition(order.Submitting, p.now); err != nil {
		return err
	}
	p.o.Reference, p.o.Mode = sub.Reference, mode
	if mode == order.ModeLive {
		// A due time left by an earlier failure (a retry's backoff, a
		// BigCommerce read) says nothing about this live attempt, whose
		// lookup, should it be needed, waits for its own deadline. (A
		// validate-only run keeps it: the live send it leaves queued is
		// due then, see apply.)
		p.o.NextAttemptAt = time.Time{}
	}
	p.o.Attempts++
	// The call must be over by this deadline, counted from before the
	// intent is written: a holder paused past it (and past its lock) finds
	// its context expired when it resumes and never starts the call, and a
	// successor waits for the deadline before it looks the reference up.
	deadline := p.now.Add(p.s.cfg.SupplierTimeout)
	p.o.CallDeadline = deadline
	// The intent is stored before the call, so that whoever holds the order
	// next sees that an attempt may have been made; and it is queued, so
	// that a sweep finds it if this process dies before storing the answer.
	// A shutdown from here on waits for the answer (see Process); an intent
	// not stored by the call's deadline means no call.
	if !p.commit() {
		// The caller stopped the run (shutdown): no intent, no call.
		return fmt.Errorf("stopped before the supplier call: %w", context.Canceled)
	}
	ictx, cancel := context.WithDeadline(ctx, deadline)
	err := p.saveSure(ictx, QueueOp{At: p.now.Add(p.s.cfg.SweepGrace)}, false)
	cancel()
	if err != nil {
		return err
	}
	failpoint.Inject("after-intent")
	if err := context.Cause(ctx); err != nil {
		return err // lock lost between the intent and the call: do not call
	}
	var r order.Result
	if known != nil {
		r = *known
	} else {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		if mode == order.ModeLive {
			cctx = WithSendGuard(cctx, p.lk.Check)
		}
		r = p.s.supplier.Submit(cctx, sub, mode == order.ModeValidate)
		cancel()
		if breaker != nil {
			breaker.Record(r, probe)
			recorded = true
		}
		if r.Outcome == order.Created {
			failpoint.Inject("after-supplier-created")
		}
	}
	p.now = p.s.cfg.Now()
	return p.apply(ctx, r)
}

// apply stores a supplier result and queues what comes next.
func (p *run) apply(ctx context.Context, r order.Result) error {
	wasDue := p.o.NextAttemptAt
	next, err := p.o.Apply(r, p.now, p.s.cfg.Retry)
	if err != nil {
		return err
	}
	// A cancelled ctx must not lose a created order's id: store it anyway,
	// fenced as always, with a context of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	q := QueueOp{Done: true, At: p.now}
	if !next.IsZero() {
		q = QueueOp{At: next}
	}
	if r.Outcome == order.Valid && p.s.cfg.Mode == order.ModeLive && p.o.Pending {
		// A person's validate-only run of an order queued for its live
		// submission: that submission is still owed, so the order stays
		// queued, due when it was (a retry's backoff is kept), or now.
		q = QueueOp{At: p.now}
		if wasDue.After(p.now) {
			q = QueueOp{At: wasDue}
		}
	}
	// Step 9 follows a created order in this run, under the same lock: the
	// id is stored first (step 8), and the entry stays queued, so a sweep
	// writes it back if this process dies before it does.
	writeBack := r.Outcome == order.Created && p.s.cfg.WriteBack
	if writeBack {
		q = QueueOp{At: p.now.Add(p.s.cfg.SweepGrace)}
	}
	if err := p.saveSure(sctx, q, !writeBack); err != nil {
		if r.Outcome == order.Created {
			// The record still says SUBMITTING: the next holder finds the
			// id on the BigCommerce order (below), else looks the
			// reference up or holds the order for a person.
			p.log().ErrorContext(ctx, "the supplier created the order but its id could not be stored",
				"offline_order_id", r.OfflineOrderID, "stored_state", order.Submitting.String(), "err", err)
			p.keepOnStorefront(ctx, r.OfflineOrderID)
		}
		return err
	}
	failpoint.Inject("after-store")
	p.log().InfoContext(ctx, "supplier answered", "outcome", r.Outcome.String(),
		"offline_order_id", p.o.OfflineOrderID, "mode", p.o.Mode.String())
	if writeBack {
		return p.writeBack(ctx)
	}
	return nil
}

// keepOnStorefront writes a created order's id to the BigCommerce order's
// metafield when etcd could not store it, so that it outlives this
// process: the next holder adopts it (unknownOutcome) instead of holding
// the order for a person. The id is a fact whoever holds the lock now, and
// a metafield holding another id is never overwritten.
func (p *run) keepOnStorefront(ctx context.Context, id string) {
	if !p.s.cfg.WriteBack {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.s.storefront.SetSupplierReference(wctx, p.k, id); err != nil {
		p.log().ErrorContext(ctx, "nor could the supplier's id be written to BigCommerce: the order waits for a lookup or a person",
			"offline_order_id", id, "err", err)
		return
	}
	p.log().WarnContext(ctx, "the supplier's id was written to the BigCommerce order instead: the next run adopts it",
		"offline_order_id", id)
}

// writeBack is step 9: the supplier's id goes on the BigCommerce order's
// metafield, where any later run finds it before it sends anything, even
// one whose etcd lost this record. The supplier has the order, so a failure
// never resends it: the write-back alone is tried again later (see
// order.WriteBackFailed).
func (p *run) writeBack(ctx context.Context) error {
	// A shutdown does not wait for the write-back: the order stays queued
	// (from step 8, or from the failure that brought it here) and the next
	// holder writes it back.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.caller, cancel)()
	err := p.s.storefront.SetSupplierReference(wctx, p.k, p.o.OfflineOrderID)
	p.now = p.s.cfg.Now()
	if err == nil {
		if err := p.o.WroteBack(p.now); err != nil {
			return err
		}
		return p.done(ctx)
	}
	if ctx.Err() != nil {
		return err // the lock was lost: the next holder writes it back
	}
	if wctx.Err() != nil {
		p.log().InfoContext(ctx, "write-back left for the next run: stopping", "offline_order_id", p.o.OfflineOrderID)
		return nil
	}
	var re *RetryableError
	var retryAfter time.Duration
	if errors.As(err, &re) {
		retryAfter = re.RetryAfter
	}
	next, aerr := p.o.WriteBackFailed(err.Error(), re != nil, retryAfter, p.now, p.s.cfg.Retry)
	if aerr != nil {
		return aerr
	}
	if next.IsZero() {
		p.log().WarnContext(ctx, "gave up writing the supplier id back to BigCommerce",
			"offline_order_id", p.o.OfflineOrderID, "failures", p.o.WriteBackFailures, "err", err)
		return p.done(ctx)
	}
	return p.save(ctx, QueueOp{At: next})
}

// unknownOutcome handles a SUBMITTING live order found under the lock: the
// holder before us wrote its intent and never its result (it died, lost its
// lock, or got an ambiguous answer). It is never resent on a guess: with
// lookup on, the reference is looked up once the settle delay passed; with
// it off, the order waits for a person.
func (p *run) unknownOutcome(ctx context.Context) error {
	settle := p.s.cfg.Retry.LookupSettle
	if settle > 0 {
		// Never look before the attempt's call deadline has passed (plus
		// the settle delay): until then its holder, interrupted or paused,
		// may still be sending it. (A record without a deadline, from an
		// older build, counts from its last change.) NextAttemptAt (an
		// ambiguous answer's settle time, a failed lookup's backoff) can
		// only put the lookup later. Until then a run (the order's next
		// events, a sweep) only keeps it queued for that time: the
		// metafield is read when the lookup is due, so the events of an
		// order waiting for its lookup cost the store's API quota nothing.
		due := p.o.CallDeadline
		if due.IsZero() {
			due = p.o.UpdatedAt
		}
		due = due.Add(settle)
		if p.o.NextAttemptAt.After(due) {
			due = p.o.NextAttemptAt
		}
		if p.now.Before(due) {
			p.o.NextAttemptAt = due
			return p.save(ctx, QueueOp{At: due})
		}
	}
	// The id may be on the BigCommerce order: written by a holder that
	// could not store it in etcd (keepOnStorefront). Found, it settles the
	// outcome with no lookup and no person. A failed read changes nothing.
	if ref, err := p.s.storefront.SupplierReference(ctx, p.k); err == nil && ref != "" {
		return p.apply(ctx, order.Result{Outcome: order.Created, OfflineOrderID: ref,
			Reason: "found on the BigCommerce order's metafield"})
	}
	if settle <= 0 {
		return p.apply(ctx, order.Result{Outcome: order.Ambiguous,
			Reason: "an earlier live attempt ended before its answer was stored"})
	}
	id, found, err := p.s.supplier.Lookup(ctx, p.o.Reference)
	switch {
	case err != nil:
		// The outcome is still unknown: ask again later if the failure may
		// pass, else (or after too many) hold the order for a person.
		var re *RetryableError
		transient := errors.As(err, &re)
		var wait time.Duration
		if transient {
			wait = re.RetryAfter
		}
		next, aerr := p.o.LookupFailed("looking up reference "+p.o.Reference+": "+err.Error(),
			transient, wait, p.now, p.s.cfg.Retry)
		if aerr != nil {
			return aerr
		}
		if next.IsZero() {
			return p.done(ctx)
		}
		return p.save(ctx, QueueOp{At: next})
	case found:
		return p.apply(ctx, order.Result{Outcome: order.Created, OfflineOrderID: id,
			Reason: "found at the supplier by reference"})
	default:
		return p.apply(ctx, order.Result{Outcome: order.NotSent,
			Reason: "the supplier has no order with reference " + p.o.Reference + "; safe to send again"})
	}
}

// holdBack ends a run that the breaker holds back: nothing was read or
// sent, the state stays, no attempt is counted, and the order is looked at
// again when a live order may go (or, while a probe is in flight, after
// its backoff). An operator's ProcessOrder of an order nothing is stored
// of stores nothing and is told to try again.
func (p *run) holdBack(ctx context.Context, h Hold) error {
	until := h.Until
	if until.IsZero() {
		until = p.now.Add(p.s.cfg.Retry.Backoff(max(p.o.Attempts, 1)))
	}
	if p.unknown {
		return &RetryableError{Err: errors.New(h.Reason), RetryAfter: until.Sub(p.now)}
	}
	p.o.HeldBack(h.Reason, until, p.now)
	if err := p.save(ctx, QueueOp{At: until}); err != nil {
		return err
	}
	p.s.noteHeld(p.k, until)
	return nil
}

func (p *run) ineligible(ctx context.Context, reason string) error {
	if err := p.o.SetIneligible(reason, p.now); err != nil {
		return err
	}
	return p.done(ctx)
}

// storefrontFailed keeps the order queued after a BigCommerce failure: the
// order is unchanged and is looked at again later. Of an order nothing is
// stored of (a person asked for it), nothing is stored while BigCommerce
// cannot say: the person asks again, and no record of a typo is left queued.
func (p *run) storefrontFailed(ctx context.Context, err error) error {
	if p.unknown {
		return err
	}
	wait := p.s.cfg.StorefrontRetry
	var re *RetryableError
	if errors.As(err, &re) && re.RetryAfter > wait {
		wait = re.RetryAfter
	}
	next := p.now.Add(wait)
	p.o.StorefrontFailed(err.Error(), next, p.now)
	if serr := p.save(ctx, QueueOp{At: next}); serr != nil {
		return serr
	}
	return err
}
