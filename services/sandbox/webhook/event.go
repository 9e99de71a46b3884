// Package webhook builds and sends BigCommerce webhook deliveries the way
// BigCommerce does (docs/bigcommerce.md): the thin JSON envelope with a hash,
// Standard Webhooks signature headers keyed by the app's client secret, and
// optional custom headers of the hook. A retry of an event is the same Event
// sent again: same body, same webhook-id and hash, new timestamp and
// signature.
//
// It also builds the deliveries a receiver must refuse (forged, tampered,
// stale, unsigned), for tests of verification.
package webhook

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Order scopes.
const (
	ScopeOrderCreated       = "store/order/created"
	ScopeOrderUpdated       = "store/order/updated"
	ScopeOrderArchived      = "store/order/archived"
	ScopeOrderStatusUpdated = "store/order/statusUpdated"
)

// Event is one webhook event. Sending the same Event twice is a duplicate
// delivery of one event, as BigCommerce's retries are.
type Event struct {
	// ID identifies the event across retries; it is sent as webhook-id.
	ID      string
	Scope   string
	Store   string // store hash; the envelope's producer is "stores/<hash>"
	StoreID string // the numeric store id, a number in a string
	Data    Data
	// CreatedAt is the envelope's created_at in Unix seconds; 0 leaves it
	// out, as one of BigCommerce's documented examples does.
	CreatedAt int64
}

// Data is the envelope's data object.
type Data struct {
	Type   string        `json:"type"`
	ID     uint64        `json:"id"`
	Status *StatusChange `json:"status,omitempty"`
}

// StatusChange is the status object of store/order/statusUpdated.
type StatusChange struct {
	PreviousStatusID uint32 `json:"previous_status_id"`
	NewStatusID      uint32 `json:"new_status_id"`
}

// Envelope is the JSON body of a delivery.
type Envelope struct {
	Scope     string `json:"scope"`
	StoreID   string `json:"store_id"`
	Data      Data   `json:"data"`
	Hash      string `json:"hash"`
	CreatedAt int64  `json:"created_at,omitempty"`
	Producer  string `json:"producer"`
}

// New returns an order event with a fresh id, created now.
func New(scope, store, storeID string, orderID uint64) Event {
	return Event{
		ID:        NewID(),
		Scope:     scope,
		Store:     store,
		StoreID:   storeID,
		Data:      Data{Type: "order", ID: orderID},
		CreatedAt: time.Now().Unix(),
	}
}

// Created returns a store/order/created event.
func Created(store, storeID string, orderID uint64) Event {
	return New(ScopeOrderCreated, store, storeID, orderID)
}

// Updated returns a store/order/updated event.
func Updated(store, storeID string, orderID uint64) Event {
	return New(ScopeOrderUpdated, store, storeID, orderID)
}

// Archived returns a store/order/archived event.
func Archived(store, storeID string, orderID uint64) Event {
	return New(ScopeOrderArchived, store, storeID, orderID)
}

// StatusUpdated returns a store/order/statusUpdated event.
func StatusUpdated(store, storeID string, orderID uint64, prev, next uint32) Event {
	e := New(ScopeOrderStatusUpdated, store, storeID, orderID)
	e.Data.Status = &StatusChange{PreviousStatusID: prev, NewStatusID: next}
	return e
}

// NewID returns a fresh webhook-id in the Standard Webhooks style.
func NewID() string { return "msg_" + rand.Text() }

// Hash returns the envelope's hash: hex SHA-1, unkeyed. BigCommerce does not
// document exactly what it covers, only that retries of one event share it
// and different events differ; two updates of one order have identical data,
// so the event id is hashed together with the data.
func (e Event) Hash() string {
	data, _ := json.Marshal(e.Data) // plain structs: cannot fail
	h := sha1.New()
	h.Write([]byte(e.ID))
	h.Write([]byte{0})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// Envelope returns the delivery body as a value.
func (e Event) Envelope() Envelope {
	return Envelope{
		Scope:     e.Scope,
		StoreID:   e.StoreID,
		Data:      e.Data,
		Hash:      e.Hash(),
		CreatedAt: e.CreatedAt,
		Producer:  "stores/" + e.Store,
	}
}

// Body returns the delivery body; it is the same bytes for every delivery of
// the event.
func (e Event) Body() []byte {
	b, _ := json.Marshal(e.Envelope()) // plain structs: cannot fail
	return b
}
