package order

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// States and modes are stored by name ("SUBMITTED", "live"), so that a
// record read with etcdctl says what it means. Records written before names
// were used hold numbers; both are read.

// MarshalJSON writes the state's name.
func (s State) MarshalJSON() ([]byte, error) { return marshalName(s, stateNames, "order state") }

// UnmarshalJSON reads a state's name, or the number of an older record.
func (s *State) UnmarshalJSON(b []byte) error { return unmarshalName(b, s, stateNames, "order state") }

var modeNames = map[Mode]string{ModeUnspecified: "unspecified", ModeValidate: "validate", ModeLive: "live"}

// MarshalJSON writes the mode's name.
func (m Mode) MarshalJSON() ([]byte, error) { return marshalName(m, modeNames, "mode") }

// UnmarshalJSON reads a mode's name, or the number of an older record.
func (m *Mode) UnmarshalJSON(b []byte) error { return unmarshalName(b, m, modeNames, "mode") }

func marshalName[T ~int](v T, names map[T]string, what string) ([]byte, error) {
	n, ok := names[v]
	if !ok {
		return nil, fmt.Errorf("%s %d has no name", what, int(v))
	}
	return json.Marshal(n)
}

// unmarshalName reads into dst a name of names, or a number that has one.
func unmarshalName[T ~int](b []byte, dst *T, names map[T]string, what string) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		for v, n := range names {
			if n == name {
				*dst = v
				return nil
			}
		}
		return fmt.Errorf("%s %q is unknown", what, name)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("%s: want a name or a number, got %s", what, b)
	}
	if _, ok := names[T(n)]; !ok {
		return fmt.Errorf("%s %d is unknown", what, n)
	}
	*dst = T(n)
	return nil
}
