package audit_test

import (
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

const goUA = "aws-sdk-go-v2/1.21.0 os/linux lang/go#1.21.0 md/GOOS#linux md/GOARCH#amd64 ft/ec2-imds"

func TestKeepAlivePairing(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(goProc)
	c.Send(replay.TokenPUT(21600, goUA))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 56), 2)
	r.Advance(time.Millisecond)
	c.Send(replay.GetV2("/latest/meta-data/instance-id", goUA))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 19), 64)
	c.Send(replay.GetV2("/latest/meta-data/iam/info", goUA))
	c.Recv(replay.Answer(401, 0), 64)
	h.feed(r)

	got := h.requests()
	if len(got) != 3 {
		t.Fatalf("got %d records: %+v", len(got), got)
	}
	want := []struct {
		class  audit.Class
		status int
		hop    uint8
		path   string
	}{
		{audit.ClassTokenPUT, 200, 2, "/latest/api/token"},
		{audit.ClassIMDSv2, 200, 0, "/latest/meta-data/instance-id"},
		{audit.ClassIMDSv2, 401, 0, "/latest/meta-data/iam/info"},
	}
	for i, w := range want {
		g := got[i]
		if g.Class != w.class || g.Status != w.status || g.HopLimit != w.hop || g.Path != w.path || g.Unanswered {
			t.Errorf("record %d: %+v", i, g)
		}
	}
	if got[0].TokenTTL != 21600 || got[0].SDK == nil || got[0].SDK.Product != "aws-sdk-go-v2" {
		t.Errorf("token PUT record: %+v", got[0])
	}
	if !got[0].AnsweredAt.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("answered at %v", got[0].AnsweredAt)
	}
	noToken(t, "records", jsonOf(t, got))

	s := h.a.Snapshot()
	var v2 *audit.Caller
	for i := range s.Callers {
		if s.Callers[i].Class == audit.ClassIMDSv2 {
			v2 = &s.Callers[i]
		}
	}
	if v2 == nil || v2.Count != 2 || v2.Answers[200] != 1 || v2.Answers[401] != 1 || len(v2.Paths) != 2 {
		t.Fatalf("v2 caller: %+v", v2)
	}
	if hl := s.ReadyHints.ObservedHopLimits; len(hl) != 1 || hl[0] != (audit.HopLimit{HopLimit: 2, TokenAnswers: 1}) {
		t.Fatalf("hop limits: %+v", hl)
	}
	if len(s.ReadyHints.IMDSv1Callers) != 0 || len(s.ReadyHints.UnansweredTokenPUTs) != 0 || !s.ReadyHints.Complete {
		t.Fatalf("hints: %+v", s.ReadyHints)
	}
}

func TestPipelinedRequestsAndAnswers(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	c.Send(replay.GetV1("/latest/meta-data/a", "curl/8.5.0") + replay.GetV1("/latest/meta-data/b", "curl/8.5.0"))
	c.Recv(replay.Answer(200, 3)+replay.Answer(404, 9), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 2 || got[0].Path != "/latest/meta-data/a" || got[0].Status != 200 ||
		got[1].Path != "/latest/meta-data/b" || got[1].Status != 404 {
		t.Fatalf("%+v", got)
	}
}

func TestRequestInPiecesWithRetransmit(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	req := replay.GetV2("/latest/meta-data/", "curl/8.5.0")
	seq := c.SendSeq()
	c.SendSegment(seq, req[:30], 30)
	c.SendSegment(seq+60, req[60:], uint32(len(req)-60)) // out of order
	c.SendSegment(seq, req[:30], 30)                     // retransmit
	c.SendSegment(seq+25, req[25:60], 35)                // overlap, fills the hole
	c.Recv(replay.Answer(200, 5), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 1 || got[0].Class != audit.ClassIMDSv2 || got[0].Status != 200 || got[0].Incomplete {
		t.Fatalf("%+v", got)
	}
	if d := h.a.Snapshot().Reassembly.Duplicates; d != 1 {
		t.Fatalf("duplicates = %d", d)
	}
}

func TestUnansweredTokenPUTThenFallback(t *testing.T) {
	h := newHarness(t, audit.Options{TokenAnswerTimeout: time.Second})
	r := replay.New(t0)
	c := r.Connect(goProc)
	c.Send(replay.TokenPUT(21600, goUA))
	h.feed(r)
	h.tick(t0.Add(500 * time.Millisecond))
	if len(h.records) != 0 {
		t.Fatalf("resolved before the time-out: %+v", h.records)
	}
	h.tick(t0.Add(1500 * time.Millisecond))
	got := h.requests()
	if len(got) != 1 || !got[0].Unanswered || got[0].Status != 0 || got[0].Class != audit.ClassTokenPUT {
		t.Fatalf("after time-out: %+v", got)
	}

	// The SDK falls back to IMDSv1 on a new connection.
	r.Advance(2 * time.Second)
	c2 := r.Connect(goProc)
	c2.Send(replay.GetV1("/latest/meta-data/instance-id", goUA))
	c2.Recv(replay.Answer(200, 19), 64)
	h.feed(r)
	got = h.requests()
	if len(got) != 2 || got[1].Class != audit.ClassIMDSv1 || !got[1].AfterUnansweredPUT {
		t.Fatalf("fallback: %+v", got)
	}
	hints := h.a.Snapshot().ReadyHints
	if len(hints.UnansweredTokenPUTs) != 1 || !hints.UnansweredTokenPUTs[0].FellBack ||
		len(hints.IMDSv1Callers) != 1 {
		t.Fatalf("hints: %+v", hints)
	}
}

func TestUnansweredOnCloseAndExit(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(goProc)
	c.Send(replay.TokenPUT(300, goUA))
	r.Advance(time.Second)
	c.Close()
	p := replay.Proc{PID: 77, Comm: "boto"}
	c2 := r.Connect(p)
	c2.Send(replay.TokenPUT(300, "Botocore/1.34.0"))
	r.Exit(p)
	h.feed(r)
	got := h.requests()
	if len(got) != 2 || !got[0].Unanswered || !got[1].Unanswered {
		t.Fatalf("%+v", got)
	}
	hints := h.a.Snapshot().ReadyHints
	if len(hints.UnansweredTokenPUTs) != 2 || hints.UnansweredTokenPUTs[0].FellBack {
		t.Fatalf("%+v", hints.UnansweredTokenPUTs)
	}
}

func TestFallbackWhilePUTPending(t *testing.T) {
	// No close, no time-out yet: the IMDSv1 request of the same process on
	// another connection is a fallback. The PUT stays pending: what becomes
	// of it is decided by what comes next on its own connection.
	for _, tc := range []struct {
		name           string
		then           func(put *replay.Conn, r *replay.Recorder)
		unanswered     bool
		slow           bool
		wantPUTRecords int
	}{
		{name: "answer-comes-late", then: func(put *replay.Conn, r *replay.Recorder) {
			r.Advance(1500 * time.Millisecond)
			put.Recv(replay.Answer(200, 56), 1)
		}, slow: true, wantPUTRecords: 1},
		{name: "connection-closes", then: func(put *replay.Conn, r *replay.Recorder) {
			r.Advance(time.Second)
			put.Close()
		}, unanswered: true, wantPUTRecords: 1},
		{name: "still-pending", then: func(*replay.Conn, *replay.Recorder) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, audit.Options{TokenAnswerTimeout: 10 * time.Second})
			r := replay.New(t0)
			put := r.Connect(goProc)
			put.Send(replay.TokenPUT(300, goUA))
			r.Advance(time.Second)
			c := r.Connect(goProc)
			c.Send(replay.GetV1("/latest/meta-data/", goUA))
			c.Recv(replay.Answer(200, 3), 64)
			tc.then(put, r)
			h.feed(r)
			var puts []audit.Record
			v1 := 0
			for _, rec := range h.requests() {
				switch rec.Class {
				case audit.ClassTokenPUT:
					puts = append(puts, rec)
				case audit.ClassIMDSv1:
					v1++
					if !rec.AfterUnansweredPUT {
						t.Errorf("IMDSv1 request not marked as a fallback: %+v", rec)
					}
				}
			}
			if v1 != 1 || len(puts) != tc.wantPUTRecords {
				t.Fatalf("v1 %d, PUT records %+v", v1, puts)
			}
			if len(puts) == 1 && (puts[0].Unanswered != tc.unanswered || puts[0].Slow != tc.slow) {
				t.Fatalf("PUT %+v: want unanswered %v slow %v", puts[0], tc.unanswered, tc.slow)
			}
			s := h.a.Snapshot()
			if s.Fallbacks != 1 || s.Requests[audit.ClassIMDSv1] != 1 {
				t.Fatalf("fallbacks %d requests %v", s.Fallbacks, s.Requests)
			}
		})
	}
}

// An answer that arrives is never "unanswered", however late it is (a slow
// proxy): it is recorded as slow, with its delay.
func TestLateTokenAnswerIsSlowNotUnanswered(t *testing.T) {
	for _, delay := range []time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond, 9 * time.Second} {
		h := newHarness(t, audit.Options{})
		r := replay.New(t0)
		put := r.Connect(goProc)
		put.Send(replay.TokenPUT(300, goUA))
		r.Advance(delay)
		put.Recv(replay.Answer(200, 56), 1)
		h.feed(r)
		got := h.requests()
		if len(got) != 1 || got[0].Unanswered || !got[0].Slow || got[0].Status != 200 ||
			got[0].AnsweredAt.Sub(got[0].Time) != delay {
			t.Fatalf("delay %v: %+v", delay, got)
		}
		s := h.a.Snapshot()
		if s.TokenPUTs.Slow != 1 || s.TokenPUTs.Unanswered != 0 || len(s.ReadyHints.UnansweredTokenPUTs) != 0 ||
			len(s.ReadyHints.SlowTokenAnswers) != 1 || s.ReadyHints.SlowTokenAnswers[0].MaxAnswerDelayMillis != delay.Milliseconds() {
			t.Fatalf("delay %v: %+v %+v", delay, s.TokenPUTs, s.ReadyHints)
		}
	}
}

func TestV1AndV2ClientsSideBySide(t *testing.T) {
	// A PUT answered quickly is not taken for a fallback victim just because
	// the same process also sends IMDSv1 at that moment.
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	put := r.Connect(goProc)
	put.Send(replay.TokenPUT(300, goUA))
	v1 := r.Connect(goProc)
	v1.Send(replay.GetV1("/latest/meta-data/", "Go-http-client/1.1"))
	r.Advance(time.Millisecond)
	put.Recv(replay.Answer(200, 56), 1)
	v1.Recv(replay.Answer(200, 3), 64)
	h.feed(r)
	for _, rec := range h.requests() {
		if rec.Unanswered || rec.AfterUnansweredPUT || rec.Status != 200 {
			t.Fatalf("%+v", rec)
		}
	}
}

func TestTokenPUTAnswers(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(goProc)
	c.Send("PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n")
	c.Recv(replay.Answer(403, 0), 64)
	c.Send("PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 0\r\n\r\n")
	c.Recv(replay.Answer(400, 0), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 2 || got[0].Class != audit.ClassTokenPUTProxied || got[0].Status != 403 || !got[0].Forwarded ||
		got[1].Class != audit.ClassTokenPUT || got[1].Status != 400 {
		t.Fatalf("%+v", got)
	}
	if got[0].HopLimit != 0 {
		t.Fatalf("hop limit recorded for a refused token PUT: %+v", got[0])
	}
	failed := h.a.Snapshot().ReadyHints.FailedTokenPUTs
	if len(failed) != 2 {
		t.Fatalf("%+v", failed)
	}
}

func TestProbesAreNotIMDSv1(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	c.Send("GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nMetadata: true\r\n\r\n")
	c.Recv(replay.Answer(404, 0), 64)
	c.Send("GET /computeMetadata/v1/instance/id HTTP/1.1\r\nMetadata-Flavor: Google\r\n\r\n")
	c.Recv(replay.Answer(404, 0), 64)
	h.feed(r)
	s := h.a.Snapshot()
	if s.Requests[audit.ClassProbe] != 2 || s.Requests[audit.ClassIMDSv1] != 0 || len(s.ReadyHints.IMDSv1Callers) != 0 {
		t.Fatalf("%+v", s.Requests)
	}
	if got := h.requests(); got[0].Cloud != "azure" || got[1].Cloud != "gcp" {
		t.Fatalf("%+v", got)
	}
}

func TestTruncatedCaptureIsIncomplete(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	req := replay.GetV1("/latest/meta-data/", "curl/8.5.0")
	c.SendSegment(c.SendSeq(), req[:40], uint32(len(req))) // the capture kept 40 bytes
	c.Recv(replay.Answer(200, 3), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 1 || got[0].Class != audit.ClassIncomplete || !got[0].Incomplete || got[0].Status != 200 {
		t.Fatalf("%+v", got)
	}
	if s := h.a.Snapshot(); s.ReadyHints.Complete || s.ReadyHints.IncompleteRequests != 1 {
		t.Fatalf("%+v", s.ReadyHints)
	}
}

func TestAnswerFlushesPartialRequest(t *testing.T) {
	// The last segment of the request was lost: the answer proves the
	// request is over, so it is reported (incomplete) and paired.
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	req := replay.GetV2("/latest/meta-data/", "curl/8.5.0")
	c.SendPieces(req[:len(req)-10], 200)
	c.Recv(replay.Answer(200, 3), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 1 || got[0].Class != audit.ClassIMDSv2 || !got[0].Incomplete || got[0].Status != 200 {
		t.Fatalf("%+v", got)
	}
}

func TestLostEvents(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	r.Lost(7)
	r.Lost(0)
	r.Lost(3)
	h.feed(r)
	if len(h.records) != 2 || h.records[0].Type != audit.RecordLost || h.records[0].Lost != 7 {
		t.Fatalf("%+v", h.records)
	}
	s := h.a.Snapshot()
	if s.LostEvents != 10 || s.ReadyHints.LostEvents != 10 || s.ReadyHints.Complete || s.Events["lost"] != 3 {
		t.Fatalf("%+v", s)
	}
}

func TestUnpairedAnswer(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Preexisting(curlProc)
	c.Recv(replay.Answer(200, 3), 64)
	h.feed(r)
	if s := h.a.Snapshot(); s.UnpairedAnswers != 1 || len(h.records) != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	h := newHarness(t, audit.Options{IdleTimeout: time.Minute})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8.5.0"))
	c.Send("GET /latest/meta-da") // never finished
	h.feed(r)
	h.tick(t0.Add(2 * time.Minute))
	got := h.requests()
	if len(got) != 2 || got[0].Status != 0 || got[1].Class != audit.ClassIncomplete {
		t.Fatalf("%+v", got)
	}
}

// A request pipelined behind one with a chunked body, in the same write, is seen and
// paired with its answer (issue: it was lost, its answer unpaired).
func TestPipelinedBehindChunkedRequest(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	c := r.Connect(curlProc)
	post := "POST /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n0\r\n\r\n"
	c.Send(post + replay.GetV1("/latest/meta-data/instance-id", "curl/8.5.0"))
	c.Recv(replay.Answer(405, 0)+replay.Answer(200, 19), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 2 || got[0].Method != "POST" || got[0].Status != 405 || got[1].Class != audit.ClassIMDSv1 ||
		got[1].Status != 200 {
		t.Fatalf("%+v", got)
	}
	if s := h.a.Snapshot(); s.UnpairedAnswers != 0 || s.Requests[audit.ClassIMDSv1] != 1 {
		t.Fatalf("unpaired %d, requests %v", s.UnpairedAnswers, s.Requests)
	}
}

// Every request the agent sees is counted in exactly one class, and a class that says
// "not seen whole" comes with the Incomplete flag: garbage where a request must begin (a
// connection seen from its start) is "other", a lower-case method is classified like its
// upper-case self (fail-safe), a header with a space before its colon leaves the request
// unclassified and flagged.
func TestEveryRequestCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, send string
		class      audit.Class
		incomplete bool
	}{
		{"garbage", "\x16\x03\x01\x02\x00 not http at all\r\n\r\n", audit.ClassOther, false},
		{"garbage-no-terminator", "hello there", audit.ClassOther, false},
		{"lower-case-get", "get /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", audit.ClassIMDSv1, false},
		{"lower-case-put", "put /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n", audit.ClassTokenPUT, false},
		{"space-before-colon", "GET /latest/meta-data/ HTTP/1.1\r\nHost : 169.254.169.254\r\n\r\n", audit.ClassIncomplete, true},
		{"token-then-space-before-colon", "GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: " + replay.FakeToken +
			"\r\nHost : x\r\n\r\n", audit.ClassIMDSv2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, audit.Options{})
			r := replay.New(t0)
			c := r.Connect(curlProc)
			c.Send(tc.send)
			c.Recv(replay.Answer(400, 0), 64)
			h.feed(r)
			got := h.requests()
			if len(got) != 1 || got[0].Class != tc.class || got[0].Incomplete != tc.incomplete || got[0].Status != 400 {
				t.Fatalf("%+v", got)
			}
			s := h.a.Snapshot()
			var total uint64
			for _, n := range s.Requests {
				total += n
			}
			if total != 1 || s.Requests[tc.class] != 1 || s.UnpairedAnswers != 0 {
				t.Fatalf("requests %v, unpaired %d", s.Requests, s.UnpairedAnswers)
			}
		})
	}
}

// A tokenless request that IMDS answered with 2xx is IMDSv1 by the answer, whatever it looked
// like: a request line the parser refused, a dot-segment path under another cloud's prefix.
func TestAnsweredWithoutATokenIsIMDSv1(t *testing.T) {
	for _, send := range []string{
		"GET  /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /latest/meta-data/ HTTP/1.1 \r\nHost: x\r\n\r\n",
		"GET /metadata/v1/../../latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /computeMetadata/%2e%2e/latest/user-data HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		h := newHarness(t, audit.Options{})
		r := replay.New(t0)
		c := r.Connect(curlProc)
		c.Send(send)
		c.Recv(replay.Answer(200, 9), 64)
		h.feed(r)
		if got := h.requests(); len(got) != 1 || got[0].Class != audit.ClassIMDSv1 {
			t.Errorf("%q: %+v", send, got)
		}
	}
}

// A request still waiting for its answer when the summary is made is in Pending, by class.
func TestPendingRequestsAreInTheSummary(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	r.Connect(curlProc).Send(replay.GetV1("/latest/meta-data/instance-id", "curl/8.5.0"))
	h.feed(r)
	if s := h.a.Snapshot(); s.Pending[audit.ClassIMDSv1] != 1 || s.Requests[audit.ClassIMDSv1] != 0 {
		t.Fatalf("pending %v requests %v", s.Pending, s.Requests)
	}
}
