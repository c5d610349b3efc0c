package imdstest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
)

// newClock is a clock tests move by hand.
func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
}

// answer is what a plain net/http client got.
type answer struct {
	status int
	header http.Header
	body   string
}

// newServer starts an emulator on loopback and closes it at the end of the test.
func newServer(t testing.TB, cfg imdstest.Config) *imdstest.Server {
	t.Helper()
	s := imdstest.NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

// client is a plain net/http client with a bound, so that a bug that hangs fails the test
// instead of blocking it forever.
var client = &http.Client{Timeout: 30 * time.Second}

// do sends one request; headers are name, value pairs.
func do(t testing.TB, s *imdstest.Server, method, path string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// token gets a session token with the given TTL in seconds.
func token(t testing.TB, s *imdstest.Server, ttl string) string {
	t.Helper()
	a := do(t, s, http.MethodPut, "/latest/api/token", imdstest.HeaderTokenTTL, ttl)
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.NotEmpty(t, a.body)
	return a.body
}

// get is a GET with a token ("" = none).
func get(t testing.TB, s *imdstest.Server, tok, path string) answer {
	t.Helper()
	if tok == "" {
		return do(t, s, http.MethodGet, path)
	}
	return do(t, s, http.MethodGet, path, imdstest.HeaderToken, tok)
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(t testing.TB, method, path string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, path, nil)
}
