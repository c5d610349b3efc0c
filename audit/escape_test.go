package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// hostileCgroupID is the container id a cgroup named "machine-<id>.scope" yields: it clears
// the screen of whoever prints it raw.
const hostileCgroupID = "\x1b[2J\x1b[HX"

// controlSession has IMDSv1 callers whose executable, comm and container id carry terminal
// escapes, a bell, a bidirectional override and invalid UTF-8, and two executables whose names
// escape to the same text.
func controlSession(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, audit.Options{})
	h.table.cgroups[7001] = "/machine.slice/machine-" + hostileCgroupID + ".scope"
	r := replay.New(t0)
	v1 := func(p replay.Proc, exe string, n int) {
		if exe != "" {
			r.Exec(p, exe, "x")
		}
		c := r.Connect(p)
		for range n {
			c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
			c.Recv(replay.Answer(200, 1), 64)
		}
		r.Advance(1e9)
	}
	v1(replay.Proc{PID: 7001, PPID: 1, Comm: "evil", CgroupID: 7001}, "/opt/\x1b]0;pwned\x07ev\u202eil\xff", 1)
	v1(replay.Proc{PID: 7002, PPID: 1, Comm: "bell\x07\x1b[31m"}, "", 1) // no exe: labelled by comm
	v1(replay.Proc{PID: 7003, PPID: 1, Comm: "a"}, "/opt/a\x1bb", 2)
	v1(replay.Proc{PID: 7004, PPID: 1, Comm: "a"}, `/opt/a\x1bb`, 3) // what the first escapes to
	h.feed(r)
	return h
}

// requireNoControl fails on any byte or rune that would act on a terminal or confuse a parser:
// C0 controls but the line ends, DEL, C1 controls, bidirectional overrides, invalid UTF-8.
func requireNoControl(t *testing.T, what string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Fatalf("%s is not valid UTF-8:\n%q", what, b)
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r < 0xa0) || unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("%s carries %U raw:\n%q", what, r, b)
		}
	}
}

func TestMetricsEscapeControlCharacters(t *testing.T) {
	h := controlSession(t)
	var buf bytes.Buffer
	if err := audit.WriteMetrics(&buf, h.a.Snapshot(), 20); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	requireNoControl(t, "metrics", buf.Bytes())
	checkExposition(t, buf.Bytes())
	for _, want := range []string{
		// EscapeText's escapes, then the text format's own (a backslash doubled).
		`{exe="/opt/\\x1b]0;pwned\\x07ev\\u202eil\\xff",container_id="\\x1b[2J\\x1b[HX"} 1`,
		`{exe="[bell\\x07\\x1b[31m]",container_id=""} 1`,
		// "/opt/a<ESC>b" and the literal "/opt/a\x1bb" are one label value, so one series.
		`{exe="/opt/a\\x1bb",container_id=""} 5`,
	} {
		if !strings.Contains(text, "imdsv2_audit_imdsv1_requests_total"+want+"\n") {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
	promtoolCheck(t, buf.Bytes())
}

// promtoolCheck runs `promtool check metrics` on b when promtool is installed (Debian: apt-get
// install prometheus). In CI (CI=true) it must be.
func promtoolCheck(t *testing.T, b []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed; CI must install it (apt-get install prometheus)")
		}
		t.Log("promtool not installed (apt-get install prometheus): the exposition was checked by checkExposition only")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, b)
	}
}

func TestTableEscapesControlCharacters(t *testing.T) {
	h := controlSession(t)
	var buf bytes.Buffer
	if err := audit.WriteTable(&buf, h.a.Snapshot()); err != nil {
		t.Fatal(err)
	}
	requireNoControl(t, "table", bytes.ReplaceAll(buf.Bytes(), []byte("…"), nil))
	for _, want := range []string{`\x1b[2J\x1b[HX`, `[bell\x07\x1b[31m]`, `\u202e`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("missing %q in\n%s", want, buf.String())
		}
	}
}

func TestEscapeLines(t *testing.T) {
	for in, want := range map[string]string{
		"#!/bin/sh\n\techo hi\n":           "#!/bin/sh\n\techo hi\n",
		"{\n  \"a\": 1\n}":                 "{\n  \"a\": 1\n}",
		"a\x1b[2Jb\r\nc\x07\td\u202ee\xff": "a\\x1b[2Jb\\r\nc\\x07\td\\u202ee\\xff",
		"":                                 "",
	} {
		if got := audit.EscapeLines(in); got != want {
			t.Errorf("EscapeLines(%q) = %q, want %q", in, got, want)
		}
	}
}

// invisibles are runes encoding/json leaves raw that act on a terminal or reorder what it
// shows: a C1 control (CSI, 8-bit) and each kind of bidirectional control.
var invisibles = []string{"\u009b", "\u0085", "\u202a", "\u202e", "\u2066", "\u2069", "\u200f", "\u061c"}

// invisibleSession has an IMDSv1 caller whose every string from the process or the request
// carries each of invisibles: comm, executable, command line, cgroup (a systemd unit and a
// container) and User-Agent. (The path cannot: the parser refuses a request-target with bytes
// outside visible ASCII.)
func invisibleSession(t *testing.T) *harness {
	t.Helper()
	bad := strings.Join(invisibles, "")
	h := newHarness(t, audit.Options{})
	h.table.cgroups[7101] = "/system.slice/app" + bad + ".service"
	h.table.cgroups[7102] = "/machine.slice/machine-" + bad + ".scope"
	r := replay.New(t0)
	for i, cg := range []uint64{7101, 7102} {
		p := replay.Proc{PID: 7101 + uint32(i), PPID: 1, Comm: "c" + bad, CgroupID: cg}
		r.Exec(p, "/opt/exe"+bad, "app", "--name="+bad)
		c := r.Connect(p)
		c.Send(replay.GetV1("/latest/meta-data/x", "ua/"+bad))
		c.Recv(replay.Answer(200, 1), 64)
		r.Advance(1e9)
	}
	h.feed(r)
	return h
}

// TestJSONEscapesInvisibles: the JSON lines, the summary and the state file carry no C1 or
// bidirectional control raw, and decode to the same strings.
func TestJSONEscapesInvisibles(t *testing.T) {
	h := invisibleSession(t)
	var lines bytes.Buffer
	j := audit.NewJSONLines(&lines)
	for _, r := range h.records {
		require.NoError(t, j.Write(r))
	}
	requireNoControl(t, "JSON lines", lines.Bytes())
	var summary bytes.Buffer
	require.NoError(t, audit.WriteSummaryJSON(&summary, h.a.Snapshot()))
	requireNoControl(t, "summary", summary.Bytes())
	state := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, audit.SaveState(state, h.a.Snapshot()))
	b, err := os.ReadFile(state)
	require.NoError(t, err)
	requireNoControl(t, "state", b)

	var rec audit.Record
	for _, line := range bytes.Split(bytes.TrimSpace(lines.Bytes()), []byte("\n")) {
		require.NoError(t, json.Unmarshal(line, &rec))
		if rec.Type == audit.RecordRequest {
			break
		}
	}
	bad := strings.Join(invisibles, "")
	assert.Equal(t, "c"+bad, rec.Process.Comm, "the data is the same, only its encoding differs")
	assert.Contains(t, rec.UserAgent, bad)
	for _, want := range []string{`\u009b`, `\u202e`, `\u2066`} {
		assert.Contains(t, lines.String(), want)
	}
}

// TestTextEscapesInvisibles: the table escapes them too.
func TestTextEscapesInvisibles(t *testing.T) {
	h := invisibleSession(t)
	var buf bytes.Buffer
	require.NoError(t, audit.WriteTable(&buf, h.a.Snapshot()))
	requireNoControl(t, "table", bytes.ReplaceAll(buf.Bytes(), []byte("…"), nil))
}

func TestEscapeJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"x` + "\u009b" + `y"}`:   `{"a":"x\u009by"}`,
		`["` + "\u202e\u2066é€" + `"]`: `["\u202e\u2066é€"]`,
		`{"plain":"ascii"}`:            `{"plain":"ascii"}`,
		"":                             "",
	} {
		assert.Equal(t, want, string(audit.EscapeJSON([]byte(in))), "%q", in)
	}
}
