package imdstest

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind is what an injected fault does to a matching request.
type FaultKind int

const (
	// FaultDelay waits Fault.Delay, then answers normally.
	FaultDelay FaultKind = iota + 1
	// FaultReset closes the connection with a TCP reset (SO_LINGER 0) without answering.
	FaultReset
	// FaultStatus answers Fault.Status (default 500) with an error page.
	FaultStatus
	// FaultHang reads the request and never answers, until the client goes away or Close.
	FaultHang
	// FaultClose closes the connection cleanly (FIN) without answering.
	FaultClose
	// FaultRedirect answers Fault.Status (default 307 Temporary Redirect) with a Location header
	// of Fault.Location. IMDS never redirects: this stands for a hostile or spoofed endpoint,
	// to test that a client does not follow it (and carry its token elsewhere).
	FaultRedirect
)

// String returns the kind's name.
func (k FaultKind) String() string {
	switch k {
	case FaultDelay:
		return "delay"
	case FaultReset:
		return "reset"
	case FaultStatus:
		return "status"
	case FaultHang:
		return "hang"
	case FaultClose:
		return "close"
	case FaultRedirect:
		return "redirect"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is an injected failure. It matches requests by method and path prefix, before any other
// check (so it applies even with the endpoint disabled), and acts on at most Count of them.
type Fault struct {
	// Method matches the request method exactly; "" matches every method.
	Method string
	// PathPrefix matches the start of the URL path; "" matches every path.
	PathPrefix string
	// Kind is what happens to a matching request; the zero Kind answers 500.
	Kind FaultKind
	// Delay is the wait of FaultDelay.
	Delay time.Duration
	// Status is the answer of FaultStatus (0 means 500) and of FaultRedirect (0 means 307).
	Status int
	// Location is the Location header of FaultRedirect's answer.
	Location string
	// Count is how many matching requests the fault acts on; 0 means every one until ClearFaults.
	Count int
}

type faultEntry struct {
	f    Fault
	left int // remaining uses when f.Count > 0
}

type faultTable struct {
	mu     sync.Mutex
	faults []*faultEntry
}

// InjectFault adds f. When several faults match a request, the one injected first acts.
func (s *Server) InjectFault(f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = append(s.faults.faults, &faultEntry{f: f, left: f.Count})
}

// ClearFaults removes every fault. Requests already held by a hang stay held until their client
// gives up or Close.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = nil
}

// match finds the first fault that applies to r and uses it up once.
func (t *faultTable) match(r *http.Request) (Fault, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, e := range t.faults {
		if e.f.Method != "" && e.f.Method != r.Method {
			continue
		}
		if !strings.HasPrefix(r.URL.Path, e.f.PathPrefix) {
			continue
		}
		if e.f.Count > 0 {
			e.left--
			if e.left <= 0 {
				t.faults = append(t.faults[:i:i], t.faults[i+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}

// applyFault acts out f; it returns false when the request should then be answered normally.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) (done bool) {
	switch f.Kind {
	case FaultDelay:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
		case <-s.closing:
		}
		// Returning without a word would make net/http send an empty 200.
		s.dropConn(w, false)
	case FaultReset:
		s.dropConn(w, true)
	case FaultClose:
		s.dropConn(w, false)
	case FaultStatus:
		code := f.Status
		if code < 100 || code > 999 {
			code = http.StatusInternalServerError
		}
		writeStatus(w, code)
	case FaultHang:
		s.hold(w, r)
	case FaultRedirect:
		code := f.Status
		if code == 0 {
			code = http.StatusTemporaryRedirect
		}
		w.Header().Set("Location", f.Location)
		writeStatus(w, code)
	default:
		writeStatus(w, http.StatusInternalServerError)
	}
	return true
}

// hold keeps a request unanswered until its client goes away or the server closes, then closes
// the connection: returning without a word would make net/http send an empty 200.
func (s *Server) hold(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
	s.dropConn(w, false)
}

// dropConn closes the request's connection without answering; with reset the kernel sends RST
// instead of FIN, which the client sees as "connection reset by peer". A writer that cannot give
// up its connection (HTTP/2, a ResponseRecorder) gets a 503 instead, the nearest thing that is
// not a panic.
func (s *Server) dropConn(w http.ResponseWriter, reset bool) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeStatus(w, http.StatusServiceUnavailable)
		return
	}
	if tc, ok := c.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// throttled answers a request over the rate limit.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, mode ThrottleMode) {
	switch mode {
	case Throttle429:
		writeStatus(w, http.StatusTooManyRequests)
	case ThrottleClose:
		s.dropConn(w, false)
	default:
		s.hold(w, r)
	}
}

// tokenBucket limits the request rate on the Config.Now clock.
type tokenBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	primed bool
}

func (b *tokenBucket) allow(t Throttle, now time.Time) bool {
	if t.RequestsPerSecond <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	burst := float64(max(t.Burst, 1))
	if !b.primed {
		b.primed, b.tokens, b.last = true, burst, now
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*t.RequestsPerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
