package gateway

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ListOrdersPath is the one operator route that reads query parameters.
const ListOrdersPath = "/v1/orders"

// strictQueryParser is grpc-gateway's query parser, except that a parameter
// naming no field of the request is refused instead of ignored: a misspelt
// filter (?statee=NEEDS_REVIEW) must not quietly list every order.
type strictQueryParser struct{}

func (strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key := range values {
		if err := knownField(msg.ProtoReflect().Descriptor(), key); err != nil {
			return err
		}
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, values, filter)
}

// knownField checks that a dotted query key (by proto or JSON names) names
// a field of md.
func knownField(md protoreflect.MessageDescriptor, key string) error {
	path := strings.Split(key, ".")
	for i, name := range path {
		if md == nil {
			return fmt.Errorf("unknown query parameter %q: %s is not a message", key, strings.Join(path[:i], "."))
		}
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return fmt.Errorf("unknown query parameter %q", key)
		}
		md = fd.Message()
	}
	return nil
}
