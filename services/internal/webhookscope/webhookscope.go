// Package webhookscope names the BigCommerce webhook scopes the product acts
// on. The gateway answers every other delivery itself (200, ignored), so an
// event of another shape can never fail to decode and be retried for 48 h;
// the fulfillment service checks again for its gRPC clients.
package webhookscope

// The order events that can make an order eligible. Others (messages,
// refunds, transactions, archiving, metafields: our own write-back fires
// those) are acknowledged and ignored.
const (
	OrderCreated       = "store/order/created"
	OrderUpdated       = "store/order/updated"
	OrderStatusUpdated = "store/order/statusUpdated"
)

// ActedOn reports whether deliveries of scope are recorded and processed.
func ActedOn(scope string) bool {
	switch scope {
	case OrderCreated, OrderUpdated, OrderStatusUpdated:
		return true
	}
	return false
}
