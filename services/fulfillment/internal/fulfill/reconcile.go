package fulfill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// ScopeOrdersSweep is the scope of the events the Orders API sweep records.
const ScopeOrdersSweep = "orders-api/sweep"

// sweepOverlap is how far back of its cursor each sweep lists again: it
// covers a difference between BigCommerce's clock and ours, and orders
// modified while the last sweep was listing.
const sweepOverlap = 10 * time.Minute

// SweepReport says what one Orders API sweep did.
type SweepReport struct {
	// Skipped: another replica was sweeping the store, or swept it less
	// than an interval ago; nothing was done.
	Skipped bool
	// First: the store had never been swept. This sweep only set the
	// cursor: orders modified before it are left to their webhooks.
	First bool
	State SweepState
}

// OrdersSweepStatus reads the store's Orders API sweep progress, as the
// replicas share it, and says whether this replica sweeps and how often.
func (s *Service) OrdersSweepStatus(ctx context.Context) (enabled bool, every time.Duration, st SweepState, err error) {
	enabled, every = s.OrdersSweepEvery()
	st, err = s.store.SweepState(ctx, s.cfg.Store)
	return enabled, every, st, err
}

// OrdersSweepEvery says whether this replica sweeps the Orders API by
// itself, and how often.
func (s *Service) OrdersSweepEvery() (enabled bool, every time.Duration) {
	return s.cfg.OrdersSweep > 0 && s.cfg.Lister != nil && s.cfg.Role != RoleIntake, s.cfg.OrdersSweep
}

// sweepOrdersEvery sweeps the Orders API at start and then every interval
// until ctx ends. Each replica tries; the store lets one sweep per interval
// through.
func (s *Service) sweepOrdersEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := s.SweepOrders(ctx, every)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "orders sweep failed; the next one lists the same span again", "err", err)
		case err == nil && !rep.Skipped && !rep.First:
			s.log.InfoContext(ctx, "orders sweep", "listed", rep.State.Listed, "recorded", rep.State.Recorded,
				"cursor", rep.State.Cursor)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepOrders is the safety net for lost webhooks (bigcommerce.md): it
// lists the store's orders in the eligible statuses that changed since the
// last sweep, and records each change as an event, exactly as a webhook
// would, so that an order whose webhooks never came is processed too. A
// change already recorded is not recorded again, and an order the supplier
// already has is not queued. It does nothing when another replica holds the
// sweep, or when the last sweep started less than minGap ago.
//
// The first sweep of a store only sets the cursor: orders modified before
// it are left to their webhooks, since older orders may have been fulfilled
// by hand before this service was installed.
func (s *Service) SweepOrders(ctx context.Context, minGap time.Duration) (SweepReport, error) {
	if s.cfg.Lister == nil {
		return SweepReport{}, errors.New("orders sweep: no Orders API lister configured")
	}
	w, err := s.store.BeginSweep(ctx, s.cfg.Store)
	if errors.Is(err, ErrLocked) {
		return SweepReport{Skipped: true}, nil
	}
	if err != nil {
		return SweepReport{}, err
	}
	st, now := w.State(), s.cfg.Now()
	// A tenth of slack: a replica whose ticker fires exactly an interval
	// after its last sweep must not miss it by the sweep's own latency.
	if !st.LastRun.IsZero() && now.Sub(st.LastRun) < minGap-minGap/10 {
		w.Release(ctx)
		return SweepReport{Skipped: true, State: st}, nil
	}
	if st.Cursor.IsZero() {
		st = SweepState{Cursor: now, Since: now, LastRun: now}
		return SweepReport{First: true, State: st}, w.Finish(ctx, st)
	}
	from := st.Cursor.Add(-sweepOverlap)
	if from.Before(st.Since) {
		from = st.Since
	}
	listed, recorded, err := s.sweepSince(ctx, from, now)
	st.LastRun, st.Listed, st.Recorded, st.LastError = now, listed, recorded, ""
	if err != nil {
		st.LastError = err.Error()
	} else {
		st.Cursor = now
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := w.Finish(fctx, st); ferr != nil && err == nil {
		err = ferr
	}
	return SweepReport{State: st}, err
}

// sweepSince records the changes since since of the orders in every
// eligible status.
func (s *Service) sweepSince(ctx context.Context, since, now time.Time) (listed, recorded int, err error) {
	for _, status := range s.cfg.Policy.EligibleStatuses {
		mods, err := s.cfg.Lister.ModifiedOrders(ctx, s.cfg.Store, status, since)
		if err != nil {
			return listed, recorded, fmt.Errorf("listing orders in status %d modified since %s: %w", status, since.Format(time.RFC3339), err)
		}
		listed += len(mods)
		for _, m := range mods {
			k := order.Key{Store: s.cfg.Store, ID: m.ID}
			// One event per change of the order: the same change seen by
			// the next sweep's overlap is a duplicate. An order whose
			// date_modified could not be read is recorded once ("s-0").
			stamp := int64(0)
			if !m.DateModified.IsZero() {
				stamp = m.DateModified.Unix()
			}
			ev := order.Event{
				Key:         "s-" + strconv.FormatInt(stamp, 10),
				Scope:       ScopeOrdersSweep,
				NewStatusID: m.StatusID,
				ReceivedAt:  now,
			}
			rec, err := s.recordEvent(ctx, k, ev, now)
			if err != nil {
				return listed, recorded, fmt.Errorf("recording order %d: %w", m.ID, err)
			}
			if rec {
				recorded++
			}
		}
	}
	return listed, recorded, nil
}
