package imdstest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sockInt reads one integer socket option of c.
func sockInt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var v int
	var gerr error
	require.NoError(t, rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }))
	require.NoError(t, gerr)
	return v
}

// tcpPair returns both ends of a loopback TCP connection on network ("tcp4" or "tcp6").
func tcpPair(t *testing.T, network, addr string) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback here (%v): this part needs one", network, err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial(network, ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	return server, client
}

func TestHopSocketSetAndRestore(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		level, opt    int
	}{
		{"tcp4", "127.0.0.1:0", unix.IPPROTO_IP, unix.IP_TTL},
		{"tcp6", "[::1]:0", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS},
	} {
		t.Run(tc.network, func(t *testing.T) {
			srv, _ := tcpPair(t, tc.network, tc.addr)
			before := sockInt(t, srv, tc.level, tc.opt)
			require.NotEqual(t, 3, before)

			h, err := newHopSocket(srv)
			require.NoError(t, err)
			require.NoError(t, h.set(3))
			assert.Equal(t, 3, sockInt(t, srv, tc.level, tc.opt))
			require.NoError(t, h.set(5))
			assert.Equal(t, 5, sockInt(t, srv, tc.level, tc.opt))
			h.restore()
			assert.Equal(t, before, sockInt(t, srv, tc.level, tc.opt), "the value before the first set")
		})
	}
}

// fill writes to srv until the peer's receive buffer and srv's send buffer are full, so that
// data stays unacknowledged as an answer dropped on the way would. It returns the bytes written.
func fill(t *testing.T, srv net.Conn) int {
	t.Helper()
	chunk := bytes.Repeat([]byte("x"), 1<<16)
	require.NoError(t, srv.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	total := 0
	for i := 0; i < 1024; i++ {
		n, err := srv.Write(chunk)
		total += n
		if err != nil {
			break
		}
	}
	require.NoError(t, srv.SetWriteDeadline(time.Time{}))
	return total
}

// runRestorer runs restoreWhenAcked and waits for it, with a guard against a hang.
func runRestorer(t *testing.T, s *Server, cs *connState, gen uint64, before func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.restoreWhenAcked(cs, gen); close(done) }()
	if before != nil {
		before()
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second): // deadlock guard, not a timing assertion
		t.Fatal("restoreWhenAcked did not return")
	}
}

func TestRestoreWaitsForAcknowledgement(t *testing.T) {
	s := NewUnstartedServer(Config{})
	srv, cli := tcpPair(t, "tcp4", "127.0.0.1:0")
	before := sockInt(t, srv, unix.IPPROTO_IP, unix.IP_TTL)
	cs := &connState{conn: srv}

	gen, ok := cs.setHops(2)
	require.True(t, ok)
	written := fill(t, srv)
	n, err := cs.sock.unacked()
	require.NoError(t, err)
	require.Positive(t, n, "send queue must hold unacknowledged data for this test")

	runRestorer(t, s, cs, gen, func() {
		// The client reads everything; its acknowledgements empty the send queue.
		_, err := io.CopyN(io.Discard, cli, int64(written))
		require.NoError(t, err)
	})
	assert.Equal(t, before, sockInt(t, srv, unix.IPPROTO_IP, unix.IP_TTL), "restored once acknowledged")

	// A later answer takes over: the restorer of the earlier one leaves the socket alone.
	old, ok := cs.setHops(7)
	require.True(t, ok)
	_, ok = cs.setHops(8)
	require.True(t, ok)
	runRestorer(t, s, cs, old, nil)
	assert.Equal(t, 8, sockInt(t, srv, unix.IPPROTO_IP, unix.IP_TTL))

	// Never acknowledged: closing the server ends the wait and the low TTL stays, so that a
	// retransmission cannot get through where the first packet did not.
	gen, ok = cs.setHops(2)
	require.True(t, ok)
	fill(t, srv)
	runRestorer(t, s, cs, gen, s.Close)
	assert.Equal(t, 2, sockInt(t, srv, unix.IPPROTO_IP, unix.IP_TTL))
}

// hopObservation is the hop limit a token answer's socket had at a stage of the answer.
type hopObservation struct {
	stage string
	hops  int
}

// observeHopLimit records, through the test hook, the unicast TTL or hop limit of every socket a
// token answer is written on.
func observeHopLimit(t *testing.T) <-chan hopObservation {
	seen := make(chan hopObservation, 16)
	testHookHopLimit = func(stage string, c net.Conn) {
		level, opt := unix.IPPROTO_IP, unix.IP_TTL
		if c.LocalAddr().(*net.TCPAddr).IP.To4() == nil {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
		}
		rc, _ := c.(syscall.Conn).SyscallConn()
		var v int
		_ = rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), level, opt) })
		seen <- hopObservation{stage, v}
	}
	t.Cleanup(func() { testHookHopLimit = nil })
	return seen
}

func TestTokenAnswerCarriesHopLimit(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback here (%v)", tc.network, err)
			}
			seen := observeHopLimit(t)
			s := NewUnstartedServer(Config{HopLimit: 2})
			t.Cleanup(s.Close)
			go func() { _ = s.Serve(ln) }()
			base := "http://" + ln.Addr().String()

			put := func(ttlHeader string) int {
				req, err := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
				require.NoError(t, err)
				if ttlHeader != "" {
					req.Header.Set(HeaderTokenTTL, ttlHeader)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				require.NoError(t, resp.Body.Close())
				return resp.StatusCode
			}

			require.Equal(t, 200, put("60"))
			assert.Equal(t, hopObservation{"set", 2}, <-seen)
			done := <-seen
			assert.Equal(t, "restored", done.stage)
			assert.NotEqual(t, 2, done.hops, "restored after the client acknowledged")

			s.Update(func(c *Config) { c.HopLimit = 64 })
			require.Equal(t, 400, put(""), "error answers to a PUT carry the hop limit too")
			assert.Equal(t, hopObservation{"set", 64}, <-seen)
			<-seen

			resp, err := http.DefaultClient.Get(base + "/latest/meta-data/instance-id")
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, 200, resp.StatusCode)
			select {
			case o := <-seen:
				t.Fatalf("GET answer touched the hop limit: %+v", o)
			default:
			}
		})
	}
}
