package e2e_test

import (
	"testing"

	"github.com/backorder/backorder/services/sandbox/bcsim"
	"github.com/backorder/backorder/services/sandbox/webhook"
)

// The built service reads an order's lines and address with the order,
// from a store API that side-loads them, unless BIGCOMMERCE_SIDE_LOAD is
// off; from one that does not, it reads them apart. Either way the
// supplier gets the order once, with its lines.
func TestOrderReadSideLoad(t *testing.T) {
	for _, tc := range []struct {
		name          string
		env           map[string]string
		sim           bcsim.Options
		reads, extras int // order reads; lines and address reads
	}{
		{"side-loaded", nil, bcsim.Options{}, 1, 0},
		{"setting off", map[string]string{"BIGCOMMERCE_SIDE_LOAD": "false"}, bcsim.Options{}, 1, 2},
		{"store API without it", nil, bcsim.Options{NoSideLoad: true}, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, options{replicas: 1, mode: "live", bigcommerce: tc.sim, env: tc.env})
			const id = 8401
			e.bc.AddOrder(storeHash, bcsim.NewUKOrder(id, bcsim.StatusAwaitingFulfillment, bcsim.Lines(3)...))
			e.sendAll([]webhook.Event{webhook.Created(storeHash, storeID, id)}, 1)
			e.checkWrittenBack(e.waitState(id, writtenBack))
			st := e.bc.Stats()
			if st.Order != tc.reads || st.Products+st.ShippingAddresses != tc.extras || st.MetafieldsGet != 1 || st.MetafieldsPost != 1 {
				t.Errorf("BigCommerce %+v; want %d order read(s), %d reads of lines and addresses, the metafield read and written once", st, tc.reads, tc.extras)
			}
			if l := e.ts.Ledger(); len(l.Orders) != 1 || len(l.Orders[0].Request.Lines) != 3 || l.Orders[0].Request.Delivery.Postcode == "" {
				t.Errorf("supplier ledger %+v; want one order of 3 lines, with its address", l.Orders)
			}
		})
	}
}
