package e2e

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// preexistingScript connects to IMDS, says so, waits for a line on stdin, then sends an IMDSv1
// GET on that connection, reads the answer and keeps the connection open (as a client's pool
// does) until stdin ends.
const preexistingScript = `import socket, sys
s = socket.create_connection(("169.254.169.254", 80), timeout=60)
print("connected", flush=True)
sys.stdin.readline()
s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: preexisting\r\n\r\n")
s.recv(4096)
sys.stdin.readline()
`

// A connection opened before the agent attached: the kernel side never saw its connect and
// reports it without a pid. The auditor finds its owner from /proc; the caller here lives in a
// network namespace of its own (the test bed's instance), as a container on a bridge does.
func TestPreexistingConnectionIsAttributed(t *testing.T) {
	h := newBedHarness(t)
	cmd := exec.Command("python3", "-c", preexistingScript)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cg.Prepare(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := h.bed.Start(testbed.Instance, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "connected" {
		t.Fatalf("python3: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	// Only now the agent: it has not seen the connect.
	h.attach(t)
	if h.auditor, err = audit.New(audit.Options{OnRecord: h.add}); err != nil {
		t.Fatal(err)
	}
	h.consume(t, h.auditor.Run)

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	got := h.waitFor(t, "the request on the preexisting connection", func(rs []audit.Record) ([]audit.Record, bool) {
		rs = filter(rs, func(r audit.Record) bool { return r.Type == audit.RecordRequest && r.UserAgent == "preexisting" })
		return rs, len(rs) > 0
	})
	r := got[0]
	if r.Class != audit.ClassIMDSv1 || r.Status != 200 || !r.Process.Preexisting ||
		r.Process.PID != uint32(cmd.Process.Pid) || r.Process.Source != audit.SourceProc ||
		!strings.Contains(r.Process.Cmdline, "python3 -c") {
		t.Fatalf("record:%s\npreexisting=%v, want pid %d attributed from /proc", describe(got), r.Process.Preexisting, cmd.Process.Pid)
	}
}
