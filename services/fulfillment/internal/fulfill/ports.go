package fulfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Storefront reads orders from BigCommerce and writes the supplier's id
// back to them.
type Storefront interface {
	// Order reads the order (one request: its status, billing address,
	// message) and, where the API side-loads them in the same request,
	// its lines and shipping addresses (StorefrontOrder.ContentsRead). It
	// returns ErrOrderNotFound when the store has no such order, and a
	// *RetryableError for failures worth retrying.
	Order(ctx context.Context, k order.Key) (order.StorefrontOrder, error)
	// Contents reads all pages of an order's lines and its shipping
	// addresses, read only for an order whose status is eligible and
	// whose Order came without them. The order exists: a 404 here is a
	// failure, never ErrOrderNotFound.
	Contents(ctx context.Context, k order.Key) ([]order.Line, []order.Address, error)
	// SupplierReference returns the supplier's offline_order_id recorded on
	// the order's metafield by an earlier run, or "" when there is none.
	SupplierReference(ctx context.Context, k order.Key) (string, error)
	// SetSupplierReference records the supplier's offline_order_id on the
	// order's metafield (step 9), where SupplierReference finds it. Writing
	// the same id again is harmless. Failures worth retrying are a
	// *RetryableError.
	SetSupplierReference(ctx context.Context, k order.Key, offlineOrderID string) error
}

// OrderLister lists a store's orders from BigCommerce, for the sweep that
// finds orders whose webhooks never arrived.
type OrderLister interface {
	// ModifiedOrders lists the store's orders in status statusID modified
	// at or after since, every page.
	ModifiedOrders(ctx context.Context, store string, statusID uint32, since time.Time) ([]order.Modified, error)
}

// Supplier submits orders to TropShip.
type Supplier interface {
	// Submit sends one order, validate-only or live, and classifies the
	// answer. It never returns an error: every failure is an Outcome.
	Submit(ctx context.Context, s order.Submission, validateOnly bool) order.Result
	// Lookup asks the supplier for its order with a reference. found=false
	// with a nil error means the supplier has none: safe to send again.
	Lookup(ctx context.Context, reference string) (offlineOrderID string, found bool, err error)
}

// ErrOrderNotFound: the storefront has no such order.
var ErrOrderNotFound = errors.New("order not found in the storefront")

// ErrCredentialsRefused: an outside service refused this service's
// credentials. Retrying does not help until a person fixes them.
var ErrCredentialsRefused = errors.New("credentials refused")

// RetryableError is a transient failure of an outside service: nothing was
// changed, and the same call may succeed later.
type RetryableError struct {
	Err error
	// RetryAfter is how long the service asked us to wait (0: unknown).
	RetryAfter time.Duration
}

func (e *RetryableError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// sendGuardKey carries a send guard in a context.
type sendGuardKey struct{}

// WithSendGuard returns a context whose supplier calls check guard right
// before the request leaves (after the token is in hand), and are not sent
// when it fails. The flow guards every live call with the order's lock, so a
// holder that lost its lock while it waited (for a token, or paused) does
// not send.
func WithSendGuard(ctx context.Context, guard func(context.Context) error) context.Context {
	return context.WithValue(ctx, sendGuardKey{}, guard)
}

// CheckSendGuard runs the guard of ctx, if any. Supplier implementations
// call it immediately before sending a request that can create an order.
func CheckSendGuard(ctx context.Context) error {
	if g, ok := ctx.Value(sendGuardKey{}).(func(context.Context) error); ok {
		return g(ctx)
	}
	return nil
}
