// Package openapi holds the OpenAPI (Swagger 2.0) document of the HTTP API:
// the webhook route and the operator API. spec/ is written by
// protoc-gen-openapiv2 (`go tool buf generate`, from proto/ and the
// grpc-gateway API configuration) and never edited by hand; CI fails when it
// differs from what the protos generate.
package openapi

import _ "embed"

// Document is the OpenAPI document, as JSON.
//
//go:embed spec/backorder.swagger.json
var Document []byte
