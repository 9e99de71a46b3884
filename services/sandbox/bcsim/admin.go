package bcsim

import (
	"encoding/json"
	"errors"
	"net/http"
)

// The /_sim/ endpoints seed and inspect the simulator by hand (curl). They
// need no token. The store is the "store" query parameter, which may be left
// out when only one store is configured.

func (s *Server) adminStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) adminGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) adminPutFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&f); err != nil {
		adminError(w, http.StatusBadRequest, "body must be JSON like {\"rate\":0.1,\"count\":0,\"status\":503}")
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

// adminAddOrder takes an Order in its seed form (lines and shipping addresses
// inline) and answers 201 with the order as stored.
func (s *Server) adminAddOrder(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.adminStore(w, r)
	if !ok {
		return
	}
	var o Order
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&o); err != nil {
		adminError(w, http.StatusBadRequest, "body must be an order as JSON: "+err.Error())
		return
	}
	if !validStatus(o.StatusID) {
		adminError(w, http.StatusBadRequest, "status_id must be 0 to 14")
		return
	}
	writeJSON(w, http.StatusCreated, s.AddOrder(hash, o))
}

func (s *Server) adminGetOrder(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.adminStore(w, r)
	if !ok {
		return
	}
	id, _ := pathID(r, "id")
	o, ok := s.Order(hash, id)
	if !ok {
		adminError(w, http.StatusNotFound, "no such order")
		return
	}
	mf := s.Metafields(hash, id)
	if mf == nil {
		mf = []Metafield{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"order": o, "metafields": mf})
}

// adminSetStatus takes {"status_id": N}.
func (s *Server) adminSetStatus(w http.ResponseWriter, r *http.Request) {
	hash, ok := s.adminStore(w, r)
	if !ok {
		return
	}
	id, _ := pathID(r, "id")
	var body struct {
		StatusID *uint32 `json:"status_id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.StatusID == nil {
		adminError(w, http.StatusBadRequest, "body must be {\"status_id\": N}")
		return
	}
	o, err := s.update(hash, id, body.StatusID, nil)
	switch {
	case errors.Is(err, ErrNotFound):
		adminError(w, http.StatusNotFound, "no such order")
	case err != nil:
		adminError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

func (s *Server) adminStore(w http.ResponseWriter, r *http.Request) (string, bool) {
	if hash := r.URL.Query().Get("store"); hash != "" {
		return hash, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) == 1 {
		for hash := range s.tokens {
			return hash, true
		}
	}
	adminError(w, http.StatusBadRequest, "name the store with ?store=<hash>")
	return "", false
}

func adminError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}
