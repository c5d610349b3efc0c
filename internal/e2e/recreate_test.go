package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

// The watched cgroup removed and created again (systemd does it on every restart of a unit
// named by --cgroup): the agent follows it to the new cgroup, the coverage record shows the
// gap with its reason, and an IMDSv1 caller in the new cgroup makes the verdict NOT READY.
func TestVerdictAfterCgroupRecreated(t *testing.T) {
	h := newHarness(t)
	path := h.cg.Path()
	oldID := h.cg.ID()
	h.run(t, testbed.Instance, true, "curl", "-sS", "-f", "-m", "60", "-X", "PUT",
		"-H", "X-aws-ec2-metadata-token-ttl-seconds: 60", "http://169.254.169.254/latest/api/token")
	if err := h.cg.Remove(); err != nil {
		t.Fatal(err)
	}
	waitCoverage(t, h, "the detach", func(cv audit.Coverage) bool {
		return len(cv.Spans) == 1 && !cv.Spans[0].Open
	})
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	cv := waitCoverage(t, h, "the re-attach", func(cv audit.Coverage) bool {
		return len(cv.Spans) == 2 && cv.Spans[1].Open
	})
	if cv.Spans[1].Watch.CgroupID == oldID || len(cv.Gaps) != 1 || !strings.Contains(cv.Gaps[0].Why, "cgroup removed") {
		t.Fatalf("coverage after the re-creation: %+v", cv)
	}

	dir, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	curl := exec.Command("curl", "-sS", "-f", "-m", "60", "http://169.254.169.254/latest/meta-data/instance-id")
	var out bytes.Buffer
	curl.Stdout, curl.Stderr = &out, &out
	curl.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd()), Pdeathsig: syscall.SIGKILL}
	if err := h.bed.Run(testbed.Instance, curl); err != nil {
		t.Fatalf("curl in the new cgroup: %v\n%s", err, out.String())
	}
	recs := h.byPID(t, curl.Process.Pid, 1)
	if recs[0].Class != audit.ClassIMDSv1 {
		t.Fatalf("%s", describe(recs))
	}
	s := h.auditor.Snapshot()
	r := ready.Evaluate(ready.Input{Identity: &ready.Identity{InstanceID: "i-0e2e"}, Summary: &s, Source: "live",
		Scope: &ready.Scope{Cgroup: path, Rel: s.Coverage.Scope}, MinWatch: time.Nanosecond})
	if r.Verdict != ready.NotReady || r.Coverage.Spans != 2 || len(r.Coverage.Gaps) != 1 {
		t.Fatalf("verdict %s, coverage %+v", r.Verdict, r.Coverage)
	}
}

// waitCoverage polls the auditor's coverage until ok holds.
func waitCoverage(t *testing.T, h *harness, what string, ok func(audit.Coverage) bool) audit.Coverage {
	t.Helper()
	deadline := time.Now().Add(outcomeLimit)
	for {
		cv := h.auditor.Snapshot().Coverage
		if ok(cv) {
			return cv
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coverage change for %s within %v: %+v", what, outcomeLimit, cv)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
