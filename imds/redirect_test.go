package imds

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// redirectTarget is a second server, on 127.0.0.2, that a hostile endpoint redirects to. It
// records every request it gets; a client that never follows redirects leaves it empty.
type redirectTarget struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string // method, path and any token header of each request
}

func newRedirectTarget(t *testing.T) *redirectTarget {
	t.Helper()
	rt := &redirectTarget{}
	rt.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt.mu.Lock()
		rt.hits = append(rt.hits, r.Method+" "+r.URL.Path+" token="+r.Header.Get(headerToken))
		rt.mu.Unlock()
		if r.Method == http.MethodPut {
			_, _ = w.Write([]byte("AQAEAForeignTokenFromTheRedirectTarget0000000000000000=="))
			return
		}
		_, _ = w.Write([]byte("i-0foreign000000000"))
	}))
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	require.NoError(t, err)
	rt.srv.Listener = ln
	rt.srv.Start()
	t.Cleanup(rt.srv.Close)
	return rt
}

// host is the target's host:port, which the error must name.
func (rt *redirectTarget) host() string { return rt.srv.Listener.Addr().String() }

// location is a Location header pointing at the target, with a password and a query that the
// error must not repeat.
func (rt *redirectTarget) location() string {
	return "http://thief:hunter2@" + rt.host() + "/steal?token=query-secret"
}

func (rt *redirectTarget) requireUntouched(t *testing.T) {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	require.Empty(t, rt.hits, "the redirect target got requests")
}

// requireRedirectError checks the typed error: kind, sentinel, status, the target host named,
// and neither the Location's password nor its query in the text.
func requireRedirectError(t *testing.T, err error, rt *redirectTarget, op string, status int) {
	t.Helper()
	require.ErrorIs(t, err, ErrRedirect)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, KindRedirect, e.Kind)
	assert.Equal(t, op, e.Op)
	assert.Equal(t, status, e.StatusCode)
	msg := err.Error()
	assert.Contains(t, msg, "answered "+strconv.Itoa(status)+" ")
	assert.Contains(t, msg, `to host "`+rt.host()+`"`)
	assert.Contains(t, msg, "[redacted]@"+rt.host()+"/steal")
	assert.Contains(t, msg, "IMDS never redirects")
	assert.NotContains(t, msg, "hunter2")
	assert.NotContains(t, msg, "thief")
	assert.NotContains(t, msg, "query-secret")
}

var redirectCodes = []int{301, 302, 303, 307, 308}

// TestRedirectNeverFollowed: a redirect of the token PUT or of a GET, on every code, is refused
// with ErrRedirect, and the host it points at receives nothing (no token, no request at all).
func TestRedirectNeverFollowed(t *testing.T) {
	for _, code := range redirectCodes {
		for _, method := range []string{http.MethodPut, http.MethodGet} {
			t.Run(method+"/"+strconv.Itoa(code), func(t *testing.T) {
				t.Parallel()
				rt := newRedirectTarget(t)
				srv := newEmulator(t, imdstest.Config{})
				srv.InjectFault(imdstest.Fault{Method: method, Kind: imdstest.FaultRedirect, Status: code,
					Location: rt.location()})
				c := newTestClient(t, srv, relaxed)
				id, err := c.InstanceID(context.Background())
				assert.Empty(t, id)
				requireRedirectError(t, err, rt, method, code)
				rt.requireUntouched(t)
				if method == http.MethodGet {
					// The token was issued and the GET that carried it went to the endpoint only.
					assert.Equal(t, 1, countRequests(srv, http.MethodPut, tokenPath))
					assert.Equal(t, 1, countRequests(srv, http.MethodGet, ""), "a redirect is not retried")
				}
			})
		}
	}
}

// TestRedirectEveryPath covers the other ways a request goes out: a listing, user data, the
// IMDSv1 fallback, Auto mode, and an HTTP client of the caller's (whose own policy follows
// redirects, and must be left as it was).
func TestRedirectEveryPath(t *testing.T) {
	type call func(context.Context, *Client) error
	get := func(ctx context.Context, c *Client) error { _, err := c.InstanceID(ctx); return err }
	callerClient := &http.Client{} // net/http's default policy: follow up to 10 redirects
	for _, tc := range []struct {
		name   string
		faults []imdstest.Fault // the redirect is added last
		method string           // which request is redirected
		prefix string
		edit   func(*Options)
		call   call
	}{
		{name: "list", method: http.MethodGet, prefix: "/latest/meta-data/",
			call: func(ctx context.Context, c *Client) error { _, err := c.List(ctx, "placement"); return err }},
		{name: "user-data", method: http.MethodGet, prefix: "/latest/user-data",
			call: func(ctx context.Context, c *Client) error { _, err := c.UserData(ctx); return err }},
		{name: "credentials", method: http.MethodGet, prefix: "/latest/meta-data/iam/",
			call: func(ctx context.Context, c *Client) error { _, err := c.IAMCredentials(ctx); return err }},
		{name: "imdsv1-fallback", method: http.MethodGet, prefix: "/latest/meta-data/",
			faults: []imdstest.Fault{{Method: http.MethodPut, Kind: imdstest.FaultStatus, Status: 403}},
			edit:   func(o *Options) { o.AllowIMDSv1 = true }, call: get},
		{name: "auto-mode-put", method: http.MethodPut, edit: autoMode, call: get},
		{name: "auto-mode-get", method: http.MethodGet, edit: autoMode, call: get},
		{name: "caller-http-client-put", method: http.MethodPut, call: get,
			edit: func(o *Options) { o.HTTPClient = callerClient }},
		{name: "caller-http-client-get", method: http.MethodGet, call: get,
			edit: func(o *Options) { o.HTTPClient = callerClient }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRedirectTarget(t)
			srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensOptional,
				RoleName: "role", UserData: []byte("#!/bin/sh\n")})
			for _, f := range tc.faults {
				srv.InjectFault(f)
			}
			srv.InjectFault(imdstest.Fault{Method: tc.method, PathPrefix: tc.prefix, Kind: imdstest.FaultRedirect,
				Status: http.StatusFound, Location: rt.location()})
			// Auto mode's endpoints: the emulator first (only Auto mode reads them).
			auto := hooks{auto: []string{srv.URL(), refusedEndpoint(t)}}
			c := newHookedClient(t, srv, auto, func(o *Options) {
				relaxed(o)
				if tc.edit != nil {
					tc.edit(o)
				}
			})
			for range 2 { // the second call must not have learnt anything from the first
				requireRedirectError(t, tc.call(context.Background(), c), rt, tc.method, http.StatusFound)
			}
			rt.requireUntouched(t)
		})
	}
	assert.Nil(t, callerClient.CheckRedirect, "the caller's client was changed")
}

func autoMode(o *Options) {
	o.Endpoint = ""
	o.EndpointMode = EndpointModeAuto
}

// TestRedirectWithoutLocation: a 3xx without a usable Location is a redirect error too.
func TestRedirectWithoutLocation(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{})
	srv.InjectFault(imdstest.Fault{Method: http.MethodGet, Kind: imdstest.FaultRedirect, Status: 301})
	c := newTestClient(t, srv, relaxed)
	_, err := c.InstanceID(context.Background())
	require.ErrorIs(t, err, ErrRedirect)
	assert.Contains(t, err.Error(), "answered 301 Moved Permanently without a Location")
}
