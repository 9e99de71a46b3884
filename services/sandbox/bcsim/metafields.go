package bcsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Limits BigCommerce puts on metafield fields.
const (
	maxNamespace = 64
	maxKey       = 64
	maxValue     = 65535
)

var permissionSets = []string{"app_only", "read", "write", "read_and_sf_access", "write_and_sf_access"}

// metafieldInput is the body of POST and PUT; pointers tell absent fields
// from empty ones, because PUT changes only what it is given.
type metafieldInput struct {
	Namespace     *string `json:"namespace"`
	Key           *string `json:"key"`
	Value         *string `json:"value"`
	PermissionSet *string `json:"permission_set"`
	Description   *string `json:"description"`
}

// apiError is an answer the handler should send instead of a result.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

func (s *Server) getMetafields(w http.ResponseWriter, r *http.Request) {
	id, ok := s.orderExists(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	namespaces, keys := listParam(q.Get("namespace"), q.Get("namespace:in")), listParam(q.Get("key"), q.Get("key:in"))
	var matched []Metafield
	for _, m := range s.Metafields(r.PathValue("store"), id) {
		if (len(namespaces) == 0 || slices.Contains(namespaces, m.Namespace)) &&
			(len(keys) == 0 || slices.Contains(keys, m.Key)) {
			matched = append(matched, m)
		}
	}
	page, limit := paging(r)
	data := pageOf(matched, page, limit)
	if data == nil {
		data = []Metafield{} // v3 answers an empty list, not 204
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"meta": map[string]any{"pagination": pagination(len(matched), len(data), page, limit)},
	})
}

func listParam(one, in string) []string {
	var out []string
	for _, v := range []string{one, in} {
		for part := range strings.SplitSeq(v, ",") {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func pagination(total, count, page, limit int) map[string]any {
	pages := (total + limit - 1) / limit
	links := map[string]string{"current": fmt.Sprintf("?page=%d&limit=%d", page, limit)}
	if page > 1 {
		links["previous"] = fmt.Sprintf("?page=%d&limit=%d", page-1, limit)
	}
	if page < pages {
		links["next"] = fmt.Sprintf("?page=%d&limit=%d", page+1, limit)
	}
	return map[string]any{
		"total": total, "count": count, "per_page": limit,
		"current_page": page, "total_pages": pages, "links": links,
	}
}

func (s *Server) postMetafield(w http.ResponseWriter, r *http.Request) {
	id, ok := s.orderExists(w, r)
	if !ok {
		return
	}
	in, ok := decodeMetafield(w, r)
	if !ok {
		return
	}
	m, err := s.createMetafield(r.PathValue("store"), id, in)
	if err != nil {
		writeAPIError(w, r, err)
		return
	}
	// BigCommerce answers a created metafield with 200, not 201.
	writeJSON(w, http.StatusOK, map[string]any{"data": m, "meta": map[string]any{}})
}

func (s *Server) createMetafield(storeHash string, orderID uint64, in metafieldInput) (Metafield, error) {
	if in.Namespace == nil || in.Key == nil || in.Value == nil || in.PermissionSet == nil {
		return Metafield{}, &apiError{http.StatusUnprocessableEntity,
			"The fields namespace, key, value and permission_set are required."}
	}
	m := Metafield{ResourceType: "order", ResourceID: orderID}
	applyMetafield(&m, in)
	if err := validateMetafield(&m); err != nil {
		return Metafield{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.storeLocked(storeHash)
	if conflict(st.metafields[orderID], &m) {
		return Metafield{}, errDuplicateMetafield
	}
	m.ID = s.nextMetaID
	s.nextMetaID++
	m.DateCreated = s.now()
	m.DateModified = m.DateCreated
	st.metafields[orderID] = append(st.metafields[orderID], &m)
	return m, nil
}

var errDuplicateMetafield = &apiError{http.StatusConflict,
	"A metafield with this namespace and key already exists for this resource."}

func conflict(existing []*Metafield, m *Metafield) bool {
	for _, e := range existing {
		if e.ID != m.ID && e.Namespace == m.Namespace && e.Key == m.Key {
			return true
		}
	}
	return false
}

func (s *Server) putMetafield(w http.ResponseWriter, r *http.Request) {
	id, ok := s.orderExists(w, r)
	if !ok {
		return
	}
	mid, ok := pathID(r, "mid")
	if !ok {
		writeError(w, r, http.StatusNotFound, "")
		return
	}
	in, ok := decodeMetafield(w, r)
	if !ok {
		return
	}
	m, err := s.changeMetafield(r.PathValue("store"), id, mid, in)
	if err != nil {
		writeAPIError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": m, "meta": map[string]any{}})
}

func (s *Server) changeMetafield(storeHash string, orderID, mid uint64, in metafieldInput) (Metafield, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.storeLocked(storeHash).metafields[orderID]
	i := slices.IndexFunc(list, func(m *Metafield) bool { return m.ID == mid })
	if i < 0 {
		return Metafield{}, &apiError{http.StatusNotFound, ""}
	}
	m := *list[i]
	applyMetafield(&m, in)
	if err := validateMetafield(&m); err != nil {
		return Metafield{}, err
	}
	if conflict(list, &m) {
		return Metafield{}, errDuplicateMetafield
	}
	m.DateModified = s.now()
	*list[i] = m
	return m, nil
}

func (s *Server) deleteMetafield(w http.ResponseWriter, r *http.Request) {
	id, ok := s.orderExists(w, r)
	if !ok {
		return
	}
	mid, _ := pathID(r, "mid")
	s.mu.Lock()
	st := s.storeLocked(r.PathValue("store"))
	before := len(st.metafields[id])
	st.metafields[id] = slices.DeleteFunc(st.metafields[id], func(m *Metafield) bool { return m.ID == mid })
	deleted := len(st.metafields[id]) < before
	s.mu.Unlock()
	if !deleted {
		writeError(w, r, http.StatusNotFound, "")
		return
	}
	noContent(w)
}

// orderExists answers 404 itself for an unknown order.
func (s *Server) orderExists(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, ok := pathID(r, "id")
	if ok {
		s.mu.Lock()
		_, ok = s.storeLocked(r.PathValue("store")).orders[id]
		s.mu.Unlock()
	}
	if !ok {
		writeError(w, r, http.StatusNotFound, "")
	}
	return id, ok
}

func decodeMetafield(w http.ResponseWriter, r *http.Request) (metafieldInput, bool) {
	var in metafieldInput
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeError(w, r, http.StatusBadRequest, "The request body is not valid JSON.")
		return in, false
	}
	return in, true
}

func applyMetafield(m *Metafield, in metafieldInput) {
	for dst, src := range map[*string]*string{
		&m.Namespace: in.Namespace, &m.Key: in.Key, &m.Value: in.Value,
		&m.PermissionSet: in.PermissionSet, &m.Description: in.Description,
	} {
		if src != nil {
			*dst = *src
		}
	}
}

func validateMetafield(m *Metafield) error {
	switch {
	case m.Namespace == "" || len(m.Namespace) > maxNamespace:
		return &apiError{http.StatusUnprocessableEntity, "namespace must be 1 to 64 characters."}
	case m.Key == "" || len(m.Key) > maxKey:
		return &apiError{http.StatusUnprocessableEntity, "key must be 1 to 64 characters."}
	case m.Value == "" || len(m.Value) > maxValue:
		return &apiError{http.StatusUnprocessableEntity, "value must be 1 to 65535 characters."}
	case !slices.Contains(permissionSets, m.PermissionSet):
		return &apiError{http.StatusUnprocessableEntity, "permission_set must be one of " + strings.Join(permissionSets, ", ") + "."}
	}
	return nil
}

func writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := err.(*apiError); ok {
		writeError(w, r, e.status, e.message)
		return
	}
	writeError(w, r, http.StatusInternalServerError, "")
}
