package imds

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relaxed gives the tests time-outs long enough that a loaded machine (the CI box stalls for
// hundreds of milliseconds at times) is not mistaken for a failure. Tests that wait for a
// time-out run in parallel. The defaults are measured by BenchmarkFailureModes.
func relaxed(o *Options) {
	o.DialTimeout = 2 * time.Second
	o.TokenTimeout = 5 * time.Second
	o.RequestTimeout = 5 * time.Second
	o.Timeout = 20 * time.Second
}

// TestErrorClasses drives every failure class against the emulator and checks the sentinel, the
// *Error fields, the advice in the text, and that no tokenless GET was ever sent.
func TestErrorClasses(t *testing.T) {
	const idPath = "/latest/meta-data/instance-id"
	tests := []struct {
		name     string
		cfg      imdstest.Config
		setup    func(t *testing.T, srv *imdstest.Server, o *Options)
		call     func(ctx context.Context, c *Client, srv *imdstest.Server) error
		want     error
		kind     Kind
		op, path string
		status   int
		text     []string // substrings of Error()
		check    func(t *testing.T, srv *imdstest.Server)
	}{
		{
			name: "unreachable/refused",
			setup: func(t *testing.T, _ *imdstest.Server, o *Options) {
				o.Endpoint = refusedEndpoint(t)
			},
			want: ErrUnreachable, kind: KindUnreachable, op: "PUT", path: tokenPath,
			text: []string{"connection refused", "not an EC2 instance"},
		},
		{
			name: "unreachable/connect time-out",
			setup: func(t *testing.T, _ *imdstest.Server, o *Options) {
				o.DialTimeout = 100 * time.Millisecond
				// A caller's client whose dialer waits for a SYN nobody answers: the client
				// bounds it by DialTimeout, as it would the test hook's dialer.
				o.HTTPClient = &http.Client{Transport: &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						<-ctx.Done()
						return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
					}}}
			},
			want: ErrUnreachable, kind: KindUnreachable, op: "PUT", path: tokenPath,
			text: []string{"no TCP connection within 100ms"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Empty(t, srv.Requests(), "nothing may reach the server")
			},
		},
		{
			name: "disabled/endpoint",
			cfg:  imdstest.Config{EndpointDisabled: true},
			want: ErrDisabled, kind: KindDisabled, op: "PUT", path: tokenPath, status: 403,
			text: []string{"HttpEndpoint=disabled", "--http-endpoint enabled"},
		},
		{
			name: "disabled/while running",
			call: func(ctx context.Context, c *Client, srv *imdstest.Server) error {
				if _, err := c.InstanceID(ctx); err != nil {
					return err
				}
				// The same client, token in hand, must then see the endpoint switched off.
				srv.Update(func(cfg *imdstest.Config) { cfg.EndpointDisabled = true })
				_, err := c.InstanceID(ctx)
				return err
			},
			want: ErrDisabled, kind: KindDisabled, op: "GET", path: idPath, status: 403,
		},
		{
			name: "disabled/environment",
			setup: func(t *testing.T, _ *imdstest.Server, o *Options) {
				o.Getenv = envMap(map[string]string{EnvDisabled: "TRUE"})
			},
			want: ErrDisabled, kind: KindDisabled, op: "GET", path: idPath,
			text: []string{EnvDisabled + "=true"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Empty(t, srv.Requests())
			},
		},
		{
			name: "hop limit",
			setup: func(_ *testing.T, srv *imdstest.Server, o *Options) {
				srv.InjectFault(imdstest.Fault{Method: "PUT", PathPrefix: tokenPath, Kind: imdstest.FaultHang})
				o.TokenTimeout = 300 * time.Millisecond // only the expected outcome can come of it
			},
			want: ErrHopLimit, kind: KindHopLimit, op: "PUT", path: tokenPath,
			text: []string{"no answer within", "connection was accepted", "HttpPutResponseHopLimit is probably 1",
				"container bridge", "aws ec2 modify-instance-metadata-options", "--http-put-response-hop-limit 2"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Equal(t, 1, countRequests(srv, "PUT", tokenPath), "a hop-limit failure is not retried")
			},
		},
		{
			name:  "token refused/400",
			setup: inject(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 400}),
			want:  ErrTokenRefused, kind: KindTokenRefused, op: "PUT", path: tokenPath, status: 400,
			text: []string{"400 Bad Request", "1 to 21600"},
		},
		{
			name:  "token refused/404 (no IMDSv2)",
			setup: inject(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 404}),
			want:  ErrTokenRefused, kind: KindTokenRefused, op: "PUT", path: tokenPath, status: 404,
			text: []string{"does not offer IMDSv2"},
		},
		{
			name:  "token refused/405",
			setup: inject(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 405}),
			want:  ErrTokenRefused, kind: KindTokenRefused, op: "PUT", path: tokenPath, status: 405,
			text: []string{"blocks PUT"},
		},
		{
			name: "token refused/through a proxy",
			setup: func(t *testing.T, srv *imdstest.Server, o *Options) {
				target, err := url.Parse(srv.URL())
				require.NoError(t, err)
				proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target)) // adds X-Forwarded-For
				t.Cleanup(proxy.Close)
				proxyURL, err := url.Parse(proxy.URL)
				require.NoError(t, err)
				tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
				t.Cleanup(tr.CloseIdleConnections)
				o.HTTPClient = &http.Client{Transport: tr}
			},
			want: ErrTokenRefused, kind: KindTokenRefused, op: "PUT", path: tokenPath, status: 403,
			text: []string{"went through", "NO_PROXY"},
		},
		{
			name:  "token refused/401 to a fresh token",
			setup: inject(imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 401, Count: 2}),
			want:  ErrTokenRefused, kind: KindTokenRefused, op: "GET", path: idPath, status: 401,
			text: []string{"just issued"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Equal(t, 2, countRequests(srv, "PUT", tokenPath), "one new token after the 401")
				assert.Equal(t, 2, countRequests(srv, "GET", idPath), "one retry after the 401")
			},
		},
		{
			name: "not found",
			call: calling1((*Client).Get, "no/such/path"),
			want: ErrNotFound, kind: KindNotFound, op: "GET", path: "/latest/meta-data/no/such/path", status: 404,
			text: []string{"/latest/meta-data/no/such/path", "does not exist"},
		},
		{
			name: "not found/no instance profile",
			call: calling((*Client).IAMCredentials),
			want: ErrNotFound, kind: KindNotFound, op: "GET", path: pathRoles, status: 404,
			text: []string{"associate-iam-instance-profile"},
		},
		{
			name:  "throttled/429",
			setup: inject(imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 429}),
			want:  ErrThrottled, kind: KindThrottled, op: "GET", path: idPath, status: 429,
			text: []string{"429 Too Many Requests (3 attempts)", "cache"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Equal(t, 3, countRequests(srv, "GET", idPath), "retried up to MaxAttempts")
			},
		},
		{
			name: "timeout/dropped requests",
			setup: func(_ *testing.T, srv *imdstest.Server, o *Options) {
				srv.InjectFault(imdstest.Fault{Method: "GET", Kind: imdstest.FaultHang})
				o.RequestTimeout = 150 * time.Millisecond
			},
			want: ErrTimeout, kind: KindTimeout, op: "GET", path: idPath,
			text: []string{"no answer within", "timed out"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.GreaterOrEqual(t, countRequests(srv, "GET", idPath), 2, "time-outs are retried")
			},
		},
		{
			name: "timeout/emulator drop mode",
			cfg: imdstest.Config{Throttle: imdstest.Throttle{RequestsPerSecond: 0.001, Burst: 1,
				Mode: imdstest.ThrottleDrop}},
			setup: func(_ *testing.T, _ *imdstest.Server, o *Options) {
				o.RequestTimeout = 150 * time.Millisecond
			},
			// Dropped requests look like any other time-out: the advice names throttling first.
			want: ErrTimeout, kind: KindTimeout, op: "GET", path: idPath,
			text: []string{"rate limit"},
		},
		{
			name:  "server error/500",
			setup: inject(imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 500}),
			want:  ErrServer, kind: KindServer, op: "GET", path: idPath, status: 500,
			text: []string{"500 Internal Server Error (3 attempts)"},
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Equal(t, 3, countRequests(srv, "GET", idPath))
			},
		},
		{
			name:  "server error/503 on the token",
			setup: inject(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 503}),
			want:  ErrServer, kind: KindServer, op: "PUT", path: tokenPath, status: 503,
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Equal(t, 3, countRequests(srv, "PUT", tokenPath))
			},
		},
		{
			name:  "server error/connection reset",
			setup: inject(imdstest.Fault{Method: "GET", Kind: imdstest.FaultReset}),
			want:  ErrServer, kind: KindServer, op: "GET", path: idPath,
			text: []string{"connection broke"},
		},
		{
			name: "too large",
			setup: func(_ *testing.T, _ *imdstest.Server, o *Options) {
				o.MaxBodyBytes = 5
			},
			want: ErrTooLarge, kind: KindTooLarge, op: "GET", path: idPath, status: 200,
			text: []string{"larger than 5 bytes", "MaxBodyBytes"},
		},
		{
			name: "too large/user data after gunzip",
			cfg:  imdstest.Config{UserData: gzipBytes(make([]byte, 64<<10))},
			setup: func(_ *testing.T, _ *imdstest.Server, o *Options) {
				o.MaxBodyBytes = 32 << 10
			},
			call: calling((*Client).UserData),
			want: ErrTooLarge, kind: KindTooLarge, op: "GET", path: pathUserData, status: 200,
			text: []string{"decompressed"},
		},
		{
			name: "malformed/user data gzip",
			cfg:  imdstest.Config{UserData: []byte{0x1f, 0x8b, 1, 2, 3}},
			call: calling((*Client).UserData),
			want: ErrMalformed, kind: KindMalformed, op: "GET", path: pathUserData, status: 200,
			text: []string{"gzip"},
		},
		{
			name: "tags not enabled",
			call: calling((*Client).Tags),
			want: ErrTagsNotEnabled, kind: KindTagsNotEnabled, op: "GET", path: pathTags, status: 404,
			text: []string{"--instance-metadata-tags enabled"},
		},
		{
			name: "tags not enabled/single tag",
			call: calling1((*Client).Tag, "Name"),
			want: ErrTagsNotEnabled, kind: KindTagsNotEnabled, op: "GET", path: pathTags + "Name", status: 404,
		},
		{
			name: "credentials code",
			cfg:  imdstest.Config{RoleName: "app", CredentialCode: "AssumeRoleUnauthorizedAccess"},
			call: calling((*Client).IAMCredentials),
			want: ErrCredentials, kind: KindCredentials, op: "GET", path: pathRoles + "app", status: 200,
			text: []string{"AssumeRoleUnauthorizedAccess", "trust policy"},
		},
		{
			name: "invalid argument/path",
			call: calling1((*Client).Get, "../../etc/passwd"),
			want: ErrInvalidArgument, kind: KindInvalidArgument, op: "GET",
			check: func(t *testing.T, srv *imdstest.Server) {
				assert.Empty(t, srv.Requests())
			},
		},
		{
			name: "canceled",
			call: func(ctx context.Context, c *Client, _ *imdstest.Server) error {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := c.InstanceID(ctx)
				if !errors.Is(err, context.Canceled) {
					return errors.New("want context.Canceled, got " + errText(err))
				}
				return err
			},
			kind: KindCanceled, op: "PUT", path: tokenPath,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, tc.cfg)
			o := Options{Endpoint: srv.URL(), Getenv: noEnv}
			relaxed(&o)
			if tc.setup != nil {
				tc.setup(t, srv, &o)
			}
			srv.ResetRequests()
			c, err := New(o)
			require.NoError(t, err)
			defer c.hc.CloseIdleConnections()

			call := tc.call
			if call == nil {
				call = func(ctx context.Context, c *Client, _ *imdstest.Server) error {
					_, err := c.InstanceID(ctx)
					return err
				}
			}
			err = call(context.Background(), c, srv)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want, "error: %v", err)
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.kind, e.Kind, "kind; error: %v", err)
			assert.Equal(t, tc.op, e.Op)
			if tc.path != "" {
				assert.Equal(t, tc.path, e.Path)
			}
			assert.Equal(t, tc.status, e.StatusCode)
			for _, s := range tc.text {
				assert.Contains(t, err.Error(), s)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "imds: "), err.Error())
			// Every other sentinel must not match.
			for k, s := range sentinels {
				if s != nil && Kind(k) != tc.kind && !(tc.kind == KindTagsNotEnabled && s == ErrNotFound) {
					assert.NotErrorIs(t, err, s, "also matches %v", s)
				}
			}
			if tc.check != nil {
				tc.check(t, srv)
			}
			srv.ClearFaults()
			requireNoIMDSv1(t, srv)
		})
	}
}

// TestNoIMDSv1ByDefaultAnyFailure repeats the token failures that make the SDKs fall back to
// IMDSv1, on an instance that would answer IMDSv1, and checks that this client never does.
func TestNoIMDSv1ByDefaultAnyFailure(t *testing.T) {
	for _, f := range []imdstest.Fault{
		{Method: "PUT", Kind: imdstest.FaultHang},
		{Method: "PUT", Kind: imdstest.FaultStatus, Status: 403},
		{Method: "PUT", Kind: imdstest.FaultStatus, Status: 404},
		{Method: "PUT", Kind: imdstest.FaultStatus, Status: 405},
		{Method: "PUT", Kind: imdstest.FaultStatus, Status: 500},
		{Method: "PUT", Kind: imdstest.FaultReset},
		{Method: "PUT", Kind: imdstest.FaultClose},
		{Method: "GET", Kind: imdstest.FaultStatus, Status: 401},
		{Method: "GET", Kind: imdstest.FaultHang},
	} {
		t.Run(f.Method+"/"+f.Kind.String()+"/"+http.StatusText(f.Status), func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensOptional})
			srv.InjectFault(f)
			c := newTestClient(t, srv, func(o *Options) {
				relaxed(o)
				// Any error is fine here, so short waits cannot make the test fail.
				o.TokenTimeout, o.RequestTimeout = 300*time.Millisecond, 150*time.Millisecond
			})
			for range 2 {
				_, err := c.InstanceID(context.Background())
				require.Error(t, err)
			}
			assert.Zero(t, c.Fallbacks())
			requireNoIMDSv1(t, srv)
		})
	}
}

// TestStatusLine: status texts come from net/http; a code it has no text for is shown alone.
func TestStatusLine(t *testing.T) {
	assert.Equal(t, "404 Not Found", statusLine(404))
	assert.Equal(t, "418 I'm a teapot", statusLine(418))
	assert.Equal(t, "599", statusLine(599))
	e := statusError(http.MethodGet, "/p", "http://x", 299, 1)
	assert.Contains(t, e.Error(), "unexpected status 299:")
}

// inject is a setup that injects f into the emulator.
func inject(f imdstest.Fault) func(*testing.T, *imdstest.Server, *Options) {
	return func(_ *testing.T, srv *imdstest.Server, _ *Options) { srv.InjectFault(f) }
}

// calling is a call that makes one read and keeps its error.
func calling[T any](read func(*Client, context.Context) (T, error)) func(context.Context, *Client, *imdstest.Server) error {
	return func(ctx context.Context, c *Client, _ *imdstest.Server) error {
		_, err := read(c, ctx)
		return err
	}
}

// calling1 is calling for a read that takes one argument.
func calling1[T any](read func(*Client, context.Context, string) (T, error), arg string) func(context.Context, *Client, *imdstest.Server) error {
	return calling(func(c *Client, ctx context.Context) (T, error) { return read(c, ctx, arg) })
}
