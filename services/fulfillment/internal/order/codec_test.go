package order

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A record names its state and mode, so that etcdctl shows what it means,
// and still reads records written with numbers.
func TestRecordNamesStateAndMode(t *testing.T) {
	o := New(Key{Store: "s", ID: 1}, time.Unix(0, 0).UTC())
	o.State, o.Mode = NeedsReview, ModeLive
	o.Actions = []Action{{Kind: ActionRetry, Actor: "a", From: Rejected, To: Received}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"state":"NEEDS_REVIEW"`, `"mode":"live"`, `"from":"REJECTED"`, `"to":"RECEIVED"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record %s lacks %s", b, want)
		}
	}
	var back Order
	if err := json.Unmarshal(b, &back); err != nil || back.State != NeedsReview || back.Mode != ModeLive ||
		back.Actions[0].From != Rejected || back.Actions[0].To != Received {
		t.Fatalf("read back %+v, %v", back, err)
	}

	var old Order
	if err := json.Unmarshal([]byte(`{"state":4,"mode":2,"actions":[{"from":7,"to":1}]}`), &old); err != nil ||
		old.State != Submitted || old.Mode != ModeLive || old.Actions[0].From != Rejected {
		t.Fatalf("record with numbers read as %+v, %v", old, err)
	}

	for _, bad := range []string{`{"state":"SHIPPED"}`, `{"state":99}`, `{"mode":"test"}`, `{"state":true}`} {
		var o Order
		if err := json.Unmarshal([]byte(bad), &o); err == nil {
			t.Errorf("%s read without error as %+v", bad, o)
		}
	}
}
