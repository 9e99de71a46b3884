package tropsim

import (
	"slices"
	"time"
)

// Order is a live order the simulator created (and, for real, charged).
type Order struct {
	OfflineOrderID string       `json:"offline_order_id"`
	Reference      string       `json:"reference"`
	Status         string       `json:"status"`
	CreatedAt      time.Time    `json:"created_at"`
	Request        OrderRequest `json:"request"` // the body as received
}

// Counts are the simulator's request counters.
type Counts struct {
	// Requests counts every request to /oauth/token and /v1/.
	Requests     int `json:"requests"`
	TokensIssued int `json:"tokens_issued"`
	// Unauthorized counts 401s: bad client credentials or bad tokens.
	Unauthorized int `json:"unauthorized"`
	// Validations counts validate_only calls that passed.
	Validations int `json:"validations"`
	// Rejections counts 400 and 422 answers to order submissions.
	Rejections          int `json:"rejections"`
	Throttled           int `json:"throttled"`
	FailedBeforeCreate  int `json:"failed_before_create"`
	FailedAfterCreate   int `json:"failed_after_create"`
	TimedOutAfterCreate int `json:"timed_out_after_create"`
	Lookups             int `json:"lookups"`
	FailedLookups       int `json:"failed_lookups"`
}

// Ledger is a snapshot of what the simulator has done.
type Ledger struct {
	// Orders are the live orders created, oldest first, including those
	// whose answer was a fault.
	Orders []Order `json:"orders"`
	// References counts live orders per reference.
	References map[string]int `json:"references"`
	// DuplicateReferences is the number of references with more than one
	// order; ExtraOrders the number of orders beyond the first of each
	// reference. Both are 0 when every order was sent exactly once.
	DuplicateReferences int `json:"duplicate_references"`
	ExtraOrders         int `json:"extra_orders"`
	Counts
}

// Ledger returns a snapshot of the ledger.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Ledger{
		Orders:     slices.Clone(s.orders),
		References: make(map[string]int),
		Counts:     s.counts,
	}
	if l.Orders == nil {
		l.Orders = []Order{}
	}
	for i := range l.Orders {
		l.Orders[i].Request = l.Orders[i].Request.clone()
		l.References[l.Orders[i].Reference]++
	}
	for _, n := range l.References {
		if n > 1 {
			l.DuplicateReferences++
			l.ExtraOrders += n - 1
		}
	}
	return l
}

// OrdersFor returns the live orders created for a reference.
func (l Ledger) OrdersFor(reference string) []Order {
	var out []Order
	for _, o := range l.Orders {
		if o.Reference == reference {
			out = append(out, o)
		}
	}
	return out
}
