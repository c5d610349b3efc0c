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
	if c0.Answers["200"] != 3 || c0.Answers["404"] != 2 || c0.SDK == nil || c0.SDK.Product != "curl" {
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
	if len(s.Callers) != 2 || s.CallersDropped != 2 || s.Requests[audit.ClassIMDSv1] != 4 || s.ReadyHints.Complete {
		t.Fatalf("callers %d dropped %d requests %v", len(s.Callers), s.CallersDropped, s.Requests)
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
