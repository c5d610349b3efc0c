package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// hostileSession runs processes with hostile names and a script that puts
// tokens and credentials on its command line.
func hostileSession(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	evil := replay.Proc{PID: 6000, PPID: 1, Comm: "\x1b[31mred\x07\n"}
	r.Exec(evil, "/tmp/\x1b]0;pwned\x07\xff\xfe/evil\u202egnp.exe",
		"\x1b[2J\x1b[Hclear", "bad\xc3\x28utf8", strings.Repeat("A", 100000), "tab\there")
	c := r.Connect(evil)
	c.Send(replay.GetV1("/latest/meta-data/\x1b[0m", "curl/8 \x1b[31m\xff"))
	c.Recv(replay.Answer(200, 1), 64)

	script := replay.Proc{PID: 6001, PPID: 1, Comm: "bash"}
	r.Exec(script, "/usr/bin/curl", "curl", "-H", "X-aws-ec2-metadata-token: "+replay.FakeToken,
		"--header=x-aws-ec2-metadata-token:"+replay.FakeToken, "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600",
		"-H", `X-aws-ec2-metadata-token: $TOKEN`, "TOKEN="+replay.FakeToken,
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "--aws-secret-access-key", "wJalrXUtnFEMI")
	c2 := r.Connect(script)
	c2.Send(replay.GetV2("/latest/meta-data/", "curl/8.5.0"))
	c2.Recv(replay.Answer(200, 56), 64)
	h.feed(r)
	return h
}

func TestHostileNamesInJSON(t *testing.T) {
	h := hostileSession(t)
	var buf bytes.Buffer
	jl := audit.NewJSONLines(&buf)
	for _, r := range h.records {
		if err := jl.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.WriteSummaryJSON(&buf, h.a.Snapshot()); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	n := 0
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, buf.Bytes())
		}
		n++
	}
	if n != 3 || !utf8.Valid(buf.Bytes()) {
		t.Fatalf("%d documents, valid UTF-8 %v", n, utf8.Valid(buf.Bytes()))
	}
	if bytes.ContainsAny(buf.Bytes(), "\x1b\x07") {
		t.Fatal("raw control characters in JSON")
	}
	p := h.requests()[0].Process
	if len(p.Cmdline) > 4100 || !strings.Contains(p.Cmdline, `\xff`) && !strings.Contains(p.Exe, `\xff`) {
		t.Fatalf("cmdline not bounded or invalid bytes not escaped: %d %q", len(p.Cmdline), p.Exe)
	}
}

func TestHostileNamesInText(t *testing.T) {
	h := hostileSession(t)
	var buf bytes.Buffer
	if err := audit.WriteTable(&buf, h.a.Snapshot()); err != nil {
		t.Fatal(err)
	}
	for _, r := range buf.String() {
		if r == 0x1b || r == 0x07 || r == 0x202e || r == utf8.RuneError {
			t.Fatalf("unescaped %U in table:\n%s", r, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `\x1b[31mred`) && !strings.Contains(buf.String(), `\x1b[2J`) {
		t.Fatalf("escapes not shown:\n%s", buf.String())
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if len(line) > 1000 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
}

func TestSecretsNeverLeave(t *testing.T) {
	h := hostileSession(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	if err := audit.SaveState(state, h.a.Snapshot()); err != nil {
		t.Fatal(err)
	}
	stateBytes, _ := os.ReadFile(state)
	var table, metrics bytes.Buffer
	audit.WriteTable(&table, h.a.Snapshot())
	audit.WriteMetrics(&metrics, h.a.Snapshot(), 20)
	outputs := map[string][]byte{"records": jsonOf(t, h.records), "summary": jsonOf(t, h.a.Snapshot()),
		"state": stateBytes, "table": table.Bytes(), "metrics": metrics.Bytes()}
	for name, b := range outputs {
		noToken(t, name, b)
		if bytes.Contains(b, []byte("wJalrXUtnFEMI")) {
			t.Fatalf("%s contains a secret key", name)
		}
	}
	var script *audit.Process
	for _, r := range h.requests() {
		if r.Process.PID == 6001 {
			script = &r.Process
		}
	}
	want := "curl -H 'X-aws-ec2-metadata-token: [REDACTED]' '--header=x-aws-ec2-metadata-token:[REDACTED]' " +
		"-H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' -H 'X-aws-ec2-metadata-token: $TOKEN' 'TOKEN=[REDACTED]' " +
		"'AWS_SECRET_ACCESS_KEY=[REDACTED]' --aws-secret-access-key '[REDACTED]'"
	if script == nil || script.Cmdline != want {
		t.Fatalf("cmdline\n got %q\nwant %q", script.Cmdline, want)
	}
}
