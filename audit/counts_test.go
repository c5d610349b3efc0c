package audit_test

import (
	"encoding/json"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
)

// Answers keep the JSON of schema 1 ("none" for no answer) with numeric keys in memory.
func TestAnswersJSON(t *testing.T) {
	a := audit.Answers{200: 3, 401: 1, audit.NoAnswer: 2}
	b, err := json.Marshal(a)
	if err != nil || string(b) != `{"200":3,"401":1,"none":2}` {
		t.Fatalf("%s %v", b, err)
	}
	var back audit.Answers
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 3 || back[audit.NoAnswer] != 2 || back[401] != 1 {
		t.Fatalf("%v %v", back, err)
	}
	if got := back.Format(" x", ", "); got != "200 x3, 401 x1, none x2" {
		t.Fatal(got)
	}
	if back.Refused() != 1 || back.Refusal() != 401 {
		t.Fatal(back.Refused(), back.Refusal())
	}
	for _, bad := range []string{`{"ok":1}`, `{"99":1}`, `{"1000":1}`, `[1]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
