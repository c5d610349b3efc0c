package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// TestRedactionOnTheWire: real curl carries a token the emulator issued in the path, in a
// path parameter, in the User-Agent and in the query, under a shell whose own command line
// holds the token literally (TOKEN=...; ...); the value appears in no record, summary, state
// file or table.
func TestRedactionOnTheWire(t *testing.T) {
	h := newHarness(t)
	_, tok := h.run(t, testbed.Instance, true, "curl", "-sS", "-m", "60", "-X", "PUT",
		"-H", "X-aws-ec2-metadata-token-ttl-seconds: 300", base+"/latest/api/token")
	tok = strings.TrimSpace(tok)
	if len(tok) < 20 {
		t.Fatalf("no token from the emulator: %q", tok)
	}
	script := `TOKEN=` + tok + `; H="X-aws-ec2-metadata-token: $TOKEN"
curl -sS -m 60 -o /dev/null -H "$H" ` + base + `/latest/meta-data/$TOKEN
curl -sS -m 60 -o /dev/null -H "$H" "` + base + `/latest/meta-data/instance-id;tok=$TOKEN"
curl -sS -m 60 -o /dev/null -H "$H" -A "tool/1.0 token=$TOKEN" ` + base + `/latest/meta-data/instance-id
curl -sS -m 60 -o /dev/null -H "$H" "` + base + `/latest/meta-data/instance-id?token=$TOKEN"`
	cmd, _ := h.run(t, testbed.Instance, true, "sh", "-c", script)
	sh := uint32(cmd.Process.Pid)
	rs := h.waitFor(t, "the four curls under sh", func(rs []audit.Record) ([]audit.Record, bool) {
		got := filter(rs, func(r audit.Record) bool { return r.Type == audit.RecordRequest && r.Process.PPID == sh })
		return got, len(got) >= 4
	})
	for _, r := range rs {
		if r.Class != audit.ClassIMDSv2 || len(r.Process.Parents) == 0 || !strings.Contains(r.Process.Parents[0].Cmdline, "TOKEN=[REDACTED]") {
			t.Errorf("record %+v: want an IMDSv2 request under the redacted shell", r)
		}
	}
	snap := h.auditor.Snapshot()
	state := filepath.Join(t.TempDir(), "state.json")
	if err := audit.SaveState(state, snap); err != nil {
		t.Fatal(err)
	}
	stateBytes, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := audit.WriteTable(&table, snap); err != nil {
		t.Fatal(err)
	}
	records, _ := json.Marshal(h.snapshot())
	summary, _ := json.Marshal(snap)
	for name, b := range map[string][]byte{"records": records, "summary": summary, "state": stateBytes, "table": table.Bytes()} {
		if i := bytes.Index(b, []byte(strings.TrimRight(tok, "="))); i >= 0 {
			t.Errorf("%s holds the token: ...%s...", name, b[max(0, i-160):min(len(b), i+len(tok)+20)])
		}
	}
	if !bytes.Contains(records, []byte("instance-id;tok=[REDACTED]")) || !bytes.Contains(records, []byte("tool/1.0 token=[REDACTED]")) {
		t.Errorf("records lost the shape of what was redacted:\n%s", records)
	}
}
