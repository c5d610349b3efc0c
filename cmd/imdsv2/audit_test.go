package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// auditWait bounds the waits of the audit command tests; a guard against hangs, not a claim.
const auditWait = 60 * time.Second

func TestAuditUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--output", "xml"}, `invalid value "xml" for flag --output: must be text or json`},
		{[]string{"--duration", "-1s"}, "--duration must be 0"},
		{[]string{"--state-interval", "0s"}, "--state-interval must be positive"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	} {
		code, out, errs := cli(t, append([]string{"audit"}, tc.args...)...)
		assert.Equal(t, exitUsage, code, tc.args)
		assert.Empty(t, out, tc.args)
		assert.Contains(t, errs, tc.want, tc.args)
	}
	code, out, _ := cli(t, "audit", "-h")
	assert.Equal(t, exitOK, code)
	for _, s := range []string{"Usage: imdsv2 audit", "--duration", "--cgroup", "--metrics-addr", "--state", "HttpTokens=required"} {
		assert.Contains(t, out, s)
	}
}

// TestAuditCorruptState: a state file that cannot be decoded stops the command before anything
// is loaded, with an error naming where the file was kept; its bytes are not lost.
func TestAuditCorruptState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.json")
	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	// --cgroup names no cgroup: should the state not stop it, nothing can attach anywhere.
	code, out, errs := cli(t, "audit", "--cgroup", "/nonexistent/imdsv2-test", "--state", path, "--duration", "1s")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, "corrupt")
	kept, err := filepath.Glob(path + ".corrupt-*")
	require.NoError(t, err)
	require.Len(t, kept, 1, "stderr: %s", errs)
	assert.Contains(t, errs, kept[0])
	b, err := os.ReadFile(kept[0])
	require.NoError(t, err)
	assert.Equal(t, "{not json", string(b))
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "the corrupt file must be moved aside, not left to be overwritten")
}

// TestAuditStateInUse: a second agent on the state file of a running one stops at once, before
// anything is loaded, and says which process holds it.
func TestAuditStateInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.json")
	first, err := audit.New(audit.Options{StateFile: path})
	require.NoError(t, err)
	t.Cleanup(func() { first.Close() })
	code, out, errs := cli(t, "audit", "--cgroup", "/nonexistent/imdsv2-test", "--state", path, "--duration", "1s")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, "imdsv2 audit: --state "+path+": audit: state file in use: another agent (pid "+strconv.Itoa(os.Getpid())+")")
	assert.Equal(t, 1, strings.Count(errs, "\n"), "one line: %s", errs)
}

// TestAuditCommand runs `imdsv2 audit` attached to a test cgroup while curl, in that cgroup and
// in the test bed, makes an IMDSv1 request: the JSON lines, the metrics, the summary and the
// state file all show it; a second run resumes the counts from the state file.
func TestAuditCommand(t *testing.T) {
	testbed.Require(t)
	privtest.RequireCaps(t, privtest.CapBPF, privtest.CapPerfmon, privtest.CapNetAdmin)
	curl, err := exec.LookPath("curl")
	if err != nil {
		privtest.Unavailable(t, "curl is not installed (.ci/run installs it)")
	}
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	require.NoError(t, bed.ServeIMDS(srv))
	cg := cgroup.ForTest(t)
	state := filepath.Join(t.TempDir(), "audit.json")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb syncBuffer
	exit := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"audit", "--cgroup", cg.Path(), "--duration", "0", "--output", "json",
			"--state", state, "--metrics-addr", "127.0.0.1:0"}, pw, &errb)
		pw.Close()
		exit <- code
	}()
	metricsURL := waitForMatch(t, &errb, regexp.MustCompile(`metrics at (http://\S+)`))
	assert.Contains(t, errb.String(), "attach mode:")
	assert.Contains(t, errb.String(), "cgroup:          "+cg.Path())

	url := "http://169.254.169.254/latest/meta-data/instance-id"
	cmd := exec.Command(curl, "-sS", "-m", "60", url)
	cg.Prepare(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	require.NoError(t, bed.Run(testbed.Instance, cmd))

	lines := bufio.NewScanner(pr)
	lines.Buffer(nil, 1<<20)
	var rec audit.Record
	for lines.Scan() {
		require.NoError(t, json.Unmarshal(lines.Bytes(), &rec), lines.Text())
		if rec.Process.PID == uint32(cmd.Process.Pid) {
			break
		}
	}
	assert.Equal(t, audit.RecordRequest, rec.Type)
	assert.Equal(t, audit.ClassIMDSv1, rec.Class)
	assert.Equal(t, "/latest/meta-data/instance-id", rec.Path)
	assert.Equal(t, 200, rec.Status)
	assert.Contains(t, rec.Process.Cmdline, url)

	resp, err := (&http.Client{Timeout: auditWait}).Get(metricsURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, audit.MetricsContentType, resp.Header.Get("Content-Type"))
	assert.Contains(t, string(body), `imdsv2_audit_requests_total{class="imdsv1"} 1`)
	assert.Contains(t, string(body), "imdsv2_audit_lost_events_total 0")

	cancel() // what SIGINT does
	var last string
	for lines.Scan() {
		last = lines.Text()
	}
	select {
	case code := <-exit:
		require.Equal(t, exitOK, code, errb.String())
	case <-time.After(auditWait):
		t.Fatal("imdsv2 audit did not stop after the signal")
	}
	var sum struct {
		Type string `json:"type"`
		audit.Summary
	}
	require.NoError(t, json.Unmarshal([]byte(last), &sum), last)
	assert.Equal(t, "summary", sum.Type)
	assert.EqualValues(t, 1, sum.Requests[audit.ClassIMDSv1])
	assert.Zero(t, sum.LostEvents)
	saved, err := audit.LoadState(state)
	require.NoError(t, err)
	require.NotNil(t, saved)
	assert.EqualValues(t, 1, saved.Requests[audit.ClassIMDSv1])

	// A restart resumes the counts and, with the table output, prints them for people.
	code, out, errs := cli(t, "audit", "--cgroup", cg.Path(), "--duration", "100ms", "--state", state)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "IMDS audit since")
	assert.Contains(t, out, "imdsv1 1")
	assert.Contains(t, out, "curl")
	saved, err = audit.LoadState(state)
	require.NoError(t, err)
	assert.EqualValues(t, 1, saved.Resumed)
	assert.EqualValues(t, 1, saved.Requests[audit.ClassIMDSv1])
}

// TestAuditBadCgroup: a --cgroup that is not a cgroup v2 directory is refused with a message
// that says so, and the command does not start.
func TestAuditBadCgroup(t *testing.T) {
	privtest.RequireCaps(t, privtest.CapBPF, privtest.CapPerfmon)
	code, _, errs := cli(t, "audit", "--cgroup", t.TempDir(), "--duration", "1s")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "not on a cgroup file system")
}

// TestAuditFailsWhileRunning: an audit that started but failed (here its summary could not be
// written) exits 1 with the error, without the pointer to the help that a usage error gets;
// one that could not start exits 2 (TestAuditBadCgroup, TestAuditCorruptState).
func TestAuditFailsWhileRunning(t *testing.T) {
	privtest.RequireCaps(t, privtest.CapBPF, privtest.CapPerfmon, privtest.CapNetAdmin)
	cg := cgroup.ForTest(t)
	var errb bytes.Buffer
	code := run(context.Background(), []string{"audit", "--cgroup", cg.Path(), "--duration", "100ms"}, fullWriter{}, &errb)
	assert.Equal(t, exitFail, code, errb.String())
	assert.Contains(t, errb.String(), "imdsv2 audit: attached")
	assert.Contains(t, errb.String(), "\nimdsv2 audit: ")
	assert.Contains(t, errb.String(), syscall.ENOSPC.Error())
	assert.NotContains(t, errb.String(), "imdsv2 help audit")
}

// fullWriter fails every write, like a file on a full file system.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// waitForMatch waits until re matches what w received and returns the first submatch.
func waitForMatch(t *testing.T, w *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(auditWait)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(w.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q on stderr within %v:\n%s", re, auditWait, w.String())
	return ""
}

func TestIndent(t *testing.T) {
	assert.Equal(t, "  a\n  b\n", indent("a\nb\n"))
	assert.Equal(t, "  a\n", indent("a"))
	assert.Empty(t, indent(""))
	assert.False(t, strings.Contains(indent("x\n\ny"), "\n\n\n"))
}

// TestSummaryLineEscapesInvisibles: the summary line of --output json carries no C1 or
// bidirectional control raw (encoding/json leaves them), and decodes to the same strings.
func TestSummaryLineEscapesInvisibles(t *testing.T) {
	bad := "\u009b2J\u202e\u2066"
	sum := audit.Summary{Callers: []audit.Caller{{Class: audit.ClassIMDSv1, Count: 1,
		Process: audit.Process{Comm: "c" + bad, Cmdline: "app " + bad, Cgroup: "/system.slice/u" + bad + ".service"}, UserAgent: "ua/" + bad}}}
	var out bytes.Buffer
	require.NoError(t, writeSummaryLine(&out, sum))
	for _, r := range out.String() {
		if (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("summary line carries %U raw: %s", r, out.String())
		}
	}
	var back summaryLine
	require.NoError(t, json.Unmarshal(out.Bytes(), &back))
	assert.Equal(t, "summary", back.Type)
	require.Len(t, back.Callers, 1)
	assert.Equal(t, sum.Callers[0].Process.Cmdline, back.Callers[0].Process.Cmdline)
	assert.Equal(t, sum.Callers[0].UserAgent, back.Callers[0].UserAgent)
}
