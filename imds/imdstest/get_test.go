package imdstest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestGetAuthorization(t *testing.T) {
	const path = "/latest/meta-data/instance-id"
	tests := []struct {
		name     string
		cfg      imdstest.Config
		tok      func(t *testing.T, s *imdstest.Server) []string // headers
		status   int
		body     string
		imdsv1   bool
		tokenHdr bool
	}{
		{
			name: "optional, valid token",
			tok: func(t *testing.T, s *imdstest.Server) []string {
				return []string{imdstest.HeaderToken, token(t, s, "60")}
			},
			status: 200, body: "i-0123456789abcdef0", tokenHdr: true,
		},
		{
			name:   "optional, no token is IMDSv1",
			tok:    func(*testing.T, *imdstest.Server) []string { return nil },
			status: 200, body: "i-0123456789abcdef0", imdsv1: true,
		},
		{
			name: "optional, invalid token",
			tok: func(*testing.T, *imdstest.Server) []string {
				return []string{imdstest.HeaderToken, strings.Repeat("A", 56)}
			},
			status: 401, tokenHdr: true,
		},
		{
			name:   "optional, empty token",
			tok:    func(*testing.T, *imdstest.Server) []string { return []string{imdstest.HeaderToken, ""} },
			status: 401, tokenHdr: true,
		},
		{
			name:   "optional, garbage token",
			tok:    func(*testing.T, *imdstest.Server) []string { return []string{imdstest.HeaderToken, "not a token!"} },
			status: 401, tokenHdr: true,
		},
		{
			name: "required, valid token", cfg: imdstest.Config{HTTPTokens: "required"},
			tok: func(t *testing.T, s *imdstest.Server) []string {
				return []string{imdstest.HeaderToken, token(t, s, "60")}
			},
			status: 200, body: "i-0123456789abcdef0", tokenHdr: true,
		},
		{
			name: "required, upper case option", cfg: imdstest.Config{HTTPTokens: "REQUIRED"},
			tok:    func(*testing.T, *imdstest.Server) []string { return nil },
			status: 401,
		},
		{
			name: "unknown option means required", cfg: imdstest.Config{HTTPTokens: "v2-only"},
			tok:    func(*testing.T, *imdstest.Server) []string { return nil },
			status: 401,
		},
		{
			name: "required, no token", cfg: imdstest.Config{HTTPTokens: "required"},
			tok:    func(*testing.T, *imdstest.Server) []string { return nil },
			status: 401,
		},
		{
			name: "required, invalid token", cfg: imdstest.Config{HTTPTokens: "required"},
			tok:    func(*testing.T, *imdstest.Server) []string { return []string{imdstest.HeaderToken, "x"} },
			status: 401, tokenHdr: true,
		},
		{
			name: "endpoint disabled, valid-looking token", cfg: imdstest.Config{EndpointDisabled: true},
			tok:    func(*testing.T, *imdstest.Server) []string { return []string{imdstest.HeaderToken, "x"} },
			status: 403, tokenHdr: true,
		},
		{
			name: "endpoint disabled, no token", cfg: imdstest.Config{EndpointDisabled: true},
			tok:    func(*testing.T, *imdstest.Server) []string { return nil },
			status: 403,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.cfg)
			hdrs := tc.tok(t, s)
			s.ResetRequests()
			a := do(t, s, http.MethodGet, path, hdrs...)
			assert.Equal(t, tc.status, a.status)
			if tc.status == 200 {
				assert.Equal(t, tc.body, a.body)
				assert.Equal(t, "EC2ws", a.header.Get("Server"))
			} else {
				assert.Contains(t, a.body, fmt.Sprintf("<title>%d - %s</title>", tc.status, http.StatusText(tc.status)))
			}
			reqs := s.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, tc.imdsv1, reqs[0].IMDSv1())
			assert.Equal(t, tc.tokenHdr, reqs[0].TokenSent)
			assert.Equal(t, tc.status, reqs[0].Status)
		})
	}
}

func TestEndpointDisabledRefusesEverything(t *testing.T) {
	s := newServer(t, imdstest.Config{EndpointDisabled: true})
	for _, r := range []struct{ method, path string }{
		{"PUT", "/latest/api/token"},
		{"PUT", "/2021-03-23/api/token"},
		{"GET", "/latest/api/token"},
		{"GET", "/"},
		{"GET", "/latest/meta-data/"},
		{"GET", "/latest/user-data"},
		{"GET", "/no/such/path"},
		{"POST", "/latest/meta-data/instance-id"},
	} {
		a := do(t, s, r.method, r.path, imdstest.HeaderTokenTTL, "60")
		assert.Equal(t, http.StatusForbidden, a.status, "%s %s", r.method, r.path)
	}
}

func TestErrorPages(t *testing.T) {
	s := newServer(t, imdstest.Config{HTTPTokens: "required"})
	a := get(t, s, "", "/latest/meta-data/instance-id")
	require.Equal(t, 401, a.status)
	assert.Equal(t, "text/html", a.header.Get("Content-Type"))
	assert.Contains(t, a.body, "<title>401 - Unauthorized</title>")
	a = get(t, s, token(t, s, "60"), "/latest/meta-data/nope")
	require.Equal(t, 404, a.status)
	assert.Contains(t, a.body, "<h1>404 - Not Found</h1>")
}

func TestOtherMethodsOnMetadata(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		a := do(t, s, m, "/latest/meta-data/instance-id")
		assert.Equal(t, http.StatusMethodNotAllowed, a.status, m)
		assert.Equal(t, "GET, HEAD", a.header.Get("Allow"))
	}
	head := do(t, s, "HEAD", "/latest/meta-data/instance-id")
	assert.Equal(t, 200, head.status)
	assert.Equal(t, "19", head.header.Get("Content-Length"))
	assert.Empty(t, head.body)
}
