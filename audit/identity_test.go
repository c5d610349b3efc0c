package audit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// A caller's identity is a property of the process: cloud-init names itself on its token
// PUT and says python-requests on its GETs; the GETs' caller is cloud-init, and the advice
// follows what it did on the wire.
func TestIdentityIsTheProcess(t *testing.T) {
	ci := replay.Proc{PID: 600, PPID: 1, Comm: "cloud-init"}
	for _, tc := range []struct {
		name      string
		putStatus int // 0: no answer (the connection closes)
		want      string
	}{
		{"put-answered-then-v1", 200, "still sends some requests without one"},
		{"put-unanswered", 0, "raise HttpPutResponseHopLimit to 2"},
		{"put-refused", 403, "were refused (403)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, audit.Options{})
			r := replay.New(t0)
			r.Exec(ci, "/usr/bin/python3", "/usr/bin/python3", "/usr/bin/cloud-init", "init")
			put := r.Connect(ci)
			put.Send(replay.TokenPUT(21600, "Cloud-Init/22.4.2"))
			r.Advance(50 * time.Millisecond)
			if tc.putStatus != 0 {
				put.Recv(replay.Answer(tc.putStatus, 56), 1)
			} else {
				r.Advance(time.Second)
				put.Close()
			}
			get := r.Connect(ci)
			get.Send(replay.GetV1("/2009-04-04/meta-data/instance-id", "python-requests/2.28.1"))
			get.Recv(replay.Answer(200, 19), 64)
			h.feed(r)
			hints := h.a.Snapshot().ReadyHints
			if len(hints.IMDSv1Callers) != 1 {
				t.Fatalf("%+v", hints)
			}
			v1 := hints.IMDSv1Callers[0]
			if v1.SDK == nil || v1.SDK.Product != "cloud-init" || !strings.Contains(v1.Advice, tc.want) {
				t.Fatalf("identity %+v, advice %q", v1.SDK, v1.Advice)
			}
		})
	}
}

// A process that never asked for a token is advised by what it is: the JavaScript SDK v2's
// MetadataService.request never sends one (upgrading does not help), cloud-init crawls
// without one when it did not identify the platform as AWS, an SDK that could use IMDSv2 skipped
// it, a script must fetch one.
func TestAdviceWhenNoTokenWasAsked(t *testing.T) {
	for _, tc := range []struct{ ua, want string }{
		{"aws-sdk-nodejs/2.1692.0 linux/v20.20.2", "MetadataService.request"},
		{"Cloud-Init/22.4.2", "did not identify this machine as AWS"},
		{"Cloud-Init/19.3", "upgrade cloud-init from 19.3 to 19.4 or later"},
		{"Boto3/1.34.0 md/Botocore#1.34.0 Botocore/1.34.0", "it never asked for a token, although"},
		{"aws-sdk-go/1.25.0 (go1.13; linux; amd64)", "upgrade AWS SDK for Go v1 from 1.25.0 to 1.47.2 or later"},
		{"curl/8.5.0", "a script reads metadata without a token"},
	} {
		h := newHarness(t, audit.Options{})
		r := replay.New(t0)
		c := r.Connect(curlProc)
		c.Send(replay.GetV1("/latest/meta-data/iam/security-credentials/", tc.ua))
		c.Recv(replay.Answer(200, 9), 64)
		h.feed(r)
		v1 := h.a.Snapshot().ReadyHints.IMDSv1Callers
		if len(v1) != 1 || !strings.Contains(v1[0].Advice, tc.want) {
			t.Errorf("%s: %+v", tc.ua, v1)
		}
	}
}

// The callers table names the process too: cloud-init's crawl GETs, which say python-requests
// and carry its token, are listed as cloud-init's, with the User-Agent they sent.
func TestCallersCarryTheProcessIdentity(t *testing.T) {
	ci := replay.Proc{PID: 610, PPID: 1, Comm: "cloud-init"}
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	r.Exec(ci, "/usr/bin/python3", "/usr/bin/python3", "/usr/bin/cloud-init", "init")
	put := r.Connect(ci)
	put.Send(replay.TokenPUT(21600, "Cloud-Init/22.4.2"))
	put.Recv(replay.Answer(200, 56), 1)
	get := r.Connect(ci)
	get.Send(replay.GetV2("/2021-03-23/meta-data/instance-id", "python-requests/2.28.1"))
	get.Recv(replay.Answer(200, 19), 64)
	h.feed(r)
	callers := h.a.Snapshot().Callers
	if len(callers) != 2 {
		t.Fatalf("%d callers, want the PUT's and the GET's: %+v", len(callers), callers)
	}
	for _, c := range callers {
		if c.SDK == nil || c.SDK.Product != "cloud-init" || c.SDK.Version != "22.4.2" {
			t.Errorf("%s caller: identity %+v, want cloud-init 22.4.2", c.Class, c.SDK)
		}
		if c.Class == audit.ClassIMDSv2 && c.UserAgent != "python-requests/2.28.1" {
			t.Errorf("IMDSv2 caller: user agent %q, want what it sent", c.UserAgent)
		}
	}
}

// Advice for the JavaScript SDK v2 follows the API its requests came from, not only its version:
// a tokenless GET with its User-Agent is MetadataService.request (any release), or, before
// 2.575.0 and on the credentials path, EC2MetadataCredentials.
func TestJavaScriptV2AdvicePerAPI(t *testing.T) {
	const creds = "/latest/meta-data/iam/security-credentials/"
	for _, tc := range []struct {
		version, path string
		want, not     []string
	}{
		{"2.1693.0", "/latest/meta-data/instance-id", []string{"MetadataService.request", "upgrading does not help", "fetchMetadataToken"}, []string{"upgrade aws-sdk to"}},
		{"2.600.0", creds, []string{"MetadataService.request", "upgrading does not help"}, []string{"upgrade aws-sdk to"}},
		{"2.574.0", creds, []string{"EC2MetadataCredentials fetches one from 2.575.0", "upgrade aws-sdk to 2.575.0"}, nil},
		{"2.574.0", "/latest/meta-data/instance-id", []string{"upgrading alone does not help", "fetchMetadataToken"}, []string{"EC2MetadataCredentials fetches"}},
	} {
		h := newHarness(t, audit.Options{})
		r := replay.New(t0)
		c := r.Connect(curlProc)
		c.Send(replay.GetV1(tc.path, "aws-sdk-nodejs/"+tc.version+" linux/v20.20.2"))
		c.Recv(replay.Answer(200, 9), 64)
		h.feed(r)
		v1 := h.a.Snapshot().ReadyHints.IMDSv1Callers
		if len(v1) != 1 {
			t.Fatalf("%s %s: %+v", tc.version, tc.path, v1)
		}
		for _, w := range tc.want {
			if !strings.Contains(v1[0].Advice, w) {
				t.Errorf("%s %s: advice lacks %q: %s", tc.version, tc.path, w, v1[0].Advice)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(v1[0].Advice, n) {
				t.Errorf("%s %s: advice says %q: %s", tc.version, tc.path, n, v1[0].Advice)
			}
		}
	}
}

// A request without a User-Agent is named by its header shape and executable, and the process
// by the most specific of its requests: the JavaScript SDK v3's token PUT names the process whose
// fallback GETs look like Node's http, and the advice says what it did (asked, got no answer).
func TestIdentityByHeaderShape(t *testing.T) {
	node := replay.Proc{PID: 700, PPID: 1, Comm: "node"}
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	r.Exec(node, "/usr/bin/node", "node", "app.js")
	put := r.Connect(node)
	put.Send("PUT /latest/api/token HTTP/1.1\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nHost: 169.254.169.254\r\n" +
		"Connection: keep-alive\r\nContent-Length: 0\r\n\r\n")
	r.Advance(time.Second)
	put.Close()
	get := r.Connect(node)
	get.Send("GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: keep-alive\r\n\r\n")
	get.Recv(replay.Answer(200, 9), 64)
	odd := replay.Proc{PID: 701, PPID: 1, Comm: "agent"}
	r.Exec(odd, "/opt/agent/bin/agent", "agent")
	o := r.Connect(odd)
	o.Send("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-Odd: 1\r\n\r\n")
	o.Recv(replay.Answer(200, 9), 64)
	h.feed(r)
	for _, rec := range h.requests() {
		if rec.SDK == nil || rec.SDK.Headers == "" {
			t.Errorf("record without its header shape: %+v", rec)
		}
	}
	snap := h.a.Snapshot()
	for _, c := range snap.Callers {
		if c.Process.PID == node.PID && (c.SDK == nil || c.SDK.Product != "aws-sdk-js-v3") {
			t.Errorf("caller %s of the v3 process identified as %+v", c.Class, c.SDK)
		}
	}
	v1 := snap.ReadyHints.IMDSv1Callers
	if len(v1) != 2 {
		t.Fatalf("%+v", v1)
	}
	for _, hint := range v1 {
		switch hint.Process.PID {
		case node.PID:
			if hint.SDK == nil || hint.SDK.Product != "aws-sdk-js-v3" || !strings.Contains(hint.Advice, "raise HttpPutResponseHopLimit") ||
				strings.Contains(hint.Advice, "fetch an IMDSv2 token first") {
				t.Errorf("v3 fallback: %+v, advice %q", hint.SDK, hint.Advice)
			}
		case odd.PID:
			if hint.SDK == nil || hint.SDK.Product != "none" || hint.SDK.Headers != "GET Host, X-Odd" {
				t.Errorf("unknown client: %+v", hint.SDK)
			}
		}
	}
}
