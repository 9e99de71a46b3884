package order

import (
	"fmt"
	"time"
)

// Outcome classifies one supplier answer (tropship.md's table).
type Outcome int

const (
	OutcomeUnspecified Outcome = iota
	// Created: the supplier created the order; OfflineOrderID is set.
	Created
	// Valid: a validate_only call passed; nothing was created.
	Valid
	// Refused: the supplier rejected the order (400/422); nothing was
	// created; resending it unchanged would fail again.
	Refused
	// Throttled: 429, nothing created; retry after RetryAfter.
	Throttled
	// NotSent: the request never reached the supplier (connection refused,
	// DNS failure, token endpoint down); retry.
	NotSent
	// Ambiguous: 5xx, timeout or reset after the request was sent: the
	// supplier may or may not have created the order.
	Ambiguous
)

func (o Outcome) String() string {
	if o < 0 || o > Ambiguous {
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
	return [...]string{"unspecified", "created", "valid", "refused", "throttled", "not-sent", "ambiguous"}[o]
}

// Result is the classified answer of one supplier call.
type Result struct {
	Outcome        Outcome
	OfflineOrderID string
	// Reason says what the supplier or the transport said, for a person;
	// it never holds a secret.
	Reason     string
	RetryAfter time.Duration
	// Settings marks a NotSent answer about where or as whom the order
	// was sent (a 403, 404 or 405 naming no error of the order): every
	// order would get it until the settings are fixed.
	Settings bool
}
