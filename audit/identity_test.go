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
