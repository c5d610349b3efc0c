package imdstest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// BenchmarkGetLoopback is one IMDSv2 GET over keep-alive loopback HTTP, client included.
func BenchmarkGetLoopback(b *testing.B) {
	s := newServer(b, imdstest.Config{})
	tok := token(b, s, "21600")
	req, err := http.NewRequest(http.MethodGet, s.URL()+"/latest/meta-data/instance-id", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set(imdstest.HeaderToken, tok)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkHandler is the emulator's own cost per request, without the network.
func BenchmarkHandler(b *testing.B) {
	s := newServer(b, imdstest.Config{RoleName: "r"})
	tok := token(b, s, "21600")
	h := s.Handler()
	req := httptest.NewRequest(http.MethodGet, "/latest/meta-data/iam/security-credentials/r", nil)
	req.Header.Set(imdstest.HeaderToken, tok)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		s.ResetRequests()
	}
}

// BenchmarkTokenPUT includes setting and restoring the hop limit on the socket.
func BenchmarkTokenPUT(b *testing.B) {
	s := newServer(b, imdstest.Config{HopLimit: 2})
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPut, s.URL()+"/latest/api/token", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set(imdstest.HeaderTokenTTL, "60")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}
