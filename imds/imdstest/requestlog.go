package imdstest

import (
	"io"
	"log"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Request is one entry of the request log. It never holds a token value, a header value other
// than the User-Agent, or a body.
type Request struct {
	Time   time.Time // arrival, on the Config.Now clock
	Method string
	Path   string // URL path as received, without the query
	// TokenSent says the request carried X-aws-ec2-metadata-token. A GET answered 200 without it
	// is an IMDSv1 call (what CloudWatch counts as MetadataNoToken).
	TokenSent bool
	// Forwarded says the request carried X-Forwarded-For.
	Forwarded bool
	// Remote is the client's address, IPv4 unmapped; invalid if RemoteAddr was not an address.
	Remote netip.AddrPort
	// Status is the answer's status code; 0 while the request is held and for requests that got
	// no answer (hang, drop, reset, close).
	Status    int
	UserAgent string
}

// IMDSv1 reports whether the request was a tokenless GET that was answered 200.
func (r Request) IMDSv1() bool {
	return !r.TokenSent && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		r.Status == http.StatusOK
}

// MaxLoggedRequests is the default of Config.RequestLogLimit.
const MaxLoggedRequests = 10000

// DefaultReadHeaderTimeout is the default of Config.ReadHeaderTimeout.
const DefaultReadHeaderTimeout = 10 * time.Second

type requestLog struct {
	mu      sync.Mutex
	entries []*Request
	// followers are called with each request as its handling ends (see Server.Follow); the
	// request log drops its oldest entries, so a reader of Requests that polls can lose or
	// repeat entries, a follower cannot.
	followers map[int]func(Request)
	nextID    int
}

// add appends r; at limit entries, the oldest tenth is dropped first.
func (l *requestLog) add(r *http.Request, now time.Time, limit int) *Request {
	e := &Request{
		Time:      now,
		Method:    r.Method,
		Path:      r.URL.Path,
		Forwarded: len(r.Header.Values("X-Forwarded-For")) > 0,
		UserAgent: r.UserAgent(),
	}
	_, e.TokenSent = r.Header[http.CanonicalHeaderKey(HeaderToken)]
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		e.Remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= limit {
		// Drop the oldest tenth at once, so that a long run does not copy the log per request.
		n := copy(l.entries, l.entries[len(l.entries)-limit+max(limit/10, 1):])
		clear(l.entries[n:])
		l.entries = l.entries[:n]
	}
	l.entries = append(l.entries, e)
	return e
}

func (l *requestLog) setStatus(e *Request, status int) {
	l.mu.Lock()
	e.Status = status
	l.mu.Unlock()
}

// done hands e, whose handling has ended, to the followers.
func (l *requestLog) done(e *Request) {
	l.mu.Lock()
	r := *e
	fs := make([]func(Request), 0, len(l.followers))
	for _, f := range l.followers {
		fs = append(fs, f)
	}
	l.mu.Unlock()
	for _, f := range fs {
		f(r)
	}
}

// Follow calls fn with every request whose handling ends from now on until stop is called:
// exactly once per request, with its final status (0 for a request that got no answer: held,
// dropped, reset), from the goroutine that served it, so that fn may be called concurrently and
// must not block for long. Unlike Requests, which keeps a bounded log, nothing is lost or
// repeated however many requests come. Requests that are being handled when Follow is called
// are passed on too when they end.
func (s *Server) Follow(fn func(Request)) (stop func()) {
	l := &s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.followers == nil {
		l.followers = make(map[int]func(Request))
	}
	id := l.nextID
	l.nextID++
	l.followers[id] = fn
	return func() {
		l.mu.Lock()
		delete(l.followers, id)
		l.mu.Unlock()
	}
}

// Requests returns a copy of the request log, oldest first, including requests still being held.
func (s *Server) Requests() []Request {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	out := make([]Request, len(s.log.entries))
	for i, e := range s.log.entries {
		out[i] = *e
	}
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.log.mu.Lock()
	s.log.entries = nil
	s.log.mu.Unlock()
}

// discardLogger keeps net/http's own messages (client hang-ups during held requests, for
// instance) out of test output.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
