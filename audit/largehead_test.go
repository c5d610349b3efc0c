package audit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// withTracing returns a request head with filler tracing headers (about 1000 bytes each)
// inserted after its request line, so that the block is about size bytes.
func withTracing(head string, size int) string {
	line, rest, _ := strings.Cut(head, "\r\n")
	var b strings.Builder
	b.WriteString(line + "\r\n")
	for i := 0; b.Len()+len(rest) < size; i++ {
		fmt.Fprintf(&b, "baggage-%d: %s\r\n", i, strings.Repeat("v", 1000))
	}
	return b.String() + rest
}

// TestLargeHeadBlocks: requests with header blocks of up to 60 KiB, sent as the bpf agent
// reports them (2 KiB records) or in many small segments, are imdsv1/imdsv2 as sent; over
// 64 KiB they are incomplete unless the token header was in what was rebuilt.
func TestLargeHeadBlocks(t *testing.T) {
	const path = "/latest/meta-data/iam/security-credentials/role"
	for _, tt := range []struct {
		name       string
		head       string
		piece      int
		class      audit.Class
		incomplete bool
	}{
		{"v1 3 KiB in records", withTracing(replay.GetV1(path, "curl/8"), 3<<10), 2048, audit.ClassIMDSv1, false},
		{"v1 60 KiB in records", withTracing(replay.GetV1(path, "curl/8"), 60<<10), 2048, audit.ClassIMDSv1, false},
		{"v1 60 KiB in small writes", withTracing(replay.GetV1(path, "curl/8"), 60<<10), 97, audit.ClassIMDSv1, false},
		{"v2 60 KiB in records", withTracing(replay.GetV2(path, "curl/8"), 60<<10), 2048, audit.ClassIMDSv2, false},
		{"v1 100 KiB", withTracing(replay.GetV1(path, "curl/8"), 100<<10), 2048, audit.ClassIncomplete, true},
		{"v2 100 KiB, token last", withTracing(replay.GetV2(path, "curl/8"), 100<<10), 2048, audit.ClassIncomplete, true},
		{"v2 100 KiB, token first", strings.Replace(withTracing(replay.GetV1(path, "curl/8"), 100<<10), "\r\n",
			"\r\nX-aws-ec2-metadata-token: "+replay.FakeToken+"\r\n", 1), 2048, audit.ClassIMDSv2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, audit.Options{})
			r := replay.New(t0)
			c := r.Connect(curlProc)
			c.SendPieces(tt.head, tt.piece)
			r.Advance(time.Millisecond)
			c.Recv(replay.Answer(200, 10), 64)
			c.Close()
			h.feed(r)
			got := h.requests()
			if len(got) != 1 {
				t.Fatalf("%d records, want 1: %+v", len(got), got)
			}
			g := got[0]
			if g.Class != tt.class || g.Incomplete != tt.incomplete || g.Status != 200 || g.Path != path {
				t.Errorf("record: class %s, incomplete %v, status %d, path %q; want %s, incomplete %v, 200, %s",
					g.Class, g.Incomplete, g.Status, g.Path, tt.class, tt.incomplete, path)
			}
			noToken(t, "records", jsonOf(t, got))
		})
	}
}
