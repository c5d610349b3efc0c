package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/agent"
	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

// A positive READY needs the whole host watched: the agent at the root of the cgroup2
// hierarchy, from the host's namespaces. A test may do that only where the whole machine
// belongs to it: inside the VM of `make test-vm` (CI runs it there). There, an IMDSv2 caller
// alone is READY for the instance, and one tokenless curl makes it NOT READY.
func TestWholeHostVerdictInVM(t *testing.T) {
	if !privtest.InTestVM() {
		if os.Getenv("IMDSV2_VM") == "1" {
			t.Fatal("IMDSV2_VM=1 but this does not look like the test VM (kernel release or PID 1 differ)")
		}
		t.Skip("attaches at the root cgroup: runs only inside the test VM (make test-vm), whose root cgroup belongs to the test")
	}
	testbed.Require(t)
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{HopLimit: 1, ReadHeaderTimeout: outcomeLimit})
	t.Cleanup(srv.Close)
	if err := bed.ServeIMDS(srv); err != nil {
		t.Fatal(err)
	}
	live, err := agent.Start(agent.Options{Audit: audit.Options{TokenAnswerTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)

	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := bed.Run(testbed.Instance, cmd); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
	}
	verdict := func(want ready.Verdict, requests audit.Class, n uint64) *ready.Report {
		t.Helper()
		deadline := time.Now().Add(outcomeLimit)
		for {
			s, _ := live.Snapshot()
			if s.Requests[requests] >= n && live.Pending() == 0 {
				r := ready.Evaluate(ready.Input{Identity: &ready.Identity{InstanceID: "i-0vm"}, Summary: s,
					Source: "live", MinWatch: time.Nanosecond})
				if r.Verdict != want {
					t.Fatalf("verdict %s, want %s; reasons %v, uncertain %v; coverage %+v", r.Verdict, want,
						codes(r.Reasons), codes(r.Uncertain), r.Coverage)
				}
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %d %s request(s) within %v: %v", n, requests, outcomeLimit, s.Requests)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	run("python3", "-c", `import urllib.request as u
t = u.urlopen(u.Request("http://169.254.169.254/latest/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=60).read().decode()
u.urlopen(u.Request("http://169.254.169.254/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": t}), timeout=60).read()`)
	r := verdict(ready.Ready, audit.ClassIMDSv2, 1)
	if c := r.Coverage; !c.WholeHost || !c.HostRoot || c.Scope != "/" || r.Scope.Kind != "instance" {
		t.Fatalf("coverage %+v, scope %+v", c, r.Scope)
	}
	run("curl", "-sS", "-f", "-m", "60", "http://169.254.169.254/latest/meta-data/instance-id")
	verdict(ready.NotReady, audit.ClassIMDSv1, 1)
}
