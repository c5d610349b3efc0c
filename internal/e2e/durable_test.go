package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// Issue 11, "nothing observed is lost": the imdsv2 binary as the agent, attached to the test
// cgroup, with a reader of its output that exits, killed with SIGKILL, and replaced by a new
// binary the way a package upgrade does it.

// agentProcess is a running `imdsv2 audit` attached to the test cgroup.
type agentProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when stderr is at its end

	mu     sync.Mutex
	stderr bytes.Buffer
}

// startAgent starts `imdsv2 audit --cgroup CG --duration 0 ARGS...` with stdout to out, and
// returns once it has attached.
func (h *harness) startAgent(t *testing.T, out io.Writer, args ...string) *agentProcess {
	t.Helper()
	args = append([]string{"audit", "--cgroup", h.cg.Path(), "--duration", "0"}, args...)
	a := &agentProcess{cmd: exec.Command(filepath.Join(h.bin, "imdsv2"), args...), done: make(chan struct{})}
	a.cmd.Stdout = out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			<-a.done
			_ = a.cmd.Wait()
		}
	})
	attached := make(chan struct{})
	go func() {
		defer close(a.done)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			a.mu.Lock()
			a.stderr.WriteString(lines.Text() + "\n")
			a.mu.Unlock()
			if lines.Text() == "imdsv2 audit: watching until SIGINT or SIGTERM" {
				close(attached)
			}
		}
	}()
	select {
	case <-attached:
	case <-a.done:
		t.Fatalf("imdsv2 audit ended before attaching:\n%s", a.errors())
	case <-time.After(outcomeLimit):
		t.Fatalf("imdsv2 audit did not attach within %v:\n%s", outcomeLimit, a.errors())
	}
	return a
}

func (a *agentProcess) errors() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

// stop sends sig and returns the exit status (-1 when killed by a signal).
func (a *agentProcess) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(outcomeLimit, func() { _ = a.cmd.Process.Kill() })
	defer timer.Stop()
	<-a.done
	err := a.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return a.cmd.ProcessState.ExitCode()
}

// curlV1 makes one IMDSv1 request for path from curl inside the test cgroup; each path is a
// caller of its own (the command line differs).
func (h *harness) curlV1(t *testing.T, path string) {
	t.Helper()
	h.run(t, testbed.Instance, true, "curl", "-sS", "-f", "-m", "60", base+"/latest/meta-data/"+path)
}

// curlCallers returns the IMDSv1 callers of the state file that are curl, by the metadata path
// on their command line, with their counts.
func curlCallers(t *testing.T, path string) (map[string]uint64, *audit.Summary) {
	t.Helper()
	s, err := audit.ReadState(path)
	if err != nil {
		t.Fatalf("reading the state file: %v", err)
	}
	out := map[string]uint64{}
	for _, c := range s.Callers {
		if c.Class == audit.ClassIMDSv1 && filepath.Base(c.Process.Exe) == "curl" {
			_, p, _ := strings.Cut(c.Process.Cmdline, "/latest/meta-data/")
			out[p] += c.Count
		}
	}
	return out, s
}

// waitState polls the state file until ok says it holds what is wanted, or fails after
// outcomeLimit.
func waitState(t *testing.T, path, what string, ok func(map[string]uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(outcomeLimit)
	for {
		if _, err := os.Stat(path); err == nil {
			if got, _ := curlCallers(t, path); ok(got) {
				return
			}
		}
		if time.Now().After(deadline) {
			got := map[string]uint64{}
			if _, err := os.Stat(path); err == nil {
				got, _ = curlCallers(t, path)
			}
			t.Fatalf("the state file never held %s within %v: %v", what, outcomeLimit, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `imdsv2 audit --output json --state S | head -n 1`: head exits after the first record. The
// agent used to die of SIGPIPE at the next record and its state missed what came after. Now it
// says so on stderr while it runs, counts the records it could not write, and its state file
// gets every caller.
func TestAgentOutlivesAReaderThatExits(t *testing.T) {
	h := newBedHarness(t, "imdsv2")
	state := filepath.Join(t.TempDir(), "state.json")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reader := exec.Command("head", "-n", "1")
	reader.Stdin = pr
	var read bytes.Buffer
	reader.Stdout = &read
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	agent := h.startAgent(t, pw, "--output", "json", "--state", state)
	pw.Close() // the agent holds the only write end

	h.curlV1(t, "instance-id")
	readerDone := make(chan error, 1)
	go func() { readerDone <- reader.Wait() }()
	select {
	case err := <-readerDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(outcomeLimit):
		_ = reader.Process.Kill()
		t.Fatalf("the reader got no record within %v; agent:\n%s", outcomeLimit, agent.errors())
	}
	if !strings.HasPrefix(read.String(), `{"type":"request","schema":1,`) {
		t.Fatalf("the reader read %q", read.String())
	}
	after := []string{"ami-id", "hostname", "instance-type"}
	for _, p := range after {
		h.curlV1(t, p)
	}
	waitState(t, state, "the four callers while the agent runs", func(got map[string]uint64) bool { return len(got) == 4 })
	if !strings.Contains(agent.errors(), "writing the JSON output failed") {
		t.Fatalf("the broken output was not reported while the agent runs:\n%s", agent.errors())
	}
	code := agent.stop(t, syscall.SIGTERM)
	got, s := curlCallers(t, state)
	t.Logf("exit %d, dropped_records %d, callers %v; stderr:\n%s", code, s.DroppedRecords, got, agent.errors())
	if code != 1 || !strings.Contains(agent.errors(), "JSON records could not be written") {
		t.Fatalf("exit status %d, want 1 naming the records not written", code)
	}
	if s.DroppedRecords < uint64(len(after)) || len(got) != 4 || s.Requests[audit.ClassIMDSv1] != 4 {
		t.Fatalf("dropped_records %d (want at least %d), callers %v, requests %v", s.DroppedRecords, len(after), got, s.Requests)
	}
}

// kill -9 two seconds after a single IMDSv1 call, then a restart with the same state: the
// caller is there (the periodic write is a minute away; the new caller was written promptly).
func TestKill9KeepsANewCaller(t *testing.T) {
	h := newBedHarness(t, "imdsv2")
	state := filepath.Join(t.TempDir(), "state.json")
	agent := h.startAgent(t, io.Discard, "--state", state)
	h.curlV1(t, "instance-id")
	time.Sleep(2 * time.Second)
	if code := agent.stop(t, syscall.SIGKILL); code != -1 {
		t.Fatalf("exit status %d after SIGKILL", code)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file two seconds after a new IMDSv1 caller: %v\n%s", err, agent.errors())
	}
	if got, _ := curlCallers(t, state); got["instance-id"] != 1 {
		t.Fatalf("the caller is not in the state file left by the crash: %v", got)
	}

	again := h.startAgent(t, io.Discard, "--state", state)
	if code := again.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("restart: exit status %d\n%s", code, again.errors())
	}
	got, s := curlCallers(t, state)
	if got["instance-id"] != 1 || s.Resumed != 1 || len(s.Coverage.Gaps) != 1 {
		t.Fatalf("after the restart: callers %v, resumed %d, gaps %+v", got, s.Resumed, s.Coverage.Gaps)
	}
}

// A package upgrade: the agent is stopped with SIGTERM, its binary replaced, and started
// again with the same --state. The state file is the one an older version wrote (kept as
// audit/testdata/state-schema1.json): its callers and counts, the callers of the agent before
// the upgrade and those after it are all there.
func TestUpgradeLosesNoCaller(t *testing.T) {
	h := newBedHarness(t, "imdsv2")
	state := filepath.Join(t.TempDir(), "state.json")
	kept, err := os.ReadFile("../../audit/testdata/state-schema1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	old, err := audit.ReadState(state)
	if err != nil {
		t.Fatal(err)
	}

	before := h.startAgent(t, io.Discard, "--state", state)
	h.curlV1(t, "instance-id")
	waitState(t, state, "the caller before the upgrade", func(got map[string]uint64) bool { return got["instance-id"] == 1 })
	if code := before.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("stop before the upgrade: exit status %d\n%s", code, before.errors())
	}
	replaceBinary(t, filepath.Join(h.bin, "imdsv2"))
	after := h.startAgent(t, io.Discard, "--state", state)
	h.curlV1(t, "ami-id")
	if code := after.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("stop after the upgrade: exit status %d\n%s", code, after.errors())
	}

	got, s := curlCallers(t, state)
	if got["instance-id"] != 1 || got["ami-id"] != 1 {
		t.Fatalf("curl callers %v, want instance-id and ami-id once each", got)
	}
	if s.Schema != audit.SummarySchema || s.Resumed != old.Resumed+2 ||
		s.Requests[audit.ClassIMDSv1] != old.Requests[audit.ClassIMDSv1]+2 || s.LostEvents != old.LostEvents {
		t.Fatalf("schema %d resumed %d requests %v lost %d; the kept file had resumed %d requests %v lost %d",
			s.Schema, s.Resumed, s.Requests, s.LostEvents, old.Resumed, old.Requests, old.LostEvents)
	}
	counts := map[string]uint64{}
	for _, c := range s.Callers {
		counts[callerName(c)] = c.Count
	}
	for _, c := range old.Callers {
		if counts[callerName(c)] != c.Count {
			t.Errorf("caller of the kept file %s: count %d, was %d", callerName(c), counts[callerName(c)], c.Count)
		}
	}
}

func callerName(c audit.Caller) string {
	return fmt.Sprintf("%s %s %q", c.Class, c.Process.Exe, c.Process.Cmdline)
}

// replaceBinary installs a copy of the program at path over it, as a package manager does
// (a new file renamed over the old one: the old inode lives on for a process still running it).
func replaceBinary(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// `imdsv2 audit --output json > FILE` on a file system that fills up (an 8 KiB tmpfs mounted
// by the test on a directory of its own): the failure is reported on stderr while the agent
// runs, the records that did not fit are counted in dropped_records, and every caller is in
// the state file. It used to write part of the records and say nothing until the end, with
// dropped_records 0.
func TestAgentOnAFullFileSystem(t *testing.T) {
	h := newBedHarness(t, "imdsv2")
	dir := privtest.Tmpfs(t, "8k")
	out, err := os.Create(filepath.Join(dir, "records.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	state := filepath.Join(t.TempDir(), "state.json")
	agent := h.startAgent(t, out, "--output", "json", "--state", state)
	paths := []string{"instance-id", "ami-id", "hostname", "instance-type", "local-ipv4", "mac",
		"placement/region", "placement/availability-zone", "security-groups", "reservation-id", "ami-launch-index", "local-hostname"}
	for _, p := range paths {
		h.curlV1(t, p)
	}
	waitState(t, state, "every caller", func(got map[string]uint64) bool { return len(got) == len(paths) })
	if !strings.Contains(agent.errors(), "writing the JSON output failed") {
		t.Fatalf("the full file system was not reported while the agent runs:\n%s", agent.errors())
	}
	code := agent.stop(t, syscall.SIGTERM)
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	for _, line := range strings.Split(string(b), "\n") {
		if json.Valid([]byte(line)) {
			whole++
		}
	}
	_, s := curlCallers(t, state)
	t.Logf("exit %d; %d bytes, %d whole records of %d; dropped_records %d", code, len(b), whole, len(paths), s.DroppedRecords)
	if code != 1 || whole == 0 || whole >= len(paths) || s.DroppedRecords != uint64(len(paths)-whole) {
		t.Fatalf("exit %d, %d whole records of %d, dropped_records %d\n%s", code, whole, len(paths), s.DroppedRecords, agent.errors())
	}
}
