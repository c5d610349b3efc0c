package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

func TestAggregationPerCaller(t *testing.T) {
	h := newHarness(t, audit.Options{MaxPathsPerCaller: 2})
	r := replay.New(t0)
	p := replay.Proc{PID: 7000, PPID: 1, Comm: "curl"}
	r.Exec(p, "/usr/bin/curl", "curl", "-s", "http://169.254.169.254/")
	c := r.Connect(p)
	for i, path := range []string{"/a", "/b", "/a", "/c", "/d"} {
		r.Advance(time.Second)
		c.Send(replay.GetV1(path, "curl/7.29.0"))
		c.Recv(replay.Answer([]int{200, 404}[i%2], 1), 64)
	}
	// Same executable, other command line: another caller.
	q := replay.Proc{PID: 7001, PPID: 1, Comm: "curl"}
	r.Exec(q, "/usr/bin/curl", "curl", "-s", "http://169.254.169.254/other")
	c2 := r.Connect(q)
	c2.Send(replay.GetV1("/a", "curl/7.29.0"))
	c2.Recv(replay.Answer(200, 1), 64)
	h.feed(r)

	s := h.a.Snapshot()
	if len(s.Callers) != 2 || s.Requests[audit.ClassIMDSv1] != 6 {
		t.Fatalf("%+v", s.Callers)
	}
	c0 := s.Callers[0]
	if c0.Count != 5 || c0.Process.PID != 7000 || !c0.FirstSeen.Equal(t0.Add(time.Second)) || !c0.LastSeen.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("%+v", c0)
	}
	if len(c0.Paths) != 2 || c0.Paths[0] != (audit.PathCount{Path: "/a", Count: 2}) || c0.PathsOther != 2 {
		t.Fatalf("paths %+v other %d", c0.Paths, c0.PathsOther)
	}
	if c0.Answers[200] != 3 || c0.Answers[404] != 2 || c0.SDK == nil || c0.SDK.Product != "curl" {
		t.Fatalf("%+v", c0)
	}
	if len(s.ReadyHints.IMDSv1Callers) != 2 || s.ReadyHints.IMDSv1Callers[0].Advice == "" {
		t.Fatalf("%+v", s.ReadyHints)
	}
}

func TestCallersBound(t *testing.T) {
	h := newHarness(t, audit.Options{MaxCallers: 2})
	r := replay.New(t0)
	for i := range 4 {
		p := replay.Proc{PID: uint32(8000 + i), PPID: 1, Comm: "x"}
		r.Exec(p, fmt.Sprintf("/bin/x%d", i), "x")
		c := r.Connect(p)
		c.Send(replay.GetV1("/", "curl/8"))
		c.Recv(replay.Answer(200, 1), 64)
	}
	h.feed(r)
	s := h.a.Snapshot()
	// Every request is in the totals, which the verdict reads; the callers
	// beyond the bound are counted as dropped, and nothing was missed.
	if len(s.Callers) != 2 || s.CallersDropped != 2 || s.Requests[audit.ClassIMDSv1] != 4 || !s.ReadyHints.Complete {
		t.Fatalf("callers %d dropped %d requests %v", len(s.Callers), s.CallersDropped, s.Requests)
	}
}

// The caller table full of IMDSv2 callers (distinct command lines) still
// itemises the one IMDSv1 caller that comes last: IMDSv2 entries make room.
func TestCallerTableKeepsIMDSv1Callers(t *testing.T) {
	h := newHarness(t, audit.Options{MaxCallers: 8})
	r := replay.New(t0)
	for i := range 20 {
		p := replay.Proc{PID: uint32(8000 + i), PPID: 1, Comm: "app"}
		r.Exec(p, "/usr/bin/app", "app", fmt.Sprintf("--job=%d", i))
		c := r.Connect(p)
		c.Send(replay.TokenPUT(60, "aws-sdk-go-v2/1.21.0"))
		c.Recv(replay.Answer(200, 56), 1)
		c.Send(replay.GetV2("/latest/meta-data/instance-id", "aws-sdk-go-v2/1.21.0"))
		c.Recv(replay.Answer(200, 19), 64)
		r.Advance(time.Millisecond)
	}
	v1 := replay.Proc{PID: 9999, PPID: 1, Comm: "curl"}
	r.Exec(v1, "/usr/bin/curl", "curl", "http://169.254.169.254/latest/meta-data/iam/security-credentials/role")
	c := r.Connect(v1)
	c.Send(replay.GetV1("/latest/meta-data/iam/security-credentials/role", "curl/8.0"))
	c.Recv(replay.Answer(200, 900), 64)
	h.feed(r)
	s := h.a.Snapshot()
	if len(s.Callers) > 8 || s.Requests[audit.ClassIMDSv1] != 1 || len(s.ReadyHints.IMDSv1Callers) != 1 ||
		s.ReadyHints.IMDSv1Callers[0].Process.PID != 9999 {
		t.Fatalf("callers %d requests %v v1 %+v", len(s.Callers), s.Requests, s.ReadyHints.IMDSv1Callers)
	}
	var itemised uint64
	for _, c := range s.Callers {
		itemised += c.Count
	}
	var total uint64
	for _, n := range s.Requests {
		total += n
	}
	if itemised+s.CallersDropped != total {
		t.Fatalf("itemised %d + dropped %d != %d requests", itemised, s.CallersDropped, total)
	}
}

// Command lines that vary without end are merged by executable once the table
// is full: the IMDSv1 callers are all itemised, under one aggregated entry.
func TestCallerTableAggregatesByExecutable(t *testing.T) {
	h := newHarness(t, audit.Options{MaxCallers: 4})
	r := replay.New(t0)
	for i := range 50 {
		p := replay.Proc{PID: uint32(7000 + i), PPID: 1, Comm: "curl"}
		r.Exec(p, "/usr/bin/curl", "curl", fmt.Sprintf("http://169.254.169.254/latest/meta-data/?req=%d", i))
		c := r.Connect(p)
		c.Send(replay.GetV1("/latest/meta-data/", "curl/8.0"))
		c.Recv(replay.Answer(200, 9), 64)
	}
	h.feed(r)
	s := h.a.Snapshot()
	var v1 uint64
	aggregated := false
	for _, c := range s.Callers {
		if c.Class == audit.ClassIMDSv1 {
			v1 += c.Count
			aggregated = aggregated || c.Aggregated
		}
	}
	if v1 != 50 || !aggregated || s.CallersDropped != 0 || len(s.Callers) > 4 {
		t.Fatalf("itemised v1 %d aggregated %v dropped %d callers %d", v1, aggregated, s.CallersDropped, len(s.Callers))
	}
	// The state file keeps the aggregated entry under its broad key.
	path := t.TempDir() + "/state.json"
	if err := audit.SaveState(path, s); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, audit.Options{MaxCallers: 4, StateFile: path})
	r2 := replay.New(t0.Add(time.Hour))
	p := replay.Proc{PID: 7999, PPID: 1, Comm: "curl"}
	r2.Exec(p, "/usr/bin/curl", "curl", "http://169.254.169.254/latest/meta-data/?req=new")
	c := r2.Connect(p)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8.0"))
	c.Recv(replay.Answer(200, 9), 64)
	h2.feed(r2)
	s2 := h2.a.Snapshot()
	if s2.Requests[audit.ClassIMDSv1] != 51 || s2.CallersDropped != 0 || len(s2.Callers) > 4 {
		t.Fatalf("after restart: requests %v dropped %d callers %d", s2.Requests, s2.CallersDropped, len(s2.Callers))
	}
}

func TestConnectionsBound(t *testing.T) {
	h := newHarness(t, audit.Options{MaxConnections: 2})
	r := replay.New(t0)
	var conns []*replay.Conn
	for range 3 {
		c := r.Connect(curlProc)
		c.Send(replay.TokenPUT(60, "curl/8"))
		conns = append(conns, c)
		r.Advance(time.Millisecond)
	}
	h.feed(r)
	// The idlest connection was dropped: its pending PUT resolved as unanswered.
	if got := h.requests(); len(got) != 1 || !got[0].Unanswered || got[0].Cookie != conns[0].Cookie {
		t.Fatalf("%+v", got)
	}
}

func TestSummaryIsStable(t *testing.T) {
	h := hostileSession(t)
	a, b := jsonOf(t, h.a.Snapshot()), jsonOf(t, h.a.Snapshot())
	if string(a) != string(b) {
		t.Fatal("two snapshots of the same state differ")
	}
}
