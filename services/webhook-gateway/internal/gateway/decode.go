package gateway

import (
	"errors"
	"io"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/reflect/protoreflect"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// jsonPb is grpc-gateway's JSON marshaler with decoding errors written for
// people: grpc-gateway turns them into InvalidArgument with the error's
// text, and protojson's text has a "proto:" prefix, a non-breaking space
// and the field's JSON name (storeId for store_id).
type jsonPb struct{ *runtime.JSONPb }

func (m jsonPb) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.JSONPb.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || errors.Is(err, io.EOF) { // io.EOF: an empty body, no error
			return err
		}
		return errors.New(decodeMessage(err.Error()))
	})
}

// decodeMessage rewrites one decoding error of a request body.
func decodeMessage(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "proto:"); ok {
		rest = strings.TrimSpace(strings.ReplaceAll(rest, "\u00a0", " "))
		rest = fieldName.ReplaceAllStringFunc(rest, func(m string) string {
			if name, ok := protoNames[strings.TrimPrefix(m, "field ")]; ok {
				return "field " + name
			}
			return m
		})
		return "malformed request body: " + rest
	}
	return "request body is not valid JSON: " + msg
}

// fieldName matches the field named in a protojson error ("field storeId").
var fieldName = regexp.MustCompile(`\bfield [A-Za-z_][A-Za-z0-9_]*`)

// protoNames maps the JSON names of the API's fields to their proto names,
// which the API documents and answers with.
var protoNames = func() map[string]string {
	m := map[string]string{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(msgs protoreflect.MessageDescriptors) {
		for i := range msgs.Len() {
			md := msgs.Get(i)
			for j := range md.Fields().Len() {
				fd := md.Fields().Get(j)
				m[fd.JSONName()] = string(fd.Name())
			}
			walk(md.Messages())
		}
	}
	walk(backorderv1.File_backorder_v1_fulfillment_proto.Messages())
	return m
}()
