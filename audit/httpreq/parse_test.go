package httpreq

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
		err  error
	}{
		{
			name: "v1 get",
			in:   "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
			want: Request{Method: "GET", Target: "/latest/meta-data/instance-id", Path: "/latest/meta-data/instance-id",
				Proto: "HTTP/1.1", Host: "169.254.169.254", UserAgent: "curl/7.88.1", TokenTTL: -1, ContentLength: -1, Complete: true,
				Headers: "Host, User-Agent, Accept", Accept: "*/*"},
		},
		{
			name: "v2 get any case, token value dropped",
			in:   "GET /latest/meta-data/?a=b HTTP/1.1\r\nx-AWS-ec2-METADATA-token:  AQAEAsecretsecret==\r\n\r\n",
			want: Request{Method: "GET", Target: "/latest/meta-data/?a=b", Path: "/latest/meta-data/", Proto: "HTTP/1.1",
				HasToken: true, TokenTTL: -1, ContentLength: -1, Complete: true, Headers: "x-AWS-ec2-METADATA-token"},
		},
		{
			name: "token put",
			in:   "PUT /latest/api/token HTTP/1.1\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600\r\nContent-Length: 0\r\n\r\n",
			want: Request{Method: "PUT", Target: "/latest/api/token", Path: "/latest/api/token", Proto: "HTTP/1.1",
				TokenTTL: 21600, ContentLength: 0, Complete: true, Headers: "X-Aws-Ec2-Metadata-Token-Ttl-Seconds, Content-Length"},
		},
		{
			name: "bad ttl and proxy",
			in:   "PUT /latest/api/token HTTP/1.0\nX-aws-ec2-metadata-token-ttl-seconds: lots\nX-Forwarded-For: 10.0.0.1\n\n",
			want: Request{Method: "PUT", Target: "/latest/api/token", Path: "/latest/api/token", Proto: "HTTP/1.0",
				TokenTTL: -2, Forwarded: true, ContentLength: -1, Complete: true,
				Headers: "X-aws-ec2-metadata-token-ttl-seconds, X-Forwarded-For"},
		},
		{
			name: "absolute form",
			in:   "GET http://169.254.169.254/latest/user-data HTTP/1.1\r\n\r\n",
			want: Request{Method: "GET", Target: "http://169.254.169.254/latest/user-data", Path: "/latest/user-data",
				Proto: "HTTP/1.1", TokenTTL: -1, ContentLength: -1, Complete: true},
		},
		{
			name: "truncated keeps complete lines only",
			in:   "GET /latest/meta-data/ HTTP/1.1\r\nUser-Agent: a\r\nX-aws-ec2-metadata-tok",
			want: Request{Method: "GET", Target: "/latest/meta-data/", Path: "/latest/meta-data/", Proto: "HTTP/1.1",
				UserAgent: "a", TokenTTL: -1, ContentLength: -1, Headers: "User-Agent"},
		},
		{
			name: "chunked and conflicting lengths",
			in:   "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
			want: Request{Method: "POST", Target: "/x", Path: "/x", Proto: "HTTP/1.1", TokenTTL: -1, ContentLength: -1,
				Chunked: true, Complete: true, Headers: "Content-Length, Content-Length, Transfer-Encoding"},
		},
		{name: "empty", in: "", err: ErrIncomplete},
		{name: "half line", in: "GET /latest", err: ErrIncomplete},
		{name: "no proto", in: "GET /\r\n\r\n", err: ErrMalformed},
		{name: "http2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: ErrMalformed},
		{name: "lower method", in: "get / HTTP/1.1\r\n\r\n", want: Request{}, err: nil},
		{name: "binary", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", err: ErrMalformed},
		{name: "nul in header", in: "GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", err: ErrMalformed},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", err: ErrMalformed},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost\r\n\r\n", err: ErrMalformed},
		{name: "huge block", in: "GET / HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", MaxHeadBytes/6+1), err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.in))
			if tt.name == "lower method" {
				// "get" parses; whether IMDS would take it is not known, so a tokenless one
				// counts as IMDSv1 (fail-safe: it blocks READY).
				if err != nil || got.Method != "get" || Classify(&got).Class != ClassIMDSv1 {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The header shape keeps names as sent, in order, bounded; Connection and Accept keep their values.
func TestParseRequestShape(t *testing.T) {
	got, err := ParseRequest([]byte("PUT /latest/api/token HTTP/1.1\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\n" +
		"Host: 169.254.169.254\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"))
	if err != nil || got.Headers != "x-aws-ec2-metadata-token-ttl-seconds, Host, Connection, Content-Length" ||
		got.Connection != "keep-alive" || got.Accept != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
	many, err := ParseRequest([]byte("GET / HTTP/1.1\r\n" + strings.Repeat("X-Long-Header-Name: v\r\n", 100) +
		"Accept: " + strings.Repeat("a", 100) + "\r\n\r\n"))
	if err != nil || len(many.Headers) > MaxShapeBytes || len(many.Headers) < MaxShapeBytes-40 ||
		strings.HasSuffix(many.Headers, ", ") || len(many.Accept) != MaxShapeValueBytes {
		t.Fatalf("shape of a long block: %d bytes %q, accept %d bytes, %v", len(many.Headers), many.Headers, len(many.Accept), err)
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		in     string
		status int
		cl     int64
		ttl    int
		err    error
	}{
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 56\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600\r\n\r\n", status: 200, cl: 56, ttl: 21600},
		{in: "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status: 401, cl: 0, ttl: -1},
		{in: "HTTP/1.0 404\r\n\r\n", status: 404, cl: -1, ttl: -1},
		{in: "HTTP/1.1 200 OK\r\nContent-Ty", status: 200, cl: -1, ttl: -1},
		{in: "HTTP/1.1 403 Forbid", status: 403, cl: -1, ttl: -1},
		{in: "HTTP/1.1 20", err: ErrIncomplete},
		{in: "HTTP/1.1 2x0 OK\r\n\r\n", err: ErrMalformed},
		{in: "HTTP/1.1 099 OK\r\n\r\n", err: ErrMalformed},
		{in: "HTTP/1.1 2000 OK\r\n\r\n", err: ErrMalformed},
		{in: "SSH-2.0-OpenSSH\r\n\r\n", err: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := ParseResponse([]byte(tt.in))
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: err = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && (got.Status != tt.status || got.ContentLength != tt.cl || got.TokenTTL != tt.ttl) {
			t.Errorf("%q: got %+v", tt.in, got)
		}
	}
}

func TestLooksLikeStart(t *testing.T) {
	for in, want := range map[string]bool{"G": true, "GET": true, "GET /": true, "PUT /latest": true,
		"": false, " GET": false, "get /": true, "get": false, "more": false, "more text": false, "\x00": false,
		"ABCDEFGHIJKLMNOPQ": false} {
		if got := LooksLikeRequestStart([]byte(in)); got != want {
			t.Errorf("LooksLikeRequestStart(%q) = %v", in, got)
		}
	}
	for in, want := range map[string]bool{"H": true, "HTTP/1.1 200": true, "HTTP": true, "": false, "HTTX/": false} {
		if got := LooksLikeResponseStart([]byte(in)); got != want {
			t.Errorf("LooksLikeResponseStart(%q) = %v", in, got)
		}
	}
}

// FuzzParseRequest checks that no input panics, that the token value never
// ends up in any parsed field, and that results are self-consistent.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: SECRETTOKEN\r\n\r\n",
		"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n",
		"GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nMetadata: true\r\n\r\n",
		"GET /computeMetadata/v1/ HTTP/1.1\r\nMetadata-Flavor: Google\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n", "\x00\x01\x02", "GET / HTTP/1.1\r\n\tfolded\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2*MaxHeadBytes {
			return
		}
		r, err := ParseRequest(b)
		c := Classify(&r)
		if err == nil && r.Method == "" {
			t.Fatalf("no error and no method for %q", b)
		}
		if c.Class == ClassIMDSv1 && (r.HasToken || !r.Complete) {
			t.Fatalf("v1 with token or incomplete: %+v", r)
		}
		if leaked(b, r) {
			t.Fatalf("token value kept: %+v", r)
		}
		_, _ = ParseResponse(b)
	})
}

// leaked reports whether a field of r holds "SECRETTOKEN" although the input
// has it only as the value of a token header.
func leaked(in []byte, r Request) bool {
	const secret = "SECRETTOKEN"
	var elsewhere bool
	for _, line := range bytes.Split(in, []byte("\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(name), HeaderToken) {
			continue
		}
		elsewhere = elsewhere || bytes.Contains(line, []byte(secret))
	}
	if elsewhere {
		return false
	}
	for _, s := range []string{r.Method, r.Target, r.Path, r.Proto, r.Host, r.UserAgent, r.Metadata, r.MetadataFlavor} {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

func TestCutTokenHeaderStillCounts(t *testing.T) {
	r, err := ParseRequest([]byte("GET / HTTP/1.1\r\nUser-Agent: x\r\nX-aws-ec2-metadata-token: AQAE"))
	if err != nil || !r.HasToken || r.Complete || Classify(&r).Class != ClassIMDSv2 {
		t.Fatalf("%+v %v", r, err)
	}
	r, _ = ParseRequest([]byte("GET / HTTP/1.1\r\nX-aws-ec2-metadata-tok"))
	if r.HasToken {
		t.Fatal("a cut header name counted as the token header")
	}
}

// bigHead returns a request head of exactly size bytes: the request line, filler header fields
// (tracing headers, in lines of about line bytes each) and, when extra is not empty, that field
// last, or first when first is set.
func bigHead(size, line int, extra string, first bool) []byte {
	const start = "GET /latest/meta-data/iam/security-credentials/role HTTP/1.1\r\nHost: 169.254.169.254\r\n"
	var b strings.Builder
	b.WriteString(start)
	if extra != "" && first {
		b.WriteString(extra + "\r\n")
	}
	end := len("\r\n")
	if extra != "" && !first {
		end += len(extra) + 2
	}
	for i := 0; b.Len() < size-end; i++ {
		// "baggage-N: " + value + CRLF, the last line cut to fit.
		name := fmt.Sprintf("baggage-%d: ", i)
		n := min(line, size-end-b.Len()-len(name)-2)
		if n < 1 {
			// Too little room for another field: pad the previous value.
			s := b.String()
			b.Reset()
			b.WriteString(s[:len(s)-2] + strings.Repeat("x", size-end-len(s)) + "\r\n")
			break
		}
		b.WriteString(name + strings.Repeat("v", n) + "\r\n")
	}
	if extra != "" && !first {
		b.WriteString(extra + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// TestLargeHeadBlocks: blocks up to MaxHeadBytes are parsed whole, whatever their lines look
// like (one 60 KiB field, hundreds of short ones), so that the token header is found wherever
// it is, and a tokenless block is IMDSv1, not incomplete.
func TestLargeHeadBlocks(t *testing.T) {
	const token = "X-aws-ec2-metadata-token: AQAEAtoken"
	for _, size := range []int{3 << 10, 20 << 10, 60 << 10, MaxHeadBytes} {
		for _, line := range []int{40, 1000, 70 << 10} {
			for _, tt := range []struct {
				extra string
				first bool
				class Class
			}{
				{"", false, ClassIMDSv1},
				{token, false, ClassIMDSv2},
				{token, true, ClassIMDSv2},
				{"User-Agent: python-requests/2.31", false, ClassIMDSv1},
			} {
				head := bigHead(size, line, tt.extra, tt.first)
				if len(head) != size {
					t.Fatalf("bigHead made %d bytes, want %d", len(head), size)
				}
				r, err := ParseRequest(head)
				if c := Classify(&r); err != nil || !r.Complete || c.Class != tt.class {
					t.Errorf("%d bytes in lines of %d, %q first=%v: %v, complete %v, class %s; want %s",
						size, line, tt.extra, tt.first, err, r.Complete, c.Class, tt.class)
				}
			}
		}
	}
}

// TestOverLargeHeadBlock: beyond MaxHeadBytes the parser refuses the block, and what the
// reassembler hands over instead (the first MaxHeadBytes bytes, no empty line) is classified
// imdsv2 when a token header is in it, incomplete otherwise, never imdsv1.
func TestOverLargeHeadBlock(t *testing.T) {
	const token = "X-aws-ec2-metadata-token: AQAEAtoken"
	if _, err := ParseRequest(bigHead(MaxHeadBytes+1, 100, "", false)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a block of MaxHeadBytes+1: %v, want ErrTooLarge", err)
	}
	for _, tt := range []struct {
		extra string
		first bool
		class Class
	}{
		{"", false, ClassIncomplete},
		{token, true, ClassIMDSv2},
		{token, false, ClassIncomplete}, // the token header is in the part not kept
	} {
		head := bigHead(100<<10, 100, tt.extra, tt.first)[:MaxHeadBytes]
		r, err := ParseRequest(head)
		if c := Classify(&r); err != nil || r.Complete || c.Class != tt.class {
			t.Errorf("first 64 KiB of a 100 KiB block, %q first=%v: %v, complete %v, class %s; want %s",
				tt.extra, tt.first, err, r.Complete, c.Class, tt.class)
		}
	}
}
