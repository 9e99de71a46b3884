package fulfill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Action is an operator's request about one order.
type Action struct {
	Kind           string // order.ActionRetry, ActionResolveFound or ActionResolveNotAtSupplier
	Actor          string
	Note           string
	OfflineOrderID string // for ActionResolveFound
}

// Act applies an operator action under the order's mutex, records it on the
// order, and queues the order where the action sends it back to work. It
// returns ErrNotFound for an unknown order and order.ErrInvalidTransition
// (or order.ErrActorRequired) for an action the order's state forbids.
func (s *Service) Act(ctx context.Context, k order.Key, a Action) (*order.Order, error) {
	if err := s.serves(k); err != nil {
		return nil, err
	}
	lk, err := s.store.Lock(ctx, k)
	if err != nil {
		return nil, err
	}
	unlocked := false
	unlock := func() {
		if unlocked {
			return
		}
		unlocked = true
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lk.Unlock(uctx)
	}
	defer unlock()
	loaded, err := lk.Load(ctx)
	if err != nil {
		return nil, err
	}
	o := loaded.Order
	if o == nil {
		return nil, fmt.Errorf("order %s: %w", k, ErrNotFound)
	}
	o.AddEvents(loaded.Events...)
	now := s.cfg.Now()
	q := QueueOp{At: now}
	switch a.Kind {
	case order.ActionRetry:
		err = o.Retry(a.Actor, a.Note, now)
	case order.ActionResolveFound:
		if err := supplierIDFree(ctx, lk, a.OfflineOrderID, o.Reference); err != nil {
			return o, err
		}
		err = o.ResolveFound(a.OfflineOrderID, a.Actor, a.Note, now)
		if !s.cfg.WriteBack {
			q = QueueOp{Done: true, At: now}
		} // else queued: the id a person found is written back (step 9)
	case order.ActionResolveNotAtSupplier:
		err = o.ResolveNotAtSupplier(a.Actor, a.Note, now)
	default:
		err = fmt.Errorf("%w: unknown action %q", order.ErrInvalidTransition, a.Kind)
	}
	if err != nil {
		return o, err
	}
	if err := lk.SaveAndUnlock(ctx, o, q); err != nil {
		if errors.Is(err, ErrSupplierIDInUse) {
			err = fmt.Errorf("%w; check the id (search TropShip for reference %s)", err, o.Reference)
		}
		return o, err
	}
	s.log.InfoContext(ctx, "operator action", "store", k.Store, "order_id", k.ID,
		"action", a.Kind, "actor", a.Actor, "state", o.State.String())
	if !q.Done {
		o.Pending = true
		// Workers only try the lock: release this process's hold on the
		// order first, or the worker would skip it until a sweep.
		unlock()
		s.schedule(k)
	}
	return o, nil
}

// supplierIDFree refuses a supplier id that another order already holds: a
// person who pastes the wrong one would otherwise settle this order with
// another's supplier order, for good. The id is claimed: the save that
// stores it fails if another order took it meanwhile.
func supplierIDFree(ctx context.Context, lk Locked, id, reference string) error {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil // refused by the domain, with its own message
	}
	owner, taken, err := lk.ClaimSupplierID(ctx, id)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("%w: %s is the supplier order of %s; check the id (search TropShip for reference %s)",
			ErrSupplierIDInUse, id, owner, reference)
	}
	return nil
}
