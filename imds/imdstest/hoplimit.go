package imdstest

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// The hop limit is what makes IMDSv2 fail inside containers: IMDS sends the answer to a token PUT
// with an IP TTL (IPv6 hop limit) equal to the instance's HttpPutResponseHopLimit, every router
// on the way back (a docker bridge, a pod network) decrements it, and at zero the packet is
// dropped silently, so the client sees its PUT hang while tokenless GETs still work. The emulator
// reproduces this by setting IP_TTL / IPV6_UNICAST_HOPS on the accepted socket before it writes
// the answer. On loopback nothing routes, so the effect is only visible across network
// namespaces (internal/testbed).
//
// Restoring the old value right after the write would be wrong: the kernel builds the IP header
// of a retransmission when it sends it, so a dropped answer would reach the client on the first
// retransmission, one RTO later, instead of never. So the socket keeps the low TTL until the
// client has acknowledged every byte (the send queue is empty), and only then gets its old value
// back, so that GET answers leave with the normal TTL as on EC2. An answer that is never
// acknowledged leaves the low TTL on that connection, which can carry nothing anyway.
//
// The wait for the acknowledgement runs beside the handler, not in it: a client that got its
// answer often acknowledges it only with its next request (delayed ACK), which the handler must
// not hold up.

// drainWait bounds how long the emulator waits for the client to acknowledge a token answer.
const drainWait = 2 * time.Second

// hopSocket is the platform part: the socket options of one connection.
type hopSocket interface {
	// set sets the unicast TTL / hop limit; the first call remembers the values to restore.
	set(hops int) error
	// restore puts back the values remembered by the first set.
	restore()
	// unacked returns the bytes sent (or queued) and not yet acknowledged by the peer.
	unacked() (int, error)
}

// connState is kept per accepted connection (http.Server.ConnContext).
type connState struct {
	conn net.Conn

	mu     sync.Mutex
	sock   hopSocket // nil until the first token answer on this connection
	failed bool      // the socket cannot be tuned; stop trying
	gen    uint64    // incremented per token answer; only the latest one restores
}

type connKey struct{}

// setHops applies the hop limit for one answer and returns its generation.
func (cs *connState) setHops(hops int) (gen uint64, ok bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.failed {
		return 0, false
	}
	if cs.sock == nil {
		sock, err := newHopSocket(cs.conn)
		if err != nil {
			// Not a TCP socket the emulator can tune (another OS, a wrapped listener): the
			// answer goes out with the default TTL, which only matters outside loopback.
			cs.failed = true
			return 0, false
		}
		cs.sock = sock
	}
	if cs.sock.set(hops) != nil {
		return 0, false
	}
	cs.gen++
	return cs.gen, true
}

// writeTokenAnswer writes a complete answer to a token PUT with the configured hop limit.
func (s *Server) writeTokenAnswer(w http.ResponseWriter, r *http.Request, st *state, code int, body []byte) {
	cs, _ := r.Context().Value(connKey{}).(*connState)
	var gen uint64
	var tuned bool
	if cs != nil {
		gen, tuned = cs.setHops(st.cfg.HopLimit)
	}
	if tuned && testHookHopLimit != nil {
		testHookHopLimit("set", cs.conn)
	}
	if code >= 400 {
		writeStatus(w, code)
	} else {
		writeBody(w, code, body)
	}
	if !tuned {
		return
	}
	// Everything must be in the socket before the wait for its acknowledgement starts.
	_ = http.NewResponseController(w).Flush()
	if !s.startBackground() {
		return
	}
	go func() {
		defer s.background.Done()
		s.restoreWhenAcked(cs, gen)
	}()
}

// restoreWhenAcked restores the socket's TTL once the answer of generation gen is acknowledged,
// unless a later token answer on the same connection has taken over, the wait exceeds
// drainWait, or the server closes.
func (s *Server) restoreWhenAcked(cs *connState, gen uint64) {
	deadline := time.NewTimer(drainWait)
	defer deadline.Stop()
	pause := 50 * time.Microsecond
	for {
		cs.mu.Lock()
		if cs.gen != gen {
			cs.mu.Unlock()
			return
		}
		n, err := cs.sock.unacked()
		if err == nil && n == 0 {
			cs.sock.restore()
		}
		cs.mu.Unlock()
		if err != nil {
			return // connection gone
		}
		if n == 0 {
			if testHookHopLimit != nil {
				testHookHopLimit("restored", cs.conn)
			}
			return
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-deadline.C:
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
			return
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// testHookHopLimit lets tests read the socket options at the stages of a token answer.
var testHookHopLimit func(stage string, c net.Conn)
