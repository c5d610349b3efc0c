package imdstest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  error
	}{
		{"1", 1, nil}, {"300", 300, nil}, {"21600", 21600, nil}, {"00060", 60, nil},
		{"", 0, errTTLMissing}, {"0", 0, errTTLRange}, {"21601", 0, errTTLRange},
		{"99999999999", 0, errTTLRange}, {"00000001000", 1000, nil}, {"99999999999x", 0, errTTLSyntax},
		{"21600000000000000000000000000000", 0, errTTLRange}, {"-1", 0, errTTLSyntax}, {"+1", 0, errTTLSyntax},
		{" 1", 0, errTTLSyntax}, {"1 ", 0, errTTLSyntax}, {"1e3", 0, errTTLSyntax}, {"0x10", 0, errTTLSyntax},
		{"６０", 0, errTTLSyntax}, {"６", 0, errTTLSyntax},
	} {
		got, err := parseTTL(tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		assert.ErrorIs(t, err, tc.err, "%q", tc.in)
	}
}

// FuzzParseTTL checks parseTTL against strconv: it accepts exactly the plain decimal numbers
// 1..21600.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"", "1", "21600", "21601", "0", "-1", "+5", "1.5", "0060", " 7", "९"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTTL(s)
		n, convErr := strconv.ParseUint(s, 10, 32)
		plain := convErr == nil && len(s) > 0 && s[0] != '+'
		if plain && n >= 1 && n <= MaxTokenTTL {
			if err != nil || got != int(n) {
				t.Fatalf("parseTTL(%q) = %d, %v; want %d", s, got, err, n)
			}
			return
		}
		if err == nil {
			t.Fatalf("parseTTL(%q) = %d, want an error", s, got)
		}
	})
}

// FuzzToken checks that only issued, unexpired tokens are accepted and that no input panics.
func FuzzToken(f *testing.F) {
	var tt tokenTable
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	issued := tt.issue(now, time.Minute)
	f.Add(issued)
	f.Add(issued[:tokenLen-3] + "A==")
	f.Add("")
	f.Add("AQAEAB==")
	f.Fuzz(func(t *testing.T, s string) {
		ok := tt.valid(s, now)
		if ok != (s == issued) {
			t.Fatalf("valid(%q) = %v", s, ok)
		}
		if s != issued && wellFormedToken(s) && len(s) != tokenLen {
			t.Fatalf("wellFormedToken(%q) with length %d", s, len(s))
		}
	})
}

// FuzzServeHTTP sends arbitrary methods, paths and protocol headers through the handler: it
// must never panic and must answer only with statuses IMDS uses.
func FuzzServeHTTP(f *testing.F) {
	s := NewUnstartedServer(Config{RoleName: "r", TagsEnabled: true, Tags: map[string]string{"a": "b"},
		UserData: []byte("x"), SpotActionAfter: time.Nanosecond})
	f.Cleanup(s.Close)
	f.Add("GET", "/latest/meta-data/", "", "", false)
	f.Add("PUT", "/latest/api/token", "60", "", false)
	f.Add("PUT", "/2021-03-23/api/token", "60", "", true)
	f.Add("GET", "/latest/meta-data/iam/security-credentials/r", "", "AAAA", false)
	f.Add("GET", "/latest//../meta-data/tags/instance/a/", "", "", false)
	f.Add("OPTIONS", "/latest/api/token", "", "", false)
	f.Add("HEAD", "/latest/dynamic/instance-identity/document", "", "", false)
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true}
	f.Fuzz(func(t *testing.T, method, path, ttl, tok string, forwarded bool) {
		if method == "" || !validToken(method) {
			return
		}
		u, err := url.Parse("http://169.254.169.254" + path)
		if err != nil || u.Path == "" {
			return
		}
		req := &http.Request{Method: method, URL: u, Header: http.Header{}, Host: u.Host,
			RemoteAddr: "192.0.2.1:1234", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		if ttl != "" {
			req.Header.Set(HeaderTokenTTL, ttl)
		}
		if tok != "" {
			req.Header.Set(HeaderToken, tok)
		}
		if forwarded {
			req.Header.Set("X-Forwarded-For", "192.0.2.9")
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		require.True(t, allowed[rec.Code], "%s %q answered %d", method, path, rec.Code)
	})
}

// validToken reports whether m is an HTTP token (method syntax), as net/http requires.
func validToken(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '/' || c == ':' || c == '"' {
			return false
		}
	}
	return true
}
