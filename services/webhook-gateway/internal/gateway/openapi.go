package gateway

import (
	"net/http"

	"github.com/backorder/backorder/services/webhook-gateway/internal/openapi"
)

// OpenAPIPath serves the OpenAPI document of the HTTP API.
const OpenAPIPath = "/openapi.json"

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapi.Document)
}
