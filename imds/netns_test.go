package imds_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// As root the whole test binary runs in a private network namespace with only loopback; the
// metadata addresses exist only inside the test bed's namespaces.
func TestMain(m *testing.M) { netguard.TestMain(m) }

// clientIn returns a client whose connections are made inside the bed namespace ns, with the
// default endpoint unless mode says otherwise. The environment is ignored. The time limits are
// generous, since these tests check outcomes on a machine that may be busy compiling, except the
// token time-out, which keeps its default so that the hop-limit diagnosis is the real one.
func clientIn(t *testing.T, bed *testbed.Bed, ns testbed.NS, mode imds.EndpointMode) *imds.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DialContext: bed.DialContext(ns)}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := imds.New(imds.Options{
		EndpointMode:   mode,
		HTTPClient:     &http.Client{Transport: tr},
		Getenv:         func(string) string { return "" },
		Timeout:        20 * time.Second,
		DialTimeout:    5 * time.Second,
		RequestTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	return c
}

func requireNoTokenlessGET(t *testing.T, srv *imdstest.Server) {
	t.Helper()
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			require.True(t, r.TokenSent, "tokenless GET %s from %v", r.Path, r.Remote)
		}
	}
}

func TestNetnsInstanceReadsOverIPv4AndIPv6(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{InstanceID: "i-0netns000000000a", HopLimit: 1})
	t.Cleanup(srv.Close)
	require.NoError(t, bed.ServeIMDS(srv))

	inst4, inst6 := testbed.InstanceAddrs()
	for _, tc := range []struct {
		name string
		mode imds.EndpointMode
		from netip.Addr
	}{
		// The default endpoint, no Endpoint option: safe only because the connections are
		// made inside the bed (DialContext) and the process runs under netguard.
		{"default endpoint (IPv4)", imds.EndpointModeUnset, inst4},
		{"IPv6", imds.EndpointModeIPv6, inst6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetRequests()
			id, err := clientIn(t, bed, testbed.Instance, tc.mode).InstanceID(context.Background())
			require.NoError(t, err)
			require.Equal(t, "i-0netns000000000a", id)
			reqs := srv.Requests()
			require.NotEmpty(t, reqs)
			for _, r := range reqs {
				require.Equal(t, tc.from, r.Remote.Addr(), "request came from the instance namespace")
			}
			requireNoTokenlessGET(t, srv)
		})
	}
}

func TestNetnsContainerHopLimit(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{HopLimit: 1})
	t.Cleanup(srv.Close)
	require.NoError(t, bed.ServeIMDS(srv))
	ctx := context.Background()

	// The two families wait out their time-outs side by side; the group returns when both have.
	t.Run("hop limit 1", func(t *testing.T) {
		for _, mode := range []imds.EndpointMode{imds.EndpointModeIPv4, imds.EndpointModeIPv6} {
			t.Run(mode.String(), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				_, err := clientIn(t, bed, testbed.Container, mode).InstanceID(ctx)
				t.Logf("reported after %v: %v", time.Since(start).Round(time.Millisecond), err)
				require.Error(t, err)
				require.True(t, errors.Is(err, imds.ErrHopLimit), "want ErrHopLimit, got %v", err)
				require.Contains(t, err.Error(), "2", "the message names the fix, hop limit 2")
			})
		}
	})
	requireNoTokenlessGET(t, srv)
	ctr4, ctr6 := testbed.ContainerAddrs()
	for _, r := range srv.Requests() {
		require.Contains(t, []netip.Addr{ctr4, ctr6}, r.Remote.Addr(), "request came from the container namespace")
	}

	// What modify-instance-metadata-options --http-put-response-hop-limit 2 does.
	srv.Update(func(c *imdstest.Config) { c.HopLimit = 2 })
	for _, mode := range []imds.EndpointMode{imds.EndpointModeIPv4, imds.EndpointModeIPv6} {
		id, err := clientIn(t, bed, testbed.Container, mode).InstanceID(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, id)
	}
	requireNoTokenlessGET(t, srv)
}
