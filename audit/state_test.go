package audit_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
)

// v1Session sends n IMDSv1 requests from curl and one unanswered token PUT.
func v1Session(start time.Time, n int) *replay.Recorder {
	r := replay.New(start)
	c := r.Connect(curlProc)
	for range n {
		c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
		c.Recv(replay.Answer(200, 19), 64)
		r.Advance(time.Second)
	}
	put := r.Connect(goProc)
	put.Send(replay.TokenPUT(300, goUA))
	put.Close()
	r.Lost(2)
	return r
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, audit.Options{StateFile: path})
	h.feed(v1Session(t0, 3))
	if err := h.a.SaveState(); err != nil {
		t.Fatal(err)
	}
	before := h.a.Snapshot()
	h.a.Close()

	// A restart resumes the counts and adds to them.
	h2 := newHarness(t, audit.Options{StateFile: path})
	resumed := h2.a.Snapshot()
	if resumed.Resumed != 1 || !resumed.Since.Equal(before.Since) || resumed.LostEvents != 2 ||
		resumed.Requests[audit.ClassIMDSv1] != 3 || len(resumed.Callers) != len(before.Callers) {
		t.Fatalf("resumed: %+v", resumed)
	}
	if string(jsonOf(t, resumed.Callers)) != string(jsonOf(t, before.Callers)) {
		t.Fatalf("callers changed across the restart:\n%s\n%s", jsonOf(t, before.Callers), jsonOf(t, resumed.Callers))
	}
	h2.feed(v1Session(t0.Add(time.Hour), 2))
	s := h2.a.Snapshot()
	if s.Requests[audit.ClassIMDSv1] != 5 || s.LostEvents != 4 || s.Callers[0].Count != 5 ||
		!s.Callers[0].FirstSeen.Equal(t0) || s.ReadyHints.UnansweredTokenPUTs[0].Count != 2 {
		t.Fatalf("after more events: %+v", s)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "state.json" && e.Name() != ".state.json.lock" { // the lock file stays
			t.Fatalf("temporary files left: %v", entries)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestCorruptStateIsKeptAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "{not json",
		"truncated": `{"schema": 1, "callers": [`,
		"no schema": `{"callers": []}`,
		"trailing":  `{"schema": 1} {"schema": 1}`,
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
			if !errors.Is(err, audit.ErrCorruptState) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("corrupt file still at its path: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 || !strings.Contains(err.Error(), aside[0]) {
				t.Fatalf("aside %v, err %v", aside, err)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != content {
				t.Fatalf("content changed: %q", b)
			}
		})
	}
}

func TestUnreadableStateIsKeptAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.Mkdir(path, 0o700); err != nil { // a directory cannot be read as a file
		t.Fatal(err)
	}
	if _, err := audit.LoadState(path); !errors.Is(err, audit.ErrCorruptState) {
		t.Fatalf("err = %v", err)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Fatalf("aside %v", aside)
	}
}

func TestOtherSchemaIsRefusedAndLeftAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	content := `{"schema": 99, "callers": "a newer layout"}`
	os.WriteFile(path, []byte(content), 0o600)
	if _, err := audit.LoadState(path); err == nil || errors.Is(err, audit.ErrCorruptState) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Fatal("file touched")
	}
}

func TestMissingStateIsAFreshStart(t *testing.T) {
	s, err := audit.LoadState(filepath.Join(t.TempDir(), "none.json"))
	if s != nil || err != nil {
		t.Fatalf("%v %v", s, err)
	}
}

func TestSaveStateIntoMissingDirectoryFails(t *testing.T) {
	if err := audit.SaveState(filepath.Join(t.TempDir(), "no", "such", "state.json"), audit.Summary{}); err == nil {
		t.Fatal("no error")
	}
}

// A state file written by the agent of schema 1 (kept from that version as
// testdata/state-schema1.json) is read by this one: counts, callers and the
// totals rebuilt from them carry on, and its coverage is unknown (empty), so
// no verdict can call it complete.
func TestSchema1StateIsRead(t *testing.T) {
	old, err := os.ReadFile("testdata/state-schema1.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := audit.ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Schema != 1 || s.Requests[audit.ClassIMDSv1] != 5 || len(s.Callers) == 0 || len(s.Coverage.Spans) != 0 {
		t.Fatalf("read %+v", s)
	}
	a, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
	if err != nil {
		t.Fatal(err)
	}
	got := a.Snapshot()
	if got.Schema != audit.SummarySchema || got.Resumed != s.Resumed+1 || got.Requests[audit.ClassIMDSv1] != 5 ||
		got.TokenPUTs.Unanswered != 1 || got.TokenPUTs.Refused != 1 || got.Fallbacks != 1 ||
		len(got.ReadyHints.IMDSv1Callers) != 2 || got.Coverage.WholeHost || len(got.Coverage.Spans) != 0 {
		t.Fatalf("resumed %+v", got)
	}
	if err := a.SaveState(); err != nil {
		t.Fatal(err)
	}
	again, err := audit.ReadState(path)
	if err != nil || again.Schema != audit.SummarySchema || again.Requests[audit.ClassIMDSv1] != 5 {
		t.Fatalf("rewritten: %v %+v", err, again)
	}
}

// Coverage: spans from the source's attach and detach events, the gap of a
// cgroup re-creation and of an agent restart, and what the state file keeps.
func TestCoverageSpansAndGaps(t *testing.T) {
	clock := fakeclock.New(t0)
	opts := hostAgentOptions(t, clock)
	root := audit.Watch{Path: "/", CgroupID: 1, HostRoot: true, ExecTracing: true}
	a := startAttached(t, opts, t0, &root)
	clock.Set(t0.Add(10 * time.Minute))
	s := a.Snapshot()
	if cv := s.Coverage; len(cv.Spans) != 1 || !cv.WholeHost || !cv.ExecTracing || cv.Scope != "/" ||
		cv.WatchedSeconds != 600 || len(cv.Gaps) != 0 || !cv.Spans[0].Open {
		t.Fatalf("%+v", cv)
	}
	// The cgroup goes away for a minute and comes back with another id.
	detached := root
	detached.Reason = "cgroup removed"
	a.Handle(audit.Event{Kind: audit.EventDetached, Time: t0.Add(10 * time.Minute), Watch: &detached})
	again := root
	again.CgroupID = 2
	a.Handle(audit.Event{Kind: audit.EventAttached, Time: t0.Add(11 * time.Minute), Watch: &again})
	clock.Set(t0.Add(20 * time.Minute))
	// The agent dies without a word (kill -9; the kernel releases its lock): the
	// state keeps 20 minutes. A new agent starts an hour later from the same state.
	b := restart(t, a, opts, clock, t0.Add(80*time.Minute), &again)
	clock.Set(t0.Add(90 * time.Minute))
	cv := b.Snapshot().Coverage
	if len(cv.Spans) != 3 || len(cv.Gaps) != 2 || cv.WatchedSeconds != (10+9+10)*60 || cv.GapSeconds != (1+60)*60 ||
		!cv.WholeHost || cv.Gaps[0].Why != "cgroup removed" || !strings.Contains(cv.Gaps[1].Why, "agent not running") {
		t.Fatalf("%+v", cv)
	}
	// One span of an agent that could not see the host spoils whole-host.
	b.Handle(audit.Event{Kind: audit.EventAttached, Time: t0.Add(90 * time.Minute), Watch: &audit.Watch{Path: "/kubepods/pod1", CgroupID: 9}})
	if cv := b.Snapshot().Coverage; cv.WholeHost || cv.ExecTracing || cv.Scope != "mixed" {
		t.Fatalf("%+v", cv)
	}
}

// hostAgentOptions are the options of an auditor whose agent sees the host, with a state file
// and the clock.
func hostAgentOptions(t *testing.T, clock *fakeclock.Clock) audit.Options {
	return audit.Options{StateFile: filepath.Join(t.TempDir(), "state.json"), ProcessTable: newFakeTable(),
		Clock: clock, Agent: &audit.Agent{InitialCgroupNS: true, InitialPIDNS: true}}
}

// startAttached starts an auditor attached to w at the moment at.
func startAttached(t *testing.T, opts audit.Options, at time.Time, w *audit.Watch) *audit.Auditor {
	t.Helper()
	a, err := audit.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	a.Handle(audit.Event{Kind: audit.EventAttached, Time: at, Watch: w})
	return a
}

// restart saves a's state and closes it, then, with the clock moved to at, starts the next
// auditor from the same options and state file, attached to w.
func restart(t *testing.T, a *audit.Auditor, opts audit.Options, clock *fakeclock.Clock, at time.Time, w *audit.Watch) *audit.Auditor {
	t.Helper()
	if err := a.SaveState(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	clock.Set(at)
	return startAttached(t, opts, at, w)
}

// Spans beyond the bound are folded into one sum that keeps what matters.
func TestCoverageSpansAreBounded(t *testing.T) {
	clock := fakeclock.New(t0)
	a, err := audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: clock,
		Agent: &audit.Agent{InitialCgroupNS: true, InitialPIDNS: true}})
	if err != nil {
		t.Fatal(err)
	}
	at := t0
	for i := range 200 {
		w := audit.Watch{Path: "/", CgroupID: uint64(i), HostRoot: i != 3, ExecTracing: true}
		a.Handle(audit.Event{Kind: audit.EventAttached, Time: at, Watch: &w})
		at = at.Add(time.Minute)
		a.Handle(audit.Event{Kind: audit.EventDetached, Time: at, Watch: &audit.Watch{Reason: "cgroup removed"}})
		at = at.Add(time.Second)
	}
	clock.Set(at)
	cv := a.Snapshot().Coverage
	if len(cv.Spans) > 64 || cv.Earlier == nil || cv.Earlier.Spans+len(cv.Spans) != 200 || cv.WholeHost ||
		cv.WatchedSeconds != 200*60 || cv.GapSeconds != 199 {
		t.Fatalf("spans %d earlier %+v whole %v watched %v gaps %v", len(cv.Spans), cv.Earlier, cv.WholeHost,
			cv.WatchedSeconds, cv.GapSeconds)
	}
}

// A state file brought from another instance (an image built with it): once the agent reads
// this instance's identity, the coverage the file brought no longer counts; its counts stay.
func TestStateOfAnotherInstanceLosesItsCoverage(t *testing.T) {
	clock := fakeclock.New(t0)
	opts := hostAgentOptions(t, clock)
	root := audit.Watch{Path: "/", CgroupID: 1, HostRoot: true, ExecTracing: true}
	a := startAttached(t, opts, t0, &root)
	a.SetInstance(audit.Instance{InstanceID: "i-0aaaaaaaaaaaaaaaa"})
	clock.Set(t0.Add(48 * time.Hour))
	b := restart(t, a, opts, clock, t0.Add(49*time.Hour), &root)
	b.SetInstance(audit.Instance{InstanceID: "i-0bbbbbbbbbbbbbbbb"})
	clock.Set(t0.Add(49*time.Hour + time.Minute))
	s := b.Snapshot()
	if len(s.Coverage.Spans) != 1 || s.Coverage.WatchedSeconds != 60 || s.Instance.InstanceID != "i-0bbbbbbbbbbbbbbbb" {
		t.Fatalf("coverage %+v instance %+v", s.Coverage, s.Instance)
	}
	// A failed read keeps the identity read before, with its error: not a confirmed one.
	b.SetInstance(audit.Instance{Error: "hop limit", ErrorKind: "hop limit"})
	if s := b.Snapshot(); s.Instance.InstanceID != "i-0bbbbbbbbbbbbbbbb" || s.Instance.Error == "" {
		t.Fatalf("%+v", s.Instance)
	}
}

// TestStateFileLocked: a second auditor on the same state file (in this process or another)
// is refused with a clear error, before it reads or writes anything; once the first is
// closed, or its process ends, the next one starts.
func TestStateFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	a, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SaveState(); err != nil {
		t.Fatal(err)
	}
	_, err = audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
	if !errors.Is(err, audit.ErrStateInUse) {
		t.Fatalf("second auditor on %s: err = %v, want ErrStateInUse", path, err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), ".state.json.lock", "another state file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()

	// A lock held by another process: flock(1) holds it while sleep runs.
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) is not installed (util-linux): the lock held by another process is not tried")
	}
	holder := exec.Command(flock, "--exclusive", filepath.Join(filepath.Dir(path), ".state.json.lock"), "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	for range 500 { // until flock(1) holds it; bounded
		var c *audit.Auditor
		if c, err = audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()}); err == nil {
			c.Close() // flock(1) has not taken it yet
		} else {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, audit.ErrStateInUse) {
		t.Fatalf("lock held by pid %d: err = %v", holder.Process.Pid, err)
	}
}
