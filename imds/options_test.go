package imds

import (
	"context"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOptionsAndEnvironment(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		env       map[string]string
		endpoints []string
		mode      EndpointMode
		disabled  string // substring, "" = enabled
		allowV1   bool
		err       string // substring of New's error
	}{
		{name: "zero", endpoints: []string{EndpointIPv4}, mode: EndpointModeIPv4},
		{name: "env IPv6", env: map[string]string{EnvEndpointMode: "ipv6"},
			endpoints: []string{EndpointIPv6}, mode: EndpointModeIPv6},
		{name: "env Auto", env: map[string]string{EnvEndpointMode: "Auto"},
			endpoints: []string{EndpointIPv4, EndpointIPv6}, mode: EndpointModeAuto},
		{name: "env bad mode", env: map[string]string{EnvEndpointMode: "IPv5"}, err: EnvEndpointMode},
		{name: "option mode wins", opts: Options{EndpointMode: EndpointModeIPv4},
			env: map[string]string{EnvEndpointMode: "IPv6"}, endpoints: []string{EndpointIPv4}, mode: EndpointModeIPv4},
		{name: "env endpoint", env: map[string]string{EnvEndpoint: "http://127.0.0.1:8080/"},
			endpoints: []string{"http://127.0.0.1:8080"}},
		{name: "env endpoint beats mode", env: map[string]string{EnvEndpoint: "http://[::1]:9", EnvEndpointMode: "IPv4"},
			endpoints: []string{"http://[::1]:9"}},
		{name: "option endpoint wins", opts: Options{Endpoint: "http://127.0.0.2"},
			env: map[string]string{EnvEndpoint: "http://127.0.0.3"}, endpoints: []string{"http://127.0.0.2"}},
		{name: "endpoint prefix kept", opts: Options{Endpoint: "https://imds.example/prefix/"},
			endpoints: []string{"https://imds.example/prefix"}},
		{name: "bad endpoint scheme", env: map[string]string{EnvEndpoint: "ftp://x"}, err: EnvEndpoint},
		{name: "bad endpoint query", opts: Options{Endpoint: "http://x/?a=b"}, err: "without user, query"},
		{name: "env disabled", env: map[string]string{EnvDisabled: "true"}, endpoints: []string{EndpointIPv4},
			mode: EndpointModeIPv4, disabled: EnvDisabled},
		{name: "env disabled false", env: map[string]string{EnvDisabled: "false"}, endpoints: []string{EndpointIPv4},
			mode: EndpointModeIPv4},
		{name: "option disabled", opts: Options{Disabled: true}, endpoints: []string{EndpointIPv4},
			mode: EndpointModeIPv4, disabled: "Options.Disabled"},
		{name: "v1 opt-in", opts: Options{AllowIMDSv1: true}, endpoints: []string{EndpointIPv4},
			mode: EndpointModeIPv4, allowV1: true},
		{name: "v1 opt-in overridden by env", opts: Options{AllowIMDSv1: true},
			env: map[string]string{EnvV1Disabled: "TRUE"}, endpoints: []string{EndpointIPv4}, mode: EndpointModeIPv4},
		{name: "v1 env cannot allow", env: map[string]string{EnvV1Disabled: "false"},
			endpoints: []string{EndpointIPv4}, mode: EndpointModeIPv4},
		{name: "negative timeout", opts: Options{Timeout: -1}, err: "Timeout"},
		{name: "negative attempts", opts: Options{MaxAttempts: -1}, err: "MaxAttempts"},
		{name: "negative body", opts: Options{MaxBodyBytes: -1}, err: "MaxBodyBytes"},
		{name: "bad mode value", opts: Options{EndpointMode: 9}, err: "EndpointMode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Getenv = envMap(tc.env)
			c, err := New(o)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, ep := range c.cfg.endpoints {
				got = append(got, ep.base)
			}
			assert.Equal(t, tc.endpoints, got)
			if tc.mode != EndpointModeUnset {
				assert.Equal(t, tc.mode, c.cfg.mode)
			}
			if tc.disabled == "" {
				assert.Empty(t, c.cfg.disabled)
			} else {
				assert.Contains(t, c.cfg.disabled, tc.disabled)
			}
			assert.Equal(t, tc.allowV1, c.cfg.allowV1)
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := New(Options{Getenv: noEnv})
	require.NoError(t, err)
	assert.Equal(t, DefaultDialTimeout, c.cfg.dialTimeout)
	assert.Equal(t, DefaultTokenTimeout, c.cfg.tokenTimeout)
	assert.Equal(t, DefaultRequestTimeout, c.cfg.reqTimeout)
	assert.Equal(t, DefaultTimeout, c.cfg.timeout)
	assert.Equal(t, DefaultMaxAttempts, c.cfg.maxAttempts)
	assert.Equal(t, int64(DefaultMaxBodyBytes), c.cfg.maxBody)
	assert.Equal(t, DefaultTokenTTL, c.cfg.ttl)
	assert.False(t, c.cfg.allowV1)
	assert.LessOrEqual(t, DefaultDialTimeout+DefaultTokenTimeout, DefaultTimeout,
		"the hop limit must be diagnosable within the budget")
}

func TestParseEndpointMode(t *testing.T) {
	for in, want := range map[string]EndpointMode{"IPv4": EndpointModeIPv4, "ipv6": EndpointModeIPv6,
		" AUTO ": EndpointModeAuto} {
		got, err := ParseEndpointMode(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.True(t, strings.EqualFold(strings.TrimSpace(in), got.String()))
	}
	_, err := ParseEndpointMode("")
	assert.Error(t, err)
}

// TestAutoModeFallsBackToIPv6AndRemembers uses a refused loopback port as "IPv4" and the
// emulator as "IPv6".
func TestAutoModeFallsBackToIPv6AndRemembers(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{})
	refused := refusedEndpoint(t)
	var mu sync.Mutex
	dials := map[string]int{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials[addr]++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c := newHookedClient(t, srv, hooks{auto: []string{refused, srv.URL()}, dial: dial}, func(o *Options) {
		relaxed(o)
		o.Endpoint = ""
		o.EndpointMode = EndpointModeAuto
	})
	ctx := context.Background()
	for range 3 {
		_, err := c.InstanceID(ctx)
		require.NoError(t, err)
	}
	c.tok.Store(nil) // force a new token: the remembered endpoint is asked first
	_, err := c.InstanceID(ctx)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, dials[strings.TrimPrefix(refused, "http://")], "the refused endpoint is tried once")
	assert.Equal(t, uint32(1), c.pref.Load())
	requireNoIMDSv1(t, srv)
}

func TestAutoModeBothRefused(t *testing.T) {
	a, b := refusedEndpoint(t), refusedEndpoint(t)
	c, err := newClient(Options{EndpointMode: EndpointModeAuto, Getenv: noEnv}, hooks{auto: []string{a, b}})
	require.NoError(t, err)
	_, err = c.InstanceID(context.Background())
	require.ErrorIs(t, err, ErrUnreachable)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, a+" and "+b, e.Endpoint)
}

// TestTreePath: paths are relative to their tree whatever they start with; a leading "/" no
// longer switches to root-relative paths (Get(ctx, "/instance-id") used to read /instance-id).
func TestTreePath(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "/latest/meta-data/",
		"/":                    "/latest/meta-data/",
		"instance-id":          "/latest/meta-data/instance-id",
		"/instance-id":         "/latest/meta-data/instance-id",
		"//instance-id":        "/latest/meta-data/instance-id",
		"/latest/user-data":    "/latest/meta-data/latest/user-data",
		"tags/instance/My Tag": "/latest/meta-data/tags/instance/My Tag",
		"network/interfaces/":  "/latest/meta-data/network/interfaces/",
		"x/..y":                "/latest/meta-data/x/..y",
	} {
		got, err := treePath(treeMetaData, in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	got, err := treePath(treeDynamic, "/instance-identity/document")
	require.NoError(t, err)
	assert.Equal(t, "/latest/dynamic/instance-identity/document", got)
	for _, bad := range []string{"..", "a/../b", "./a", "a?b", "a#b", "a%2e", "a\nb", "a\\b", "/a/.", "/.."} {
		_, err := treePath(treeMetaData, bad)
		assert.ErrorIs(t, err, ErrInvalidArgument, bad)
	}
}

// TestOptionsAllExported: Options holds what callers set and nothing else; test seams go in
// hooks (newClient).
func TestOptionsAllExported(t *testing.T) {
	typ := reflect.TypeFor[Options]()
	for i := range typ.NumField() {
		assert.True(t, typ.Field(i).IsExported(), "Options.%s is unexported", typ.Field(i).Name)
	}
}
