package webhookscope_test

import (
	"testing"

	"github.com/backorder/backorder/services/internal/webhookscope"
)

func TestActedOn(t *testing.T) {
	for scope, want := range map[string]bool{
		"store/order/created":           true,
		"store/order/updated":           true,
		"store/order/statusUpdated":     true,
		"store/order/archived":          false,
		"store/order/message/created":   false,
		"store/order/refund/created":    false,
		"store/order/metafield/created": false,
		"store/order/*":                 false,
		"store/product/updated":         false,
		"":                              false,
		"STORE/ORDER/CREATED":           false,
	} {
		if got := webhookscope.ActedOn(scope); got != want {
			t.Errorf("ActedOn(%q) = %v, want %v", scope, got, want)
		}
	}
}
