package sdk

import (
	"slices"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit/httpreq"
	"github.com/imdsv2/imdsv2/audit/sdk/sdktest"
)

func shapeOf(t *testing.T, head string) (Shape, string) {
	t.Helper()
	r, err := httpreq.ParseRequest([]byte(head))
	if err != nil || !r.Complete {
		t.Fatalf("capture head does not parse (%v): %q", err, head)
	}
	return Shape{Method: r.Method, Proto: r.Proto, Headers: r.Headers, TokenTTL: r.TokenTTL, Connection: r.Connection, Accept: r.Accept}, r.UserAgent
}

func loadCaptures(t *testing.T) []sdktest.Capture {
	t.Helper()
	cs, err := sdktest.Load("testdata/captures")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Every stored capture of a real client identifies as that client: each request as the client
// or as the HTTP library under it, the process (the most specific of its requests) as the
// client itself. No fingerprint of another client matches any of its requests.
func TestFingerprintsAgainstCaptures(t *testing.T) {
	used := map[string]bool{}
	for _, c := range loadCaptures(t) {
		t.Run(c.FileName(), func(t *testing.T) {
			from := Sender{Exe: c.Exe}
			var process *Info
			for _, head := range c.Requests {
				s, ua := shapeOf(t, head)
				info := IdentifyRequest(ua, s, from)
				if info.Product == "none" || info.Product == "unknown" {
					t.Errorf("request not identified (%s): %q", info.Headers, head)
					continue
				}
				if !identifies(info, c.Client) && info.Kind != KindLibrary {
					t.Errorf("request identified as %s (%s), want %s: %q", info.Product, info.Fingerprint, c.Client, head)
				}
				if MoreSpecific(&info, process) {
					process = &info
				}
				for i := range fingerprints {
					f := &fingerprints[i]
					if !f.matches(s, from) {
						continue
					}
					used[f.id] = true
					if !slices.Contains(f.clients, c.Client) && f.kind != KindLibrary {
						t.Errorf("fingerprint %s (of %v) matches a request of %s: %q", f.id, f.clients, c.Client, head)
					}
				}
			}
			if process == nil || !identifies(*process, c.Client) {
				t.Errorf("process identified as %+v, want %s", process, c.Client)
			}
		})
	}
	for _, f := range fingerprints {
		if !used[f.id] {
			t.Errorf("fingerprint %s matches no stored capture: capture the client it stands for", f.id)
		}
	}
}

// identifies says whether info names client: by product, or by a fingerprint standing for it.
func identifies(info Info, client string) bool {
	if info.Product == client {
		return true
	}
	for _, f := range fingerprints {
		if f.id == info.Fingerprint && slices.Contains(f.clients, client) {
			return true
		}
	}
	return false
}

// The same shape from another executable is not the JavaScript SDK, and a shape no client
// sends is reported as such, with the shape.
func TestFingerprintUnknownShape(t *testing.T) {
	js := Shape{Method: "PUT", Proto: "HTTP/1.1", Headers: jsTTL, TokenTTL: 21600, Connection: "keep-alive"}
	if got := IdentifyRequest("", js, Sender{Exe: "/usr/bin/node"}); got.Product != "aws-sdk-js-v3" {
		t.Errorf("node with the v3 shape: %+v", got)
	}
	if got := IdentifyRequest("", js, Sender{Comm: "node"}); got.Product != "aws-sdk-js-v3" {
		t.Errorf("comm node with the v3 shape: %+v", got)
	}
	for _, tc := range []struct {
		s    Shape
		from Sender
	}{
		{js, Sender{Exe: "/usr/local/bin/my-agent", Comm: "my-agent"}},
		{Shape{Method: "PUT", Proto: "HTTP/1.1", Headers: jsTTL, TokenTTL: 300, Connection: "keep-alive"}, Sender{Exe: "/usr/bin/node"}},
		{Shape{Method: "PUT", Proto: "HTTP/1.0", Headers: jsTTL, TokenTTL: 21600, Connection: "keep-alive"}, Sender{Exe: "/usr/bin/node"}},
		{Shape{Method: "GET", Headers: "host, connection", TokenTTL: -1, Connection: "close"}, Sender{Exe: "/usr/bin/node"}},
		{Shape{Method: "GET", Headers: "Host, Accept", TokenTTL: -1, Accept: "*/*"}, Sender{}},
	} {
		got := IdentifyRequest("", tc.s, tc.from)
		if got.Product != "none" || got.Kind != KindUnknown || got.Headers != tc.s.String() || got.Headers == "" {
			t.Errorf("%s from %+v: %+v, want none with the shape", tc.s, tc.from, got)
		}
		if names := tc.from.names(); len(names) > 0 && !strings.HasSuffix(got.Name, "sent by "+names[0]) {
			t.Errorf("unknown client's name %q does not say what sent it (%s)", got.Name, names[0])
		}
		if !strings.Contains(got.Advice, "header shape") {
			t.Errorf("advice %q does not point at the header shape", got.Advice)
		}
	}
	// A User-Agent always decides.
	if got := IdentifyRequest("curl/7.88.1", js, Sender{Exe: "/usr/bin/node"}); got.Product != "curl" || got.Headers != "" {
		t.Errorf("with a User-Agent: %+v", got)
	}
}

func TestShapeString(t *testing.T) {
	s := Shape{Method: "PUT", Headers: "x-aws-ec2-metadata-token-ttl-seconds, Host, Connection, Accept", TokenTTL: 21600,
		Connection: "keep-alive", Accept: "*/*"}
	if got, want := s.String(), "PUT x-aws-ec2-metadata-token-ttl-seconds=21600, Host, Connection=keep-alive, Accept=*/*"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (Shape{Method: "GET", Proto: "HTTP/1.0"}).String(); got != "GET HTTP/1.0" {
		t.Errorf("no headers: %q", got)
	}
}
