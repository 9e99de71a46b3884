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
func (s State) MarshalJSON() ([]byte, error) {
	n, ok := stateNames[s]
	if !ok {
		return nil, fmt.Errorf("order state %d has no name", int(s))
	}
	return json.Marshal(n)
}

// UnmarshalJSON reads a state's name, or the number of an older record.
func (s *State) UnmarshalJSON(b []byte) error {
	v, err := nameOrNumber(b, "order state", func(name string) (int, bool) {
		st, ok := ParseState(name)
		return int(st), ok
	})
	if err != nil {
		return err
	}
	if _, ok := stateNames[State(v)]; !ok {
		return fmt.Errorf("order state %d is unknown", v)
	}
	*s = State(v)
	return nil
}

var modeNames = map[Mode]string{ModeUnspecified: "unspecified", ModeValidate: "validate", ModeLive: "live"}

// MarshalJSON writes the mode's name.
func (m Mode) MarshalJSON() ([]byte, error) {
	n, ok := modeNames[m]
	if !ok {
		return nil, fmt.Errorf("mode %d has no name", int(m))
	}
	return json.Marshal(n)
}

// UnmarshalJSON reads a mode's name, or the number of an older record.
func (m *Mode) UnmarshalJSON(b []byte) error {
	v, err := nameOrNumber(b, "mode", func(name string) (int, bool) {
		for mode, n := range modeNames {
			if n == name {
				return int(mode), true
			}
		}
		return 0, false
	})
	if err != nil {
		return err
	}
	if _, ok := modeNames[Mode(v)]; !ok {
		return fmt.Errorf("mode %d is unknown", v)
	}
	*m = Mode(v)
	return nil
}

func nameOrNumber(b []byte, what string, byName func(string) (int, bool)) (int, error) {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		v, ok := byName(name)
		if !ok {
			return 0, fmt.Errorf("%s %q is unknown", what, name)
		}
		return v, nil
	}
	v, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: want a name or a number, got %s", what, b)
	}
	return v, nil
}
