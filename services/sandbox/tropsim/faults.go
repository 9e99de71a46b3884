package tropsim

import (
	"encoding/json"
	"time"
)

// Trigger decides when a fault fires: first on the next Count requests it
// applies to, then with probability Rate.
type Trigger struct {
	Rate  float64 `json:"rate,omitempty"`
	Count int     `json:"count,omitempty"`
	// Status is the answer's status where the fault has one; zero means
	// 500 (503 is the other realistic choice).
	Status int `json:"status,omitempty"`
}

// Faults are the simulator's fault switches. Unless ValidateToo is set,
// Throttle and FailBeforeCreate hit live orders only, so that a count is
// not used up by the validate-only call a client makes first.
type Faults struct {
	// FailBeforeCreate answers 5xx before anything is created.
	FailBeforeCreate Trigger `json:"fail_before_create"`
	// FailAfterCreate creates and records the order, then answers 5xx:
	// the client cannot know the order exists.
	FailAfterCreate Trigger `json:"fail_after_create"`
	// TimeoutAfterCreate creates and records the order, then holds the
	// request until the client gives up (or Close, or Options.MaxHang) and
	// drops the connection.
	TimeoutAfterCreate Trigger `json:"timeout_after_create"`
	// Throttle answers 429 with Retry-After before anything is processed.
	Throttle Trigger `json:"throttle"`
	// RetryAfter is the Retry-After of a 429, rounded up to whole seconds;
	// zero means 1 s.
	RetryAfter time.Duration `json:"-"`
	// FailLookup answers 5xx to GET /v1/offline-orders.
	FailLookup Trigger `json:"fail_lookup"`
	// Latency delays every /v1/ answer; a request whose context ends
	// meanwhile is dropped unanswered.
	Latency time.Duration `json:"-"`
	// TokenTTL is the real lifetime of tokens issued from now on, while
	// their expires_in still advertises Options.TokenTTL: tokens die early,
	// so a client meets 401s it did not expect.
	TokenTTL time.Duration `json:"-"`
	// ValidateToo makes Throttle and FailBeforeCreate hit validate-only
	// calls as well.
	ValidateToo bool `json:"validate_too"`
	// RevokeTokens, when set in SetFaults, invalidates every token issued
	// so far. It is an action, not a switch: Faults() never reports it.
	RevokeTokens bool `json:"revoke_tokens,omitempty"`
}

// faultsAlias has Faults' fields without its methods, for JSON.
type faultsAlias Faults

// faultsJSON writes durations as Go duration strings ("250ms", "2s"),
// which is what a person types into curl.
type faultsJSON struct {
	faultsAlias
	RetryAfter string `json:"retry_after,omitempty"`
	Latency    string `json:"latency,omitempty"`
	TokenTTL   string `json:"token_ttl,omitempty"`
}

// MarshalJSON writes durations as strings like "2s".
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{faultsAlias: faultsAlias(f)}
	for dst, d := range map[*string]time.Duration{&j.RetryAfter: f.RetryAfter, &j.Latency: f.Latency, &j.TokenTTL: f.TokenTTL} {
		if d != 0 {
			*dst = d.String()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations as strings like "2s" or "250ms".
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults(j.faultsAlias)
	for src, dst := range map[string]*time.Duration{j.RetryAfter: &f.RetryAfter, j.Latency: &f.Latency, j.TokenTTL: &f.TokenTTL} {
		if src == "" {
			continue
		}
		d, err := time.ParseDuration(src)
		if err != nil {
			return err
		}
		*dst = d
	}
	return nil
}

// SetFaults replaces the fault switches (and revokes every token if
// f.RevokeTokens is set).
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.RevokeTokens {
		clear(s.tokens)
		f.RevokeTokens = false
	}
	s.faults = f
}

// Faults returns the fault switches; counts are what remains of them.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// RevokeTokens invalidates every token issued so far, as if the supplier
// had rotated its keys: the next call with an old token answers 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// fireLocked reports whether a trigger fires for this request, using up one
// of its count.
func (s *Server) fireLocked(t *Trigger) bool {
	if t.Count > 0 {
		t.Count--
		return true
	}
	return t.Rate > 0 && s.rng.Float64() < t.Rate
}

func (t Trigger) status() int {
	if t.Status != 0 {
		return t.Status
	}
	return 500
}
