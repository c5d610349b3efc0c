package imds

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenlessGETs counts the IMDSv1 requests srv received.
func tokenlessGETs(srv *imdstest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == "GET" && !r.TokenSent {
			n++
		}
	}
	return n
}

func TestFallbackReportedAndNotSticky(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  imdstest.Fault
		reason error
	}{
		{"hop limit", imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang}, ErrHopLimit},
		{"403", imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 403}, ErrDisabled},
		{"404", imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 404}, ErrTokenRefused},
		{"405", imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 405}, ErrTokenRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensOptional})
			srv.InjectFault(tc.fault)
			var mu sync.Mutex
			var events []Fallback
			c := newTestClient(t, srv, func(o *Options) {
				relaxed(o)
				o.TokenTimeout = 300 * time.Millisecond
				o.AllowIMDSv1 = true
				o.OnFallback = func(f Fallback) {
					mu.Lock()
					events = append(events, f)
					mu.Unlock()
				}
			})
			ctx := context.Background()
			for i := 1; i <= 2; i++ {
				id, err := c.InstanceID(ctx)
				require.NoError(t, err)
				assert.Equal(t, "i-0123456789abcdef0", id)
				assert.Equal(t, uint64(i), c.Fallbacks())
				assert.Equal(t, i, countRequests(srv, "PUT", tokenPath), "each call tries a token first")
				assert.Equal(t, i, tokenlessGETs(srv))
			}
			mu.Lock()
			require.Len(t, events, 2)
			assert.Equal(t, "InstanceID", events[0].Op, "Op names the method that fell back")
			assert.Equal(t, pathInstanceID, events[0].Path)
			assert.True(t, strings.HasPrefix(events[0].String(), "InstanceID: GET "+pathInstanceID+" at "+srv.URL()+
				" without a token (IMDSv1), because imds: PUT "), events[0].String())
			assert.Equal(t, srv.URL(), events[0].Endpoint)
			assert.ErrorIs(t, events[0].Reason, tc.reason)
			mu.Unlock()

			// The instance is fixed: the very next call uses a token.
			srv.ClearFaults()
			_, err := c.InstanceID(ctx)
			require.NoError(t, err)
			assert.Equal(t, uint64(2), c.Fallbacks())
			assert.Equal(t, 2, tokenlessGETs(srv))
		})
	}
}

func TestFallbackForbiddenByEnvironment(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensOptional})
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 404})
	called := false
	c := newTestClient(t, srv, func(o *Options) {
		relaxed(o)
		o.AllowIMDSv1 = true
		o.OnFallback = func(Fallback) { called = true }
		o.Getenv = envMap(map[string]string{EnvV1Disabled: "true"})
	})
	_, err := c.InstanceID(context.Background())
	require.ErrorIs(t, err, ErrTokenRefused)
	assert.False(t, called)
	assert.Zero(t, c.Fallbacks())
	requireNoIMDSv1(t, srv)
}

func TestFallbackRefusedByInstanceReturnsTokenError(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang})
	c := newTestClient(t, srv, func(o *Options) {
		relaxed(o)
		o.TokenTimeout = 300 * time.Millisecond
		o.AllowIMDSv1 = true
	})
	_, err := c.InstanceID(context.Background())
	require.ErrorIs(t, err, ErrHopLimit, "the tokenless GET got 401; the hop limit is the real problem")
	assert.Equal(t, uint64(1), c.Fallbacks())
}

func TestNoFallbackForOtherFailures(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensOptional})
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 400})
	c := newTestClient(t, srv, func(o *Options) {
		relaxed(o)
		o.AllowIMDSv1 = true
	})
	_, err := c.InstanceID(context.Background())
	require.ErrorIs(t, err, ErrTokenRefused)
	assert.Zero(t, c.Fallbacks())
	requireNoIMDSv1(t, srv)
}
