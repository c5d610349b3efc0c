package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

// waitGuard bounds every wait for a child's output: a deadlock guard, not a performance claim.
const waitGuard = 2 * time.Minute

// bedCLI is the built binary, a test bed with the emulator, and a cgroup the auditor watches.
type bedCLI struct {
	bin   string
	bed   *testbed.Bed
	srv   *imdstest.Server
	cg    *cgroup.Group
	empty string
}

func newBedCLI(t *testing.T) *bedCLI {
	privtest.Require(t)
	require.True(t, netguard.Active(), "the test binary must run in netguard's private namespace")
	b := &bedCLI{bin: filepath.Join(t.TempDir(), "imdsv2"), empty: t.TempDir()}
	buildBinary(t, b.bin)
	b.bed = testbed.NewForTest(t, testbed.Config{})
	b.srv = imdstest.NewUnstartedServer(imdstest.Config{InstanceID: "i-0bed0000000000001", Region: "eu-west-1",
		HTTPTokens: imdstest.TokensOptional, HopLimit: 1})
	t.Cleanup(b.srv.Close)
	require.NoError(t, b.bed.ServeIMDS(b.srv))
	b.cg = cgroup.ForTest(t)
	return b
}

var childEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // no AWS_* or proxies from the caller's shell

// doctor runs `imdsv2 doctor --output json` in ns.
func (b *bedCLI) doctor(t *testing.T, ns testbed.NS) (int, doctorReport, string) {
	t.Helper()
	cmd := exec.Command(b.bin, "doctor", "--timeout=20s", "--output=json")
	cmd.Env = childEnv
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	code := exitCode(t, b.bed.Run(ns, cmd))
	var rep doctorReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	return code, rep, out.String()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// caller is a program run in the watched cgroup, and the live line that shows the auditor saw it.
type caller struct {
	ns   testbed.NS
	argv []string
	seen string
}

// ready runs `imdsv2 ready` in the instance namespace, runs the callers in the cgroup while
// it audits, waits until its live output shows each of them, then ends the audit with
// Ctrl-C (SIGINT) and returns the exit status and the report.
func (b *bedCLI) ready(t *testing.T, callers ...caller) (int, ready.Report, string) {
	t.Helper()
	return b.readyWith(t, nil, callers...)
}

// readyWith is ready with more flags (a later flag overrides an earlier one).
func (b *bedCLI) readyWith(t *testing.T, flags []string, callers ...caller) (int, ready.Report, string) {
	t.Helper()
	args := append([]string{"ready", "--cgroup=" + b.cg.Path(), "--duration=10m", "--min-watch=1ms", "--live", "--timeout=20s",
		"--scan-path=" + b.empty, "--cni-dir=" + b.empty, "--output=json"}, flags...)
	cmd := exec.Command(b.bin, args...)
	cmd.Env = childEnv
	var out bytes.Buffer
	var errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, b.bed.Start(testbed.Instance, cmd))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor := func(s string) bool {
		deadline := time.After(waitGuard)
		for !strings.Contains(errb.String(), s) {
			select {
			case err := <-done:
				done <- err
				return false // ready ended (no audit possible): the report says why
			case <-deadline:
				t.Fatalf("no %q from imdsv2 ready within %s; stderr:\n%s", s, waitGuard, errb.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		return true
	}
	if waitFor("auditing IMDS requests") {
		for _, c := range callers {
			run := exec.Command(c.argv[0], c.argv[1:]...)
			run.Env = childEnv
			b.cg.Prepare(run)
			var co bytes.Buffer
			run.Stdout, run.Stderr = &co, &co
			_ = b.bed.Run(c.ns, run) // the outcome is the auditor's to report
			t.Logf("%s in %s: %s", strings.Join(c.argv, " "), c.ns, strings.TrimSpace(co.String()))
		}
		for _, c := range callers {
			waitFor(c.seen)
		}
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
	}
	select {
	case err := <-done:
		code := exitCode(t, err)
		var rep ready.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep), "stdout %s\nstderr %s", out.String(), errb.String())
		t.Logf("imdsv2 ready stderr:\n%s", errb.String())
		return code, rep, out.String()
	case <-time.After(waitGuard):
		t.Fatalf("imdsv2 ready did not end after Ctrl-C; stderr:\n%s", errb.String())
	}
	return 0, ready.Report{}, ""
}

// readyNormalise replaces what changes from run to run in a ready report.
var readyNormalise = map[*regexp.Regexp]string{
	regexp.MustCompile(`"(pid|ppid)": \d+`):                   `"$1": 0`,
	regexp.MustCompile(`pid \d+`):                             `pid N`,
	regexp.MustCompile(`"(since|from|to|read_at)": "[^"]*"`):  `"$1": "T"`,
	regexp.MustCompile(`"(cgroup_id|spans)": \d+`):            `"$1": 0`,
	regexp.MustCompile(`"(watched|gap)_seconds": [0-9.]+`):    `"${1}_seconds": 0`,
	regexp.MustCompile(`"cgroup": "[^"]*"`):                   `"cgroup": "CG"`,
	regexp.MustCompile(`/sys/fs/cgroup[^ "]*`):                `CGPATH`,
	regexp.MustCompile(`"scope": "/[^"]*"`):                   `"scope": "/CG"`,
	regexp.MustCompile(`"duration_seconds": [0-9.]+`):         `"duration_seconds": 0`,
	regexp.MustCompile(`"(exe|cmdline)": "[^"]*"`):            `"$1": "X"`,
	regexp.MustCompile(`"roots": \[[^\]]*\]`):                 `"roots": []`,
	regexp.MustCompile(`"(files_scanned|dirs_scanned)": \d+`): `"$1": 0`,
}

func reasonCodes(rep ready.Report) map[string]ready.Reason {
	m := map[string]ready.Reason{}
	for _, r := range rep.Reasons {
		m[r.Code] = r
	}
	return m
}

// TestDoctorAndReadyInBed runs `imdsv2 doctor` and `imdsv2 ready` as processes in the test
// bed against the emulator in each state of an instance on its way to IMDSv2.
func TestDoctorAndReadyInBed(t *testing.T) {
	b := newBedCLI(t)
	get := func(path string) []string { return []string{b.bin, "get", "--timeout=1m", path} }

	t.Run("clean", func(t *testing.T) {
		code, rep, out := b.doctor(t, testbed.Instance)
		require.Equal(t, exitOK, code, out)
		assert.Equal(t, "healthy", rep.Status)
		goldenJSON(t, "doctor-bed-healthy.golden.json", out, nil)

		code, r, out := b.ready(t, caller{testbed.Instance, get("meta-data/instance-id"), "with a token (IMDSv2) -> 200"})
		require.Equal(t, ready.ExitReady, code, out)
		assert.Equal(t, ready.Ready, r.Verdict)
		assert.Equal(t, 1, r.HopLimit.Observed)
		goldenJSON(t, "ready-clean.golden.json", out, readyNormalise)
	})

	t.Run("agent-records-identity", func(t *testing.T) {
		// The agent reads the instance's identity at start (in its own network namespace:
		// the instance's here) and keeps it in the state, so ready --state asks IMDS nothing.
		state := filepath.Join(t.TempDir(), "audit.json")
		cmd := exec.Command(b.bin, "audit", "--cgroup="+b.cg.Path(), "--duration=3s", "--state="+state)
		cmd.Env = childEnv
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, b.bed.Run(testbed.Instance, cmd), out.String())
		s, err := audit.ReadState(state)
		require.NoError(t, err)
		require.NotNil(t, s.Instance, out.String())
		assert.Equal(t, "i-0bed0000000000001", s.Instance.InstanceID)
		assert.Empty(t, s.Instance.Error)
		before := len(b.srv.Requests())
		code, txt, _ := cli(t, "ready", "--state="+state, "--scan=false", "--cni-dir="+b.empty)
		assert.Equal(t, ready.ExitUndecided, code, txt) // 3 s is less than the default --min-watch
		assert.Contains(t, txt, "Instance:  i-0bed0000000000001")
		assert.Len(t, b.srv.Requests(), before, "ready --state sent requests to IMDS")
	})

	t.Run("short-audit", func(t *testing.T) {
		// The default --min-watch (5 minutes): a few seconds of a clean audit decide nothing.
		code, r, out := b.readyWith(t, []string{"--min-watch=5m"},
			caller{testbed.Instance, get("meta-data/instance-id"), "with a token (IMDSv2) -> 200"})
		require.Equal(t, ready.ExitUndecided, code, out)
		require.NotEmpty(t, r.Uncertain, out)
		assert.Equal(t, "watched-too-short", r.Uncertain[0].Code)
		assert.Contains(t, r.UndecidedReason, "less than the 5m0s required")
	})

	t.Run("imdsv1-caller", func(t *testing.T) {
		argv := []string{"/bin/bash", "-c", `exec 3<>/dev/tcp/169.254.169.254/80 && printf 'GET /latest/meta-data/instance-id HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n' >&3 && cat <&3`}
		name := "bash"
		if curl, err := lookPath("curl"); err == nil {
			argv, name = []string{curl, "-sS", "http://169.254.169.254/latest/meta-data/instance-id"}, "curl"
		}
		code, r, out := b.ready(t, caller{testbed.Instance, argv, name + " (pid"})
		require.Equal(t, ready.ExitNotReady, code, out)
		assert.Equal(t, ready.NotReady, r.Verdict)
		v1, ok := reasonCodes(r)["imdsv1-caller"]
		require.True(t, ok, out)
		assert.Contains(t, v1.Subject, name+" (pid")
		assert.Equal(t, "host", v1.Where)
		assert.NotEmpty(t, v1.Fix)
	})

	t.Run("hop-limit-victim", func(t *testing.T) {
		code, rep, out := b.doctor(t, testbed.Container)
		assert.Equal(t, exitFail, code, out)
		assert.Equal(t, "hop-limit", rep.Endpoints[0].Status)
		assert.Contains(t, strings.Join(rep.Problems, "\n"), "--http-put-response-hop-limit 2")

		code, r, out := b.ready(t, caller{testbed.Container, get("meta-data/instance-id"), "NO ANSWER"})
		require.Equal(t, ready.ExitNotReady, code, out)
		victim, ok := reasonCodes(r)["token-unanswered"]
		require.True(t, ok, out)
		assert.Contains(t, victim.Where, "network namespace of its own")
		assert.Equal(t, 2, r.HopLimit.Recommended)
		// A verdict about the test's cgroup never carries the instance's enforcement commands.
		for _, st := range r.NextSteps {
			assert.NotContains(t, st.Command, "modify-instance-metadata-options", "a subtree's verdict enforces nothing")
		}
		goldenJSON(t, "ready-hop-limit.golden.json", out, readyNormalise)
	})

	t.Run("disabled", func(t *testing.T) {
		b.srv.Update(func(c *imdstest.Config) { c.EndpointDisabled = true })
		defer b.srv.Update(func(c *imdstest.Config) { c.EndpointDisabled = false })
		code, rep, out := b.doctor(t, testbed.Instance)
		assert.Equal(t, exitFail, code, out)
		assert.Equal(t, "disabled", rep.Endpoints[0].Status)
		code, r, out := b.ready(t)
		assert.Equal(t, ready.ExitUndecided, code, out)
		assert.Equal(t, ready.Undecided, r.Verdict)
		assert.Contains(t, r.UndecidedReason, "HttpEndpoint=disabled")
	})

	t.Run("not-on-ec2", func(t *testing.T) {
		// ready and doctor run in this process with the default endpoints: allowed only because
		// the process sits in netguard's namespace (loopback only, made by this test binary).
		require.True(t, netguard.Active(), "the default endpoints may only be tried inside netguard")
		noEnv(t)
		code, out, _ := cli(t, "ready", "--output=json", "--scan=false")
		assert.Equal(t, ready.ExitUndecided, code, out)
		var r ready.Report
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		assert.Contains(t, r.UndecidedReason, "does not look like an EC2 instance")
		code, out, _ = cli(t, "doctor", "--output=json")
		assert.Equal(t, exitUsage, code, out)
		assert.Contains(t, out, `"status": "unreachable"`)
	})
}
