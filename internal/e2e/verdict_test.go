package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

// verdict evaluates what the harness's auditor saw, as a verdict about its test cgroup (the
// only scope a test may watch), with no minimum watch time.
func (h *harness) verdict(t *testing.T) *ready.Report {
	t.Helper()
	s := h.auditor.Snapshot()
	r := ready.Evaluate(ready.Input{Identity: &ready.Identity{InstanceID: "i-0e2e"}, Summary: &s, Source: "live",
		Scope: &ready.Scope{Cgroup: h.cg.Path(), ID: h.cg.ID()}, MinWatch: time.Nanosecond})
	t.Logf("verdict %s; reasons %v; uncertain %v", r.Verdict, codes(r.Reasons), codes(r.Uncertain))
	return r
}

func codes(rs []ready.Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

// A caller table full of IMDSv2 callers with distinct command lines, then one tokenless curl: NOT READY, with curl itemised (IMDSv2 entries made room).
func TestVerdictCallerTableFull(t *testing.T) {
	h := newHarnessWith(t, audit.Options{MaxCallers: 8})
	const v2Callers = 24
	script := `import sys, urllib.request as u
t = u.urlopen(u.Request("http://169.254.169.254/latest/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=60).read().decode()
u.urlopen(u.Request("http://169.254.169.254/latest/meta-data/instance-id",
    headers={"X-aws-ec2-metadata-token": t}), timeout=60).read()`
	for i := range v2Callers {
		cmd, _ := h.run(t, testbed.Instance, true, "python3", "-c", script, fmt.Sprintf("job-%d", i))
		h.byPID(t, cmd.Process.Pid, 2)
	}
	curl, _ := h.run(t, testbed.Instance, true, "curl", "-sS", "-f", "-m", "60",
		"http://169.254.169.254/latest/meta-data/instance-id")
	recs := h.byPID(t, curl.Process.Pid, 1)
	if recs[0].Class != audit.ClassIMDSv1 || recs[0].Status != 200 {
		t.Fatalf("curl's request: %s", describe(recs))
	}
	s := h.auditor.Snapshot()
	if len(s.Callers) > 8 || s.Requests[audit.ClassIMDSv1] != 1 {
		t.Fatalf("callers %d, requests %v", len(s.Callers), s.Requests)
	}
	r := h.verdict(t)
	if r.Verdict != ready.NotReady {
		t.Fatalf("verdict %s, want NOT READY", r.Verdict)
	}
	found := false
	for _, rs := range r.Reasons {
		found = found || (rs.Code == "imdsv1-caller" && rs.PID == uint32(curl.Process.Pid))
	}
	if !found {
		t.Fatalf("curl (pid %d) is not named: %+v", curl.Process.Pid, r.Reasons)
	}
}

// A token answer that comes 2.5 s late (a slow proxy) is slow, never unanswered, and does not
// make the verdict NOT READY by itself; the IMDSv2 request after it is IMDSv2.
func TestVerdictLateTokenAnswer(t *testing.T) {
	h := newHarnessWith(t, audit.Options{})
	h.srv.InjectFault(imdstest.Fault{Method: "PUT", PathPrefix: "/latest/api/token", Kind: imdstest.FaultDelay,
		Delay: 2500 * time.Millisecond, Count: 1})
	script := `import urllib.request as u
t = u.urlopen(u.Request("http://169.254.169.254/latest/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=60).read().decode()
print(u.urlopen(u.Request("http://169.254.169.254/latest/meta-data/instance-id",
    headers={"X-aws-ec2-metadata-token": t}), timeout=60).read().decode())`
	cmd, out := h.run(t, testbed.Instance, true, "python3", "-c", script)
	recs := h.byPID(t, cmd.Process.Pid, 2)
	var put, get *audit.Record
	for i := range recs {
		switch recs[i].Class {
		case audit.ClassTokenPUT:
			put = &recs[i]
		case audit.ClassIMDSv2:
			get = &recs[i]
		}
	}
	if put == nil || get == nil || put.Unanswered || !put.Slow || put.Status != 200 ||
		put.AnsweredAt.Sub(put.Time) < 2*time.Second {
		t.Fatalf("records (output %q): %s", strings.TrimSpace(out), describe(recs))
	}
	r := h.verdict(t)
	for _, rs := range r.Reasons {
		if rs.Code == "token-unanswered" {
			t.Fatalf("a late answer reported unanswered: %+v", rs)
		}
	}
	slow := false
	for _, w := range r.Warnings {
		slow = slow || w.Code == "slow-token-answers"
	}
	if !slow || r.Verdict == ready.NotReady {
		t.Fatalf("verdict %s, warnings %v", r.Verdict, codes(r.Warnings))
	}
}
