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
	md := msg.ProtoReflect().Descriptor()
	for key := range values {
		if err := knownField(md, key); err != nil {
			return err
		}
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, bareEnumNames(md, values), filter)
}

// bareEnumNames lets an enum parameter name its value as design.md and the
// README's tables do (state=NEEDS_REVIEW, or needs_review) as well as by
// its protobuf name (ORDER_STATE_NEEDS_REVIEW) or number: a bare name is
// given the prefix of the enum's values.
func bareEnumNames(md protoreflect.MessageDescriptor, values url.Values) url.Values {
	out := url.Values{}
	for key, vs := range values {
		fd := field(md, key)
		if fd == nil || fd.Enum() == nil {
			out[key] = vs
			continue
		}
		ev := fd.Enum().Values()
		prefix := ""
		if ev.Len() > 0 {
			zero := string(ev.Get(0).Name()) // ORDER_STATE_UNSPECIFIED
			if i := strings.LastIndex(zero, "_"); i > 0 {
				prefix = zero[:i+1]
			}
		}
		for _, v := range vs {
			if ev.ByName(protoreflect.Name(v)) == nil && prefix != "" {
				// Not the zero value: its bare name ("unspecified") would
				// quietly mean no filter at all.
				full := protoreflect.Name(prefix + strings.ToUpper(strings.TrimSpace(v)))
				if e := ev.ByName(full); e != nil && e.Number() != 0 {
					v = string(full)
				}
			}
			out[key] = append(out[key], v)
		}
	}
	return out
}

// knownField checks that a dotted query key (by proto or JSON names) names
// a field of md.
func knownField(md protoreflect.MessageDescriptor, key string) error {
	path := strings.Split(key, ".")
	for i, name := range path {
		if md == nil {
			return fmt.Errorf("unknown query parameter %q: %s is not a message", key, strings.Join(path[:i], "."))
		}
		fd := field(md, name)
		if fd == nil {
			return fmt.Errorf("unknown query parameter %q", key)
		}
		md = fd.Message()
	}
	return nil
}

// field returns md's field of that proto or JSON name, or nil.
func field(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}
