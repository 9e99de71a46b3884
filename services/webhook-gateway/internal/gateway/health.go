package gateway

import (
	"net/http"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// healthz says the process is alive. It checks nothing else on purpose: a
// liveness probe that fails when the backend is down gets healthy gateways
// restarted for nothing.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the /readyz answer.
type readiness struct {
	Status       string `json:"status"`
	SupplierMode string `json:"supplier_mode,omitempty"`
	Replica      string `json:"replica,omitempty"`
	StoreHash    string `json:"store_hash,omitempty"`
	EmbeddedEtcd bool   `json:"embedded_etcd,omitempty"`
	Error        string `json:"error,omitempty"`
}

// readyz says whether deliveries can be handed on now: the fulfillment
// service answers its health check with SERVING and reports its status. The
// supplier mode is included because whether orders are live or validate-only
// is the first thing an operator needs to see.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	hc, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		annotate(ctx, errAttr(err))
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "unavailable", Error: "fulfillment health check: " + status.Code(err).String()})
		return
	}
	if hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "unavailable", Error: "fulfillment is " + hc.GetStatus().String()})
		return
	}
	st, err := s.client.GetServiceStatus(ctx, &backorderv1.GetServiceStatusRequest{})
	if err != nil {
		annotate(ctx, errAttr(err))
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "unavailable", Error: "fulfillment status: " + status.Code(err).String()})
		return
	}
	writeJSON(w, http.StatusOK, readiness{
		Status:       "ready",
		SupplierMode: st.GetSupplierMode().String(),
		Replica:      st.GetReplica(),
		StoreHash:    st.GetStoreHash(),
		EmbeddedEtcd: st.GetEmbeddedEtcd(),
	})
}
