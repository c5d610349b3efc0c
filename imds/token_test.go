package imds

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenReusedUntilRefresh(t *testing.T) {
	clock := newFakeClock()
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	c := newHookedClient(t, srv, hooks{now: clock.Now}, func(o *Options) {
		relaxed(o)
		o.TokenTTL = 100 * time.Second // renewed 10 s before expiry
	})
	ctx := context.Background()
	for range 5 {
		_, err := c.InstanceID(ctx)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, countRequests(srv, "PUT", tokenPath), "one token for many calls")

	clock.Advance(89 * time.Second)
	_, err := c.InstanceID(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, countRequests(srv, "PUT", tokenPath), "11 s left: not yet renewed")

	clock.Advance(2 * time.Second)
	_, err = c.InstanceID(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, countRequests(srv, "PUT", tokenPath), "9 s left: renewed")
	requireNoIMDSv1(t, srv)
}

// TestTokenOnePutForConcurrentCallers has 100 goroutines call at the moment the token is due for
// renewal; exactly one PUT may go out.
func TestTokenOnePutForConcurrentCallers(t *testing.T) {
	clock, srv, c := tokenAfterOneRead(t)
	ctx := context.Background()
	require.Equal(t, 1, countRequests(srv, "PUT", tokenPath))

	clock.Advance(DefaultTokenTTL) // expired on the client's clock
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 100 {
		wg.Go(func() {
			<-start
			if _, err := c.InstanceID(ctx); err != nil {
				failures.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Zero(t, failures.Load())
	assert.Equal(t, 2, countRequests(srv, "PUT", tokenPath), "exactly one PUT for 100 callers")
	// More than 101 GETs only if some timed out on a loaded machine and were retried.
	assert.GreaterOrEqual(t, countRequests(srv, "GET", pathInstanceID), 101)
	requireNoIMDSv1(t, srv)
}

func TestToken401DropsAndRetriesOnce(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	c := newTestClient(t, srv, relaxed)
	ctx := context.Background()
	_, err := c.InstanceID(ctx)
	require.NoError(t, err)
	old := c.tok.Load()

	srv.InvalidateTokens() // as after a stop and start
	id, err := c.InstanceID(ctx)
	require.NoError(t, err)
	assert.Equal(t, "i-0123456789abcdef0", id)
	assert.Equal(t, 2, countRequests(srv, "PUT", tokenPath))
	assert.NotSame(t, old, c.tok.Load(), "the rejected token is replaced")
	requireNoIMDSv1(t, srv)
}

func TestTokenUsesShorterEchoedTTL(t *testing.T) {
	var ttlAsked atomic.Value
	emu := newEmulator(t, imdstest.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			ttlAsked.Store(r.Header.Get(headerTokenTTL))
			// A service that grants less than asked, and says so.
			r.Header.Set(headerTokenTTL, "60")
			w.Header().Set(headerTokenTTL, "60")
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	clock := newFakeClock()
	c, err := newClient(Options{Endpoint: srv.URL, Getenv: noEnv, TokenTTL: 3600 * time.Second}, hooks{now: clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { closeIdle(c) })
	_, err = c.InstanceID(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "3600", ttlAsked.Load())
	tok := c.tok.Load()
	require.NotNil(t, tok)
	assert.Equal(t, clock.Now().Add(60*time.Second), tok.expires)
	assert.Equal(t, clock.Now().Add(54*time.Second), tok.refreshAt)
}

func TestTokenRenewalFailureKeepsUsableToken(t *testing.T) {
	clock, srv, c := tokenAfterOneRead(t)
	ctx := context.Background()
	clock.Advance(DefaultTokenTTL - 30*time.Second) // within the renewal margin, not expired
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultStatus, Status: 500})
	_, err := c.InstanceID(ctx)
	require.NoError(t, err, "the old token still works while renewal fails")
	srv.ClearFaults()
	_, err = c.InstanceID(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, countRequests(srv, "PUT", tokenPath), "1 + 3 failed attempts + 1")
	requireNoIMDSv1(t, srv)
}

func TestTokenTTLValidation(t *testing.T) {
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
		hdr string
	}{
		{0, true, "21600"},
		{time.Second, true, "1"},
		{1500 * time.Millisecond, true, "1"},
		{MaxTokenTTL, true, "21600"},
		{999 * time.Millisecond, false, ""},
		{-time.Second, false, ""},
		{MaxTokenTTL + time.Second, false, ""},
	} {
		c, err := New(Options{TokenTTL: tc.ttl, Getenv: noEnv})
		if !tc.ok {
			require.Error(t, err, "ttl %v", tc.ttl)
			assert.Contains(t, err.Error(), "TokenTTL")
			continue
		}
		require.NoError(t, err, "ttl %v", tc.ttl)
		assert.Equal(t, tc.hdr, c.ttlHeader[0])
	}
}

func TestRefreshMargin(t *testing.T) {
	assert.Equal(t, time.Minute, refreshMargin(MaxTokenTTL))
	assert.Equal(t, 30*time.Second, refreshMargin(300*time.Second))
	assert.Equal(t, 100*time.Millisecond, refreshMargin(time.Second))
}

// TestTokenCallerGivesUpOthersGetToken checks that the token request is not tied to the first
// caller's context: that caller leaves early, the next one still gets the token.
func TestTokenCallerGivesUpOthersGetToken(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{})
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultDelay, Delay: 300 * time.Millisecond, Count: 1})
	c := newTestClient(t, srv, relaxed)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.InstanceID(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = c.InstanceID(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, countRequests(srv, "PUT", tokenPath), "the second caller joined the first PUT")
}

// TestTokenShapesAreOpaque: the emulator issues tokens shaped like real ones ("AQAE..."), but the
// client must carry any token a service issues unchanged and print none of them.
func TestTokenShapesAreOpaque(t *testing.T) {
	for _, tok := range []string{
		"t0k",
		"AQAEAA-real_looking_but_not_emulated=",
		"opaque.token~with+base64/std=chars==",
		strings.Repeat("Z", maxTokenBytes),
	} {
		t.Run(strconv.Itoa(len(tok)), func(t *testing.T) {
			var got atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut {
					_, _ = w.Write([]byte(tok))
					return
				}
				got.Store(r.Header.Get(headerToken))
				switch {
				case r.Header.Get(headerToken) != tok:
					w.WriteHeader(http.StatusUnauthorized)
				case r.URL.Path != "/latest/meta-data/instance-id":
					w.WriteHeader(http.StatusNotFound)
				default:
					_, _ = w.Write([]byte("i-0opaque00000000"))
				}
			}))
			t.Cleanup(srv.Close)
			c, err := New(Options{Endpoint: srv.URL, Getenv: noEnv, Timeout: 20 * time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { closeIdle(c) })
			id, err := c.InstanceID(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "i-0opaque00000000", id)
			assert.Equal(t, tok, got.Load())
			_, err = c.Get(context.Background(), "no/such/path")
			require.ErrorIs(t, err, ErrNotFound)
			printed := fmt.Sprintf("%v %+v %#v %s", c, c, c.tok.Load(), err)
			assert.NotContains(t, printed, tok)
		})
	}
}

// TestClassifyPutFailure: the classification is a function of what the attempt saw, so every
// combination can be checked without a network.
func TestClassifyPutFailure(t *testing.T) {
	c, err := New(Options{Endpoint: "http://127.0.0.1:1", Getenv: noEnv})
	require.NoError(t, err)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		a    putAttempt
		o    outcome
		kind Kind
		text string
	}{
		{"sent, no answer in time", putAttempt{err: context.Canceled, gotConn: true, sent: true, tokenTimedOut: true,
			waited: 1234567 * time.Microsecond}, outFinal, KindHopLimit, "no answer within 1.235s"},
		{"sent, budget ran out", putAttempt{err: context.Canceled, ctxErr: context.DeadlineExceeded, gotConn: true, sent: true},
			outFinal, KindHopLimit, "HttpPutResponseHopLimit"},
		{"dial timer", putAttempt{err: context.Canceled, dialTimedOut: true}, outFinal, KindUnreachable, "no TCP connection within 250ms"},
		{"budget ran out before a connection", putAttempt{err: context.Canceled, ctxErr: context.DeadlineExceeded},
			outFinal, KindUnreachable, "no TCP connection before the time budget ran out"},
		{"refused", putAttempt{err: refused}, outNextEndpoint, KindUnreachable, "cannot connect: dial tcp: connection refused"},
		{"connected, then broken", putAttempt{err: io.ErrUnexpectedEOF, gotConn: true}, outRetry, KindServer,
			"the connection broke before the token answer: unexpected EOF"},
	} {
		o, e := c.classifyPutFailure(&tc.a, &c.cfg.endpoints[0])
		assert.Equal(t, tc.o, o, tc.name)
		require.NotNil(t, e, tc.name)
		assert.Equal(t, tc.kind, e.Kind, tc.name)
		assert.Contains(t, e.Error(), tc.text, tc.name)
	}
}

// tokenAfterOneRead is a client on a hand-moved clock, of an emulator that requires tokens,
// after one read: it holds one token, fetched with one PUT.
func tokenAfterOneRead(t *testing.T) (*fakeclock.Clock, *imdstest.Server, *Client) {
	t.Helper()
	clock := newFakeClock()
	srv := newEmulator(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	c := newHookedClient(t, srv, hooks{now: clock.Now}, relaxed)
	_, err := c.InstanceID(context.Background())
	require.NoError(t, err)
	return clock, srv, c
}
