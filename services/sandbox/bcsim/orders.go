package bcsim

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AddOrder stores an order in a store, replacing any order with the same id,
// and returns it as stored. Missing ids (order, lines, addresses) are
// assigned, missing dates set to now, and lines without an address are sent
// to the first shipping address. It announces store/order/created through
// Options.OnChange.
func (s *Server) AddOrder(storeHash string, o Order) Order {
	s.mu.Lock()
	c := o.clone()
	s.fillLocked(&c)
	s.storeLocked(storeHash).orders[c.ID] = &c
	out := c.clone()
	s.mu.Unlock()
	s.notify([]Change{{Scope: ScopeCreated, Store: storeHash, OrderID: out.ID, NewStatusID: out.StatusID}})
	return out
}

// SetStatus changes an order's status, as a merchant or a payment would, and
// updates its date_modified. It returns ErrNotFound for an unknown order and
// ErrInvalidStatus for a status id BigCommerce does not have.
// A real change is announced as store/order/statusUpdated and
// store/order/updated through Options.OnChange.
func (s *Server) SetStatus(storeHash string, id uint64, statusID uint32) error {
	_, err := s.update(storeHash, id, &statusID, nil)
	return err
}

// Archive archives an order, as DELETE /v2/orders/{id} does in BigCommerce:
// the API still returns it, with is_deleted true. No webhook is sent (the
// store/order/archived scope is not one the service acts on).
func (s *Server) Archive(storeHash string, id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.storeLocked(storeHash).orders[id]
	if !ok {
		return ErrNotFound
	}
	o.IsDeleted, o.DateModified = true, s.now()
	return nil
}

// Order returns a copy of an order.
func (s *Server) Order(storeHash string, id uint64) (Order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.storeLocked(storeHash).orders[id]
	if !ok {
		return Order{}, false
	}
	return o.clone(), true
}

// Orders returns copies of a store's orders, by id.
func (s *Server) Orders(storeHash string) []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked(s.storeLocked(storeHash))
}

// Metafields returns copies of an order's metafields, in creation order.
func (s *Server) Metafields(storeHash string, id uint64) []Metafield {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Metafield
	for _, m := range s.storeLocked(storeHash).metafields[id] {
		out = append(out, *m)
	}
	return out
}

func (s *Server) now() time.Time {
	// BigCommerce dates have whole seconds; keeping the same precision makes
	// date filters behave as they do on a real store.
	return s.opts.Now().UTC().Truncate(time.Second)
}

func (s *Server) fillLocked(o *Order) {
	if o.ID == 0 {
		o.ID = s.nextOrderID
	}
	s.nextOrderID = max(s.nextOrderID, o.ID+1)
	if o.DateCreated.IsZero() {
		o.DateCreated = s.now()
	}
	if o.DateModified.IsZero() {
		o.DateModified = o.DateCreated
	}
	o.DateCreated, o.DateModified = o.DateCreated.UTC(), o.DateModified.UTC()
	for _, p := range []*string{&o.SubtotalExTax, &o.SubtotalIncTax, &o.TotalExTax, &o.TotalIncTax} {
		defaultMoney(p)
	}
	for i := range o.ShippingAddresses {
		a := &o.ShippingAddresses[i]
		a.ID = s.assign(a.ID, &s.nextAddrID)
		a.OrderID = o.ID
		for _, p := range []*string{&a.BaseCost, &a.CostExTax, &a.CostIncTax} {
			defaultMoney(p)
		}
		if a.FormFields == nil {
			a.FormFields = []any{}
		}
	}
	for i := range o.Products {
		s.fillLineLocked(o, &o.Products[i])
	}
}

func (s *Server) fillLineLocked(o *Order, p *Product) {
	p.ID = s.assign(p.ID, &s.nextLineID)
	p.OrderID = o.ID
	if p.OrderAddressID == 0 && len(o.ShippingAddresses) > 0 {
		p.OrderAddressID = o.ShippingAddresses[0].ID
	}
	if p.Type == "" {
		p.Type = "physical"
	}
	for _, m := range []*string{&p.BasePrice, &p.PriceExTax, &p.PriceIncTax, &p.TotalExTax, &p.TotalIncTax} {
		defaultMoney(m)
	}
	if p.ProductOptions == nil {
		p.ProductOptions = []ProductOption{}
	}
	for j := range p.ProductOptions {
		p.ProductOptions[j].OrderProductID = p.ID
	}
}

// assign returns id, or the next id of a sequence when id is zero, and keeps
// the sequence ahead of ids chosen by the caller.
func (s *Server) assign(id uint64, next *uint64) uint64 {
	if id == 0 {
		id = *next
	}
	*next = max(*next, id+1)
	return id
}

func defaultMoney(p *string) {
	if *p == "" {
		*p = "0.0000"
	}
}

func (s *Server) sortedLocked(st *store) []Order {
	out := make([]Order, 0, len(st.orders))
	for _, id := range slices.Sorted(maps.Keys(st.orders)) {
		out = append(out, st.orders[id].clone())
	}
	return out
}

// update applies a merchant's change of status and/or staff notes.
func (s *Server) update(storeHash string, id uint64, statusID *uint32, notes *string) (Order, error) {
	if statusID != nil && !validStatus(*statusID) {
		return Order{}, fmt.Errorf("%w: %d", ErrInvalidStatus, *statusID)
	}
	s.mu.Lock()
	o, ok := s.storeLocked(storeHash).orders[id]
	if !ok {
		s.mu.Unlock()
		return Order{}, ErrNotFound
	}
	var changes []Change
	if statusID != nil && *statusID != o.StatusID {
		changes = append(changes, Change{Scope: ScopeStatusUpdated, Store: storeHash, OrderID: id,
			PrevStatusID: o.StatusID, NewStatusID: *statusID})
		o.StatusID = *statusID
	}
	if notes != nil && *notes != o.StaffNotes {
		o.StaffNotes = *notes
		if changes == nil {
			changes = []Change{} // non-nil: something changed
		}
	}
	if changes != nil {
		o.DateModified = s.now()
		changes = append(changes, Change{Scope: ScopeUpdated, Store: storeHash, OrderID: id, NewStatusID: o.StatusID})
	}
	out := o.clone()
	s.mu.Unlock()
	s.notify(changes)
	return out, nil
}

// lookup finds an order for an API handler, answering 404 itself when the
// store has none.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (Order, bool) {
	id, ok := pathID(r, "id")
	if ok {
		var o Order
		if o, ok = s.Order(r.PathValue("store"), id); ok {
			return o, true
		}
	}
	writeError(w, r, http.StatusNotFound, "")
	return Order{}, false
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	if o, ok := s.lookup(w, r); ok {
		v := s.orderView(r, &o)
		if !s.opts.NoSideLoad {
			v.Consignments = s.consignments(r, &o)
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) getProducts(w http.ResponseWriter, r *http.Request) {
	o, ok := s.lookup(w, r)
	if !ok {
		return
	}
	page, limit := paging(r)
	lines := pageOf(o.Products, page, limit)
	if len(lines) == 0 {
		noContent(w)
		return
	}
	writeJSON(w, http.StatusOK, lines)
}

func (s *Server) getShippingAddresses(w http.ResponseWriter, r *http.Request) {
	o, ok := s.lookup(w, r)
	if !ok {
		return
	}
	page, limit := paging(r)
	addrs := pageOf(o.ShippingAddresses, page, limit)
	if len(addrs) == 0 {
		noContent(w)
		return
	}
	for i := range addrs {
		addrs[i].ItemsTotal, addrs[i].ItemsShipped = itemsTo(&o, addrs[i].ID)
	}
	writeJSON(w, http.StatusOK, addrs)
}

// itemsTo counts the items of the lines sent to one address.
func itemsTo(o *Order, addrID uint64) (total, shipped uint32) {
	for _, p := range o.Products {
		if p.OrderAddressID == addrID {
			total += p.Quantity
			shipped += p.QuantityShipped
		}
	}
	return total, shipped
}

// putOrder changes only status_id and staff_notes. Other fields are ignored
// (and counted), because this project must never send them.
func (s *Server) putOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	if !ok {
		writeError(w, r, http.StatusNotFound, "")
		return
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, r, http.StatusBadRequest, "The request body is not valid JSON.")
		return
	}
	statusID, notes, extra, err := parseOrderUpdate(body)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if extra {
		s.mu.Lock()
		s.stats.PutOrderExtraFields++
		s.mu.Unlock()
	}
	o, err := s.update(r.PathValue("store"), id, statusID, notes)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, r, http.StatusNotFound, "")
	case err != nil:
		writeError(w, r, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, s.orderView(r, &o))
	}
}

func parseOrderUpdate(body map[string]json.RawMessage) (statusID *uint32, notes *string, extra bool, err error) {
	for k, raw := range body {
		switch k {
		case "status_id":
			var v uint32
			if err := json.Unmarshal(raw, &v); err != nil || !validStatus(v) {
				return nil, nil, false, errors.New("The field 'status_id' is invalid.")
			}
			statusID = &v
		case "staff_notes":
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, nil, false, errors.New("The field 'staff_notes' is invalid.")
			}
			notes = &v
		default:
			extra = true
		}
	}
	return statusID, notes, extra, nil
}

// listFilter holds the filters of GET /v2/orders.
type listFilter struct {
	statusID         *uint32
	minID, maxID     uint64
	minMod, maxMod   time.Time
	minCrea, maxCrea time.Time
	sortBy           string
	desc             bool
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	f, err := parseListFilter(r)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var matched []Order
	for _, o := range s.Orders(r.PathValue("store")) {
		if f.match(&o) {
			matched = append(matched, o)
		}
	}
	f.sort(matched)
	page, limit := paging(r)
	matched = pageOf(matched, page, limit)
	if len(matched) == 0 {
		noContent(w)
		return
	}
	views := make([]orderView, len(matched))
	for i := range matched {
		views[i] = s.orderView(r, &matched[i])
	}
	writeJSON(w, http.StatusOK, views)
}

func parseListFilter(r *http.Request) (listFilter, error) {
	q := r.URL.Query()
	f := listFilter{sortBy: "id"}
	if v := q.Get("status_id"); v != "" {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return f, errors.New("The field 'status_id' is invalid.")
		}
		id32 := uint32(id)
		f.statusID = &id32
	}
	for name, dst := range map[string]*uint64{"min_id": &f.minID, "max_id": &f.maxID} {
		if v := q.Get(name); v != "" {
			id, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return f, fmt.Errorf("The field '%s' is invalid.", name)
			}
			*dst = id
		}
	}
	dates := map[string]*time.Time{
		"min_date_modified": &f.minMod, "max_date_modified": &f.maxMod,
		"min_date_created": &f.minCrea, "max_date_created": &f.maxCrea,
	}
	for name, dst := range dates {
		if v := q.Get(name); v != "" {
			t, err := ParseDate(v)
			if err != nil {
				return f, fmt.Errorf("The field '%s' is invalid.", name)
			}
			*dst = t
		}
	}
	if v := q.Get("sort"); v != "" {
		field, dir, _ := strings.Cut(v, ":")
		if field != "id" && field != "date_created" && field != "date_modified" {
			return f, errors.New("The field 'sort' is invalid.")
		}
		f.sortBy, f.desc = field, dir == "desc"
	}
	return f, nil
}

func (f *listFilter) match(o *Order) bool {
	switch {
	case f.statusID != nil && o.StatusID != *f.statusID,
		f.minID != 0 && o.ID < f.minID,
		f.maxID != 0 && o.ID > f.maxID,
		!f.minMod.IsZero() && o.DateModified.Before(f.minMod),
		!f.maxMod.IsZero() && o.DateModified.After(f.maxMod),
		!f.minCrea.IsZero() && o.DateCreated.Before(f.minCrea),
		!f.maxCrea.IsZero() && o.DateCreated.After(f.maxCrea):
		return false
	}
	return true
}

func (f *listFilter) sort(orders []Order) {
	key := func(o *Order) int64 {
		switch f.sortBy {
		case "date_created":
			return o.DateCreated.Unix()
		case "date_modified":
			return o.DateModified.Unix()
		}
		return int64(o.ID)
	}
	slices.SortStableFunc(orders, func(a, b Order) int {
		c := cmp.Or(cmp.Compare(key(&a), key(&b)), cmp.Compare(a.ID, b.ID))
		if f.desc {
			return -c
		}
		return c
	})
}
