package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// v1Callers returns the IMDSv1 callers of a state file by executable.
func v1Callers(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	s, err := audit.ReadState(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, c := range s.Callers {
		if c.Class == audit.ClassIMDSv1 {
			out[c.Process.Exe+" "+c.Process.Cmdline] = c.Count
		}
	}
	return out
}

// A new caller is written to the state file at the next tick, although the
// periodic write is an hour away; more requests of a known caller wait for
// the periodic write; a second new caller within the rate bound waits for it.
func TestNewCallerIsWrittenPromptly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, audit.Options{StateFile: path, StateInterval: time.Hour})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
	c.Recv(replay.Answer(200, 19), 64)
	h.feed(r)
	if got := v1Callers(t, path); len(got) != 0 {
		t.Fatalf("written before a tick: %v", got)
	}
	now := h.clock.Now()
	h.tick(now)
	got := v1Callers(t, path)
	if len(got) != 1 {
		t.Fatalf("after the tick: %v", got)
	}

	// The same caller again: a count, not a new caller; not written before the periodic write.
	c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
	c.Recv(replay.Answer(200, 19), 64)
	h.feed(r)
	h.tick(now.Add(10 * time.Second))
	if again := v1Callers(t, path); !mapsEqual(again, got) {
		t.Fatalf("a count of a known caller was written at once: %v", again)
	}

	// Another caller 100 ms after a write: it waits for the rate bound, then is written.
	h.tick(now.Add(20 * time.Second)) // nothing to write
	other := replay.Proc{PID: 700, PPID: 1, Comm: "python3"}
	r.Exec(other, "/usr/bin/python3", "python3", "/opt/poll.py")
	c2 := r.Connect(other)
	c2.Send(replay.GetV1("/latest/meta-data/placement/region", "python-requests/2.31"))
	c2.Recv(replay.Answer(200, 9), 64)
	h.feed(r)
	h.tick(h.clock.Now())
	if n := len(v1Callers(t, path)); n != 2 {
		t.Fatalf("second caller: %d callers in the state file", n)
	}
	third := replay.Proc{PID: 710, PPID: 1, Comm: "wget"}
	r.Exec(third, "/usr/bin/wget", "wget", "-qO-", "http://169.254.169.254/")
	c3 := r.Connect(third)
	c3.Send(replay.GetV1("/", "Wget/1.21"))
	c3.Recv(replay.Answer(200, 9), 64)
	h.feed(r)
	at := h.clock.Now()
	h.tick(at.Add(100 * time.Millisecond))
	if n := len(v1Callers(t, path)); n != 2 {
		t.Fatalf("a write 100ms after the last one: %d callers", n)
	}
	h.tick(at.Add(time.Second))
	if n := len(v1Callers(t, path)); n != 3 {
		t.Fatalf("third caller not written within a second: %d callers", n)
	}
}

// Run writes a new caller without waiting for the periodic write: the
// prompt write of a running agent, end to end through its own loop.
func TestRunWritesNewCallerPromptly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	a, err := audit.New(audit.Options{StateFile: path, StateInterval: time.Hour, ProcessTable: newFakeTable()})
	if err != nil {
		t.Fatal(err)
	}
	r := replay.New(time.Now())
	c := r.Connect(curlProc)
	c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
	c.Recv(replay.Answer(200, 19), 64)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx, &blockingSource{events: r.Events(), served: make(chan struct{}, 1)}) }()
	deadline := time.Now().Add(time.Minute) // a bound on a loaded machine, not the claim
	for len(v1Callers(t, path)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the caller never reached the state file while Run went on")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// keptStates are state files written by earlier versions, kept as test data:
// every later version reads them and keeps their counts.
var keptStates = []string{"testdata/state-schema1.json", "testdata/state-schema2.json"}

// An agent reads every state file an earlier version wrote, keeps its counts
// and writes them back in its own schema.
func TestKeptStateFilesAreReadAndKeepTheirCounts(t *testing.T) {
	for _, kept := range keptStates {
		t.Run(filepath.Base(kept), func(t *testing.T) {
			old, err := os.ReadFile(kept)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, old, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := audit.ReadState(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(before.Callers) == 0 || before.Requests[audit.ClassIMDSv1] == 0 {
				t.Fatalf("%s holds no IMDSv1 caller: not a useful kept file", kept)
			}
			a, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.SaveState(); err != nil {
				t.Fatal(err)
			}
			after, err := audit.ReadState(path)
			if err != nil {
				t.Fatal(err)
			}
			if after.Schema != audit.SummarySchema || after.Resumed != before.Resumed+1 || !after.Since.Equal(before.Since) {
				t.Fatalf("schema %d resumed %d since %v; before: resumed %d since %v",
					after.Schema, after.Resumed, after.Since, before.Resumed, before.Since)
			}
			for c, n := range before.Requests {
				if after.Requests[c] != n {
					t.Errorf("requests %s: %d, was %d", c, after.Requests[c], n)
				}
			}
			if after.LostEvents != before.LostEvents || after.CallersDropped != before.CallersDropped ||
				after.DroppedRecords != before.DroppedRecords {
				t.Errorf("totals changed: %+v -> %+v", before, after)
			}
			if got, want := callerCounts(after), callerCounts(before); !slices.Equal(got, want) {
				t.Errorf("callers:\n got %v\nwant %v", got, want)
			}
			if (before.Instance == nil) != (after.Instance == nil) ||
				(before.Instance != nil && *before.Instance != *after.Instance) {
				t.Errorf("instance %+v, was %+v", after.Instance, before.Instance)
			}
			if len(after.Coverage.Spans) != len(before.Coverage.Spans) {
				t.Errorf("coverage spans %d, was %d", len(after.Coverage.Spans), len(before.Coverage.Spans))
			}
		})
	}
}

func callerCounts(s *audit.Summary) []string {
	var out []string
	for _, c := range s.Callers {
		out = append(out, fmt.Sprintf("%s %s %q %d %v", c.Class, c.Process.Exe, c.Process.Cmdline, c.Count, c.Answers))
	}
	slices.Sort(out)
	return out
}

// An older agent meets a state file of a newer one: it stops with an error
// that names both versions and what to do, and leaves the file as it was.
func TestNewerStateIsRefusedWithBothVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	newer := fmt.Sprintf(`{"schema": %d, "callers": "a layout of the future"}`, audit.SummarySchema+1)
	if err := os.WriteFile(path, []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
	if !errors.Is(err, audit.ErrStateSchema) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("schema %d", audit.SummarySchema+1), fmt.Sprintf("up to %d", audit.SummarySchema), "newer version"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != newer {
		t.Fatal("file changed")
	}
	if aside, _ := filepath.Glob(path + ".*"); len(aside) != 0 {
		t.Fatalf("moved aside: %v", aside)
	}
}

// TestWriteKeptState writes testdata/state-schemaN.json for the current
// schema when run with IMDSV2_WRITE_KEPT_STATE=1: a new schema keeps a file
// of the one before it (add it to keptStates).
func TestWriteKeptState(t *testing.T) {
	if os.Getenv("IMDSV2_WRITE_KEPT_STATE") != "1" {
		t.Skip("writes test data; set IMDSV2_WRITE_KEPT_STATE=1 when the schema changes")
	}
	path := fmt.Sprintf("testdata/state-schema%d.json", audit.SummarySchema)
	h := newHarness(t, audit.Options{StateFile: path})
	h.a.Handle(audit.Event{Kind: audit.EventAttached, Time: t0, Watch: &audit.Watch{Path: "/", HostRoot: true, ExecTracing: true}})
	h.a.SetInstance(audit.Instance{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1", AvailabilityZone: "eu-west-1a",
		InstanceType: "m7g.large", ReadAt: t0})
	h.feed(hostSession(h))
	h.tick(t0.Add(time.Hour))
	if err := h.a.SaveState(); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The instance's identity, read in the background after the agent starts, is written at the
// next tick: without it a verdict from the state file is undecided.
func TestInstanceIsWrittenPromptly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, audit.Options{StateFile: path, StateInterval: time.Hour})
	h.tick(t0) // nothing to write yet
	h.a.SetInstance(audit.Instance{InstanceID: "i-0123456789abcdef0", ReadAt: t0})
	h.tick(t0.Add(time.Second))
	s, err := audit.ReadState(path)
	if err != nil || s.Instance == nil || s.Instance.InstanceID != "i-0123456789abcdef0" {
		t.Fatalf("state %+v, %v", s, err)
	}
}
