package imdstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an emulated instance metadata service. Create it with NewServer (listening on
// loopback) or NewUnstartedServer plus Serve; stop it with Close. All methods are safe for
// concurrent use.
type Server struct {
	state atomic.Pointer[state]
	start time.Time // on the Config.Now clock given at creation

	updateMu sync.Mutex // serialises Update
	tokens   tokenTable
	log      requestLog
	faults   faultTable
	bucket   tokenBucket
	creds    credStore

	hs      *http.Server
	closing chan struct{} // closed by Close: every held request lets go

	lifeMu     sync.Mutex // guards closed, handlers.Add, background.Add, url
	closed     bool
	handlers   sync.WaitGroup
	background sync.WaitGroup // hop-limit restorers
	url        string
}

// state is one immutable snapshot of the configuration with what is derived from it. Update
// swaps in a new one; a request works on the snapshot it started with.
type state struct {
	cfg  Config
	tree *node

	identOnce sync.Once
	ident     identity
}

// NewServer starts an emulator on 127.0.0.1 on a free port, like httptest.NewServer. Its address
// is URL(). It never listens on anything but loopback.
func NewServer(cfg Config) *Server {
	s := NewUnstartedServer(cfg)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		// httptest.NewServer behaves the same way: a test cannot go on without a listener.
		panic("imdstest: cannot listen on 127.0.0.1: " + err.Error())
	}
	s.setURL(ln)
	go func() { _ = s.Serve(ln) }()
	return s
}

// NewUnstartedServer returns an emulator that serves nothing until Serve is called, for example on
// 169.254.169.254:80 and [fd00:ec2::254]:80 inside a network namespace.
func NewUnstartedServer(cfg Config) *Server {
	n := cfg.normalized()
	s := &Server{
		start:   n.Now(),
		closing: make(chan struct{}),
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: n.ReadHeaderTimeout,
		// ConnContext keeps the connection reachable from the handler, which needs its socket to
		// set the IP TTL of token answers.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, &connState{conn: c})
		},
		ErrorLog: discardLogger(),
	}
	s.state.Store(s.newState(n))
	return s
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("imdstest: server closed")

// Serve answers requests arriving on ln until Close. It may be called for several listeners at
// once (IPv4 and IPv6). It returns nil after Close and the listener's error otherwise. URL
// reports the first listener served if NewServer did not create one. Serve on a server that is
// already closed closes ln and returns ErrClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.lifeMu.Lock()
	closed := s.closed
	s.lifeMu.Unlock()
	if closed {
		_ = ln.Close()
		return ErrClosed
	}
	s.setURL(ln)
	err := s.hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) setURL(ln net.Listener) {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.url == "" {
		s.url = "http://" + ln.Addr().String()
	}
}

// URL returns the base URL of the server, "http://127.0.0.1:port" for NewServer, without a
// trailing slash. It is "" for an unstarted server until Serve is called.
func (s *Server) URL() string {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	return s.url
}

// Handler returns the emulator as an http.Handler, for mounting it in another server. The hop
// limit is only applied to connections accepted by Serve or NewServer.
func (s *Server) Handler() http.Handler { return s }

// Close stops every listener, closes every connection and releases requests that are held by a
// hang fault, a delay or drop throttling. It returns once all handlers have finished, which is
// promptly. Close may be called more than once.
func (s *Server) Close() {
	s.lifeMu.Lock()
	first := !s.closed
	s.closed = true
	s.lifeMu.Unlock()
	// Connections first, so that held requests see their connection gone rather than a chance
	// to answer; then the signal for handlers mounted in other servers through Handler.
	_ = s.hs.Close()
	if first {
		close(s.closing)
	}
	s.handlers.Wait()
	s.background.Wait()
}

// Update changes the configuration while the server runs, the way
// modify-instance-metadata-options changes an instance. fn gets a copy of the current Config;
// defaults are filled in again afterwards. Requests already being answered finish with the old
// configuration. Tokens, role credentials and the start time of the notice timers are kept.
func (s *Server) Update(fn func(*Config)) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	c := s.state.Load().cfg.normalized()
	fn(&c)
	s.state.Store(s.newState(c.normalized()))
}

// Config returns a copy of the current configuration, defaults filled in.
func (s *Server) Config() Config {
	return s.state.Load().cfg.normalized()
}

// InvalidateTokens forgets every issued token, so that the next request carrying one gets 401, as
// after a stop and start of the instance.
func (s *Server) InvalidateTokens() { s.tokens.reset() }

func (s *Server) newState(c Config) *state {
	st := &state{cfg: c}
	st.tree = s.buildTree(st)
	return st
}

// enter registers a running handler; it fails once Close has begun, so that the WaitGroup is
// never added to while Close waits on it.
func (s *Server) enter() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

// startBackground registers a goroutine that Close must wait for; it fails once Close has begun.
func (s *Server) startBackground() bool {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return false
	}
	s.background.Add(1)
	return true
}

// ServeHTTP answers one request as IMDS would. Checks run in this order: injected faults,
// throttling, HttpEndpoint, the token path, method, token, path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeStatus(w, http.StatusServiceUnavailable)
		return
	}
	defer s.handlers.Done()

	st := s.state.Load()
	now := st.cfg.Now()
	sw := &statusWriter{ResponseWriter: w, log: &s.log, entry: s.log.add(r, now, st.cfg.RequestLogLimit)}
	defer s.log.done(sw.entry)

	if f, ok := s.faults.match(r); ok {
		if done := s.applyFault(sw, r, f); done {
			return
		}
		// After a delay the answer reflects the configuration and clock of its sending time.
		st = s.state.Load()
		now = st.cfg.Now()
	}
	if !s.bucket.allow(st.cfg.Throttle, now) {
		s.throttled(sw, r, st.cfg.Throttle.Mode)
		return
	}
	if st.cfg.EndpointDisabled {
		writeStatus(sw, http.StatusForbidden)
		return
	}

	version, rest := splitVersion(r.URL.Path)
	if rest == "api/token" && version != "" {
		switch {
		case version == "latest":
			s.serveToken(sw, r, st)
		default:
			// Versioned token paths exist in no API version; IMDS refuses them with 403.
			writeStatus(sw, http.StatusForbidden)
		}
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Unverified: what IMDS answers to other methods on metadata paths. 405 is what an HTTP
		// server says, and clients treat it as an error either way.
		w.Header().Set("Allow", "GET, HEAD")
		writeStatus(sw, http.StatusMethodNotAllowed)
		return
	}
	if tok, sent := r.Header[http.CanonicalHeaderKey(HeaderToken)]; sent {
		if len(tok) != 1 || !s.tokens.valid(tok[0], now) {
			writeStatus(sw, http.StatusUnauthorized)
			return
		}
	} else if st.cfg.HTTPTokens == TokensRequired {
		writeStatus(sw, http.StatusUnauthorized)
		return
	}

	body, ok := st.lookup(r.URL.Path, now)
	if !ok {
		writeStatus(sw, http.StatusNotFound)
		return
	}
	writeBody(sw, http.StatusOK, body)
}

// statusWriter records the status in the request log as the header is written, before the
// client can see it. Unwrap lets http.ResponseController reach Flush and Hijack underneath.
type statusWriter struct {
	http.ResponseWriter
	log     *requestLog
	entry   *Request
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		w.log.setStatus(w.entry, code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeBody writes a complete answer with an explicit Content-Length, so that nothing is left
// for net/http to write after a Flush (the hop limit must cover the whole answer).
func writeBody(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Server", "EC2ws")
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// writeStatus answers code with the small XHTML page IMDS sends with its errors.
func writeStatus(w http.ResponseWriter, code int) {
	text := strconv.Itoa(code) + " - " + http.StatusText(code)
	w.Header().Set("Content-Type", "text/html")
	writeBody(w, code, []byte(`<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
		 "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>`+text+`</title>
 </head>
 <body>
  <h1>`+text+`</h1>
 </body>
</html>
`))
}
