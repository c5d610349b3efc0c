package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// outcomeLimit bounds every wait for an outcome (a record, a process). It guards against hangs
// on a loaded CI machine; it is not a performance claim.
const outcomeLimit = 90 * time.Second

// harness is a test bed with the emulator at the IMDS addresses, a test cgroup with the agent
// attached to it, and an auditor collecting the records it produces.
type harness struct {
	bed     *testbed.Bed
	srv     *imdstest.Server
	cg      *cgroup.Group
	agent   *bpf.Agent
	auditor *audit.Auditor
	bin     string // directory of the binaries built for the test

	mu      sync.Mutex
	records []audit.Record
}

func newHarness(t testing.TB, binaries ...string) *harness {
	t.Helper()
	// The token answer time-out is long because a loaded machine may take a while to pass an
	// answer through; the unanswered PUT of the hop-limit case is reported when curl gives up.
	return newHarnessWith(t, audit.Options{TokenAnswerTimeout: 30 * time.Second}, binaries...)
}

// newHarnessWith is newHarness with the auditor's options (OnRecord is the harness's).
func newHarnessWith(t testing.TB, opts audit.Options, binaries ...string) *harness {
	t.Helper()
	h := newAgentHarness(t, binaries...)
	opts.OnRecord = h.add
	var err error
	h.auditor, err = audit.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.consume(t, h.auditor.Run)
	return h
}

// newAgentHarness is the bed, the emulator, the test cgroup and the agent attached to it, with
// nothing reading the agent's events yet (see consume).
func newAgentHarness(t testing.TB, binaries ...string) *harness {
	t.Helper()
	h := newBedHarness(t, binaries...)
	h.attach(t)
	return h
}

// attach loads the agent and attaches it to the test cgroup.
func (h *harness) attach(t testing.TB) {
	t.Helper()
	// The simulated instance's network namespace is the host's: callers there are on the
	// host, the container's are in a network namespace of their own.
	agent, err := bpf.Load(bpf.Options{RequireExec: true, HostNetns: h.bed.Path(testbed.Instance)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	if err := agent.Attach(h.cg.Path()); err != nil {
		t.Fatal(err)
	}
	h.agent = agent
	t.Logf("agent attached:\n%s", agent.Features())
}

// newBedHarness is the bed, the emulator and the test cgroup, with no agent: for tests whose
// agent is the imdsv2 binary.
func newBedHarness(t testing.TB, binaries ...string) *harness {
	t.Helper()
	testbed.Require(t)
	privtest.RequireCaps(t, privtest.CapNetAdmin, privtest.CapBPF, privtest.CapPerfmon)
	for _, tool := range []string{"curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			privtest.Unavailable(t, tool+" is not installed (.ci/run installs it): "+err.Error())
		}
	}
	if err := bpf.Check(); err != nil {
		privtest.Unavailable(t, err.Error())
	}
	h := &harness{bin: t.TempDir()}
	for _, name := range binaries {
		h.build(t, name)
	}

	h.bed = testbed.NewForTest(t, testbed.Config{})
	// The emulator waits for request headers as long as the test waits for anything: a hundred
	// callers starting at once in a VM without KVM starve it for longer than its default.
	h.srv = imdstest.NewUnstartedServer(imdstest.Config{HopLimit: 1, ReadHeaderTimeout: outcomeLimit})
	t.Cleanup(h.srv.Close)
	if err := h.bed.ServeIMDS(h.srv); err != nil {
		t.Fatal(err)
	}
	h.cg = cgroup.ForTest(t)
	return h
}

// consume runs read on the agent's events until the test ends.
func (h *harness) consume(t testing.TB, read func(context.Context, audit.Source) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- read(ctx, h.agent) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("auditor: %v", err)
		}
	})
}

// build compiles the program name ("imdsv2" or "caller") into h.bin. The module cache must
// hold every dependency: the test runs without network. When IMDSV2_E2E_PREBUILT names a
// directory holding the program already built (make test-vm builds it on the host, since
// compiling under software emulation takes minutes), that binary is used instead.
func (h *harness) build(t testing.TB, name string) {
	t.Helper()
	if dir := os.Getenv("IMDSV2_E2E_PREBUILT"); dir != "" {
		src := filepath.Join(dir, name)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("IMDSV2_E2E_PREBUILT=%s: %v", dir, err)
		}
		if err := os.Symlink(src, filepath.Join(h.bin, name)); err != nil {
			t.Fatal(err)
		}
		return
	}
	pkg := "./testdata/" + name
	if name == "imdsv2" {
		pkg = "github.com/imdsv2/imdsv2/cmd/imdsv2"
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", filepath.Join(h.bin, name), pkg)
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

func (h *harness) add(r audit.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
}

// snapshot returns the records so far.
func (h *harness) snapshot() []audit.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]audit.Record(nil), h.records...)
}

// run runs name with args inside the cgroup and the namespace ns, and returns the command
// (its Process.Pid names the caller) and its output. wantOK says whether it must succeed.
func (h *harness) run(t testing.TB, ns testbed.NS, wantOK bool, name string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return h.runIn(t, h.cg, ns, wantOK, name, args...)
}

// runIn is run in the cgroup cg.
func (h *harness) runIn(t testing.TB, cg *cgroup.Group, ns testbed.NS, wantOK bool, name string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	if filepath.Base(name) == name {
		if p := filepath.Join(h.bin, name); fileExists(p) {
			name = p
		}
	}
	// exec kills a program still running after outcomeLimit (a timer of our own read
	// cmd.Process while Start wrote it).
	ctx, cancel := context.WithTimeout(context.Background(), outcomeLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cg.Prepare(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	err := h.bed.Run(ns, cmd)
	if cmd.Process == nil {
		t.Fatalf("%s: %v", name, err)
	}
	if wantOK && err != nil {
		t.Fatalf("%s %q in %s: %v\n%s", name, args, ns, err, out.String())
	}
	if !wantOK && err == nil {
		t.Fatalf("%s %q in %s succeeded, want a failure\n%s", name, args, ns, out.String())
	}
	return cmd, out.String()
}

// waitFor polls the records until match returns those wanted (ok), or fails the test after
// outcomeLimit.
func (h *harness) waitFor(t testing.TB, what string, match func([]audit.Record) ([]audit.Record, bool)) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(outcomeLimit)
	for {
		got, ok := match(h.snapshot())
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; %d records so far, matching ones: %s", what, outcomeLimit, len(h.snapshot()), describe(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// byPID waits for n request records of the process pid.
func (h *harness) byPID(t testing.TB, pid int, n int) []audit.Record {
	t.Helper()
	return h.waitFor(t, fmt.Sprintf("%d records of pid %d", n, pid), func(rs []audit.Record) ([]audit.Record, bool) {
		got := filter(rs, func(r audit.Record) bool { return r.Type == audit.RecordRequest && r.Process.PID == uint32(pid) })
		return got, len(got) >= n
	})
}

func filter(rs []audit.Record, keep func(audit.Record) bool) []audit.Record {
	var out []audit.Record
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func describe(rs []audit.Record) string {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %s %s %s status=%d unanswered=%v incomplete=%v pid=%d ppid=%d exe=%q cmd=%q src=%s ua=%q socket=%d sent=%s answered=%s",
			r.Class, r.Method, r.Path, r.Status, r.Unanswered, r.Incomplete, r.Process.PID, r.Process.PPID, r.Process.Exe, r.Process.Cmdline, r.Process.Source, r.UserAgent,
			r.Cookie, r.Time.Format("15:04:05.000"), r.AnsweredAt.Format("15:04:05.000"))
	}
	return b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
