package imdstest_test

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestServeSeveralListeners(t *testing.T) {
	s := imdstest.NewUnstartedServer(imdstest.Config{InstanceID: "i-0both"})
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	lns := []net.Listener{ln4}
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		lns = append(lns, ln6)
	} else {
		t.Logf("no IPv6 loopback (%v): serving IPv4 only", err)
	}
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- s.Serve(ln) }()
	}
	for _, ln := range lns {
		url := "http://" + ln.Addr().String()
		status, err := try(context.Background(), freshClient(), "PUT", url+"/latest/api/token")
		require.NoError(t, err)
		assert.Equal(t, 200, status, url)
		status, err = try(context.Background(), freshClient(), "GET", url+"/latest/meta-data/instance-id")
		require.NoError(t, err)
		assert.Equal(t, 200, status, url)
	}
	assert.Contains(t, s.URL(), "http://")

	s.Close()
	for range lns {
		assert.NoError(t, <-served, "Serve returns nil after Close")
	}
	assert.ErrorIs(t, s.Serve(ln4), imdstest.ErrClosed, "a closed server serves no more")
}
