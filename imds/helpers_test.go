package imds

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
	"github.com/stretchr/testify/require"
)

// newFakeClock is a clock tests move by hand.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

// noEnv is a Getenv that sees an empty environment, so that tests do not depend on the
// process's.
func noEnv(string) string { return "" }

// envMap is a Getenv backed by a map.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// newEmulator starts an emulator on loopback, closed when the test ends.
func newEmulator(t testing.TB, cfg imdstest.Config) *imdstest.Server {
	t.Helper()
	srv := imdstest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

// newTestClient returns a client of srv with an empty environment; edit adjusts the options.
func newTestClient(t testing.TB, srv *imdstest.Server, edit func(*Options)) *Client {
	t.Helper()
	return newHookedClient(t, srv, hooks{}, edit)
}

// newHookedClient is newTestClient with test hooks (a clock, a dialer, Auto mode's endpoints).
func newHookedClient(t testing.TB, srv *imdstest.Server, h hooks, edit func(*Options)) *Client {
	t.Helper()
	o := Options{Endpoint: srv.URL(), Getenv: noEnv}
	if edit != nil {
		edit(&o)
	}
	c, err := newClient(o, h)
	require.NoError(t, err)
	t.Cleanup(func() { closeIdle(c) })
	return c
}

// closeIdle releases the client's keep-alive connections, so that the emulator's Close does not
// wait for them.
func closeIdle(c *Client) { c.hc.CloseIdleConnections() }

// refusedEndpoint returns the URL of a loopback port nobody listens on: listened on, then closed.
func refusedEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

// requireNoIMDSv1 fails the test if srv ever received a GET without a token.
func requireNoIMDSv1(t testing.TB, srv *imdstest.Server) {
	t.Helper()
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			require.Truef(t, r.TokenSent, "tokenless %s %s was sent (status %d)", r.Method, r.Path, r.Status)
		}
	}
}

// countRequests counts logged requests with method and path ("" matches any path).
func countRequests(srv *imdstest.Server, method, path string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == method && (path == "" || r.Path == path) {
			n++
		}
	}
	return n
}

// gzipBytes compresses b.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}
