package imds_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

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
// default endpoint unless mode says otherwise. The environment is ignored.
func clientIn(t *testing.T, bed *testbed.Bed, ns testbed.NS, mode imds.EndpointMode) *imds.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DialContext: bed.DialContext(ns)}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := imds.New(imds.Options{
		EndpointMode: mode,
		HTTPClient:   &http.Client{Transport: tr},
		Getenv:       func(string) string { return "" },
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

	for _, tc := range []struct {
		name string
		mode imds.EndpointMode
		from string
	}{
		{"default endpoint (IPv4)", imds.EndpointModeUnset, "10.253.0.1"},
		{"IPv6", imds.EndpointModeIPv6, "fd00:ec2::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetRequests()
			id, err := clientIn(t, bed, testbed.Instance, tc.mode).InstanceID(context.Background())
			require.NoError(t, err)
			require.Equal(t, "i-0netns000000000a", id)
			reqs := srv.Requests()
			require.NotEmpty(t, reqs)
			for _, r := range reqs {
				require.Equal(t, tc.from, r.Remote.Addr().String(), "request came from the instance namespace")
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

	for _, mode := range []imds.EndpointMode{imds.EndpointModeIPv4, imds.EndpointModeIPv6} {
		_, err := clientIn(t, bed, testbed.Container, mode).InstanceID(ctx)
		require.Error(t, err)
		require.True(t, errors.Is(err, imds.ErrHopLimit), "want ErrHopLimit, got %v", err)
		require.Contains(t, err.Error(), "2", "the message names the fix, hop limit 2")
	}
	requireNoTokenlessGET(t, srv)

	// What modify-instance-metadata-options --http-put-response-hop-limit 2 does.
	srv.Update(func(c *imdstest.Config) { c.HopLimit = 2 })
	for _, mode := range []imds.EndpointMode{imds.EndpointModeIPv4, imds.EndpointModeIPv6} {
		id, err := clientIn(t, bed, testbed.Container, mode).InstanceID(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, id)
	}
	requireNoTokenlessGET(t, srv)
}
