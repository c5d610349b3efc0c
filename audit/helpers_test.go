package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/replay"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const dockerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeTable reads the fake /proc tree of audit/proc/testdata, with cgroup ids
// from a map and processes that can be added or hidden.
type fakeTable struct {
	*proc.Table
	cgroups map[uint64]string
	extra   map[uint32]proc.Process
}

func newFakeTable() *fakeTable {
	return &fakeTable{
		Table:   proc.New(proc.Config{ProcRoot: "proc/testdata/proc", Root: "proc/testdata/root"}),
		cgroups: map[uint64]string{},
		extra:   map[uint32]proc.Process{},
	}
}

func (f *fakeTable) Process(pid uint32) (proc.Process, error) {
	if p, ok := f.extra[pid]; ok {
		return p, nil
	}
	return f.Table.Process(pid)
}

func (f *fakeTable) CgroupPath(id uint64) (string, error) {
	if p, ok := f.cgroups[id]; ok {
		return p, nil
	}
	return "", errors.New("unknown cgroup id")
}

// harness is an Auditor fed synchronously, with its records collected.
type harness struct {
	t       *testing.T
	a       *audit.Auditor
	clock   *fakeclock.Clock
	table   *fakeTable
	records []audit.Record
	fed     map[*replay.Recorder]int
}

func newHarness(t *testing.T, opts audit.Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: fakeclock.New(t0), table: newFakeTable()}
	if opts.ProcessTable == nil {
		opts.ProcessTable = h.table
	}
	opts.Clock = h.clock
	opts.OnRecord = func(r audit.Record) { h.records = append(h.records, r) }
	a, err := audit.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	return h
}

// feed hands the recorder's events not fed yet to the auditor, moving the
// clock along.
func (h *harness) feed(r *replay.Recorder) {
	if h.fed == nil {
		h.fed = map[*replay.Recorder]int{}
	}
	evs := r.Events()[h.fed[r]:]
	h.fed[r] = len(r.Events())
	for _, ev := range evs {
		if ev.Time.After(h.clock.Now()) {
			h.clock.Set(ev.Time)
		}
		h.a.Handle(ev)
	}
}

// tick moves the clock to t and runs the time-outs.
func (h *harness) tick(t time.Time) {
	h.clock.Set(t)
	h.a.Tick()
}

func (h *harness) requests() []audit.Record {
	var out []audit.Record
	for _, r := range h.records {
		if r.Type == audit.RecordRequest {
			out = append(out, r)
		}
	}
	return out
}

// jsonOf encodes v and fails the test on error.
func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noToken fails if the fake token (or a piece of it) appears in b.
func noToken(t *testing.T, what string, b []byte) {
	t.Helper()
	if bytes.Contains(b, []byte(replay.FakeToken[:20])) || bytes.Contains(b, []byte("FakeTokenValue")) {
		t.Fatalf("%s contains the token value:\n%s", what, b)
	}
}

var (
	curlProc = replay.Proc{PID: 100, PPID: 95, UID: 1000, GID: 1000, Comm: "curl"}
	goProc   = replay.Proc{PID: 4242, PPID: 4241, UID: 0, Comm: "app"}
)
