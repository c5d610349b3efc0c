package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Header names of the IMDSv2 session protocol, in canonical form.
const (
	headerToken    = "X-Aws-Ec2-Metadata-Token"
	headerTokenTTL = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	tokenPath      = "/latest/api/token"
)

// maxTokenBytes bounds a token answer. Real tokens are about 56 bytes of base64.
const maxTokenBytes = 4096

// maxRefreshMargin caps how long before expiry a token is renewed.
const maxRefreshMargin = time.Minute

// secret holds a value that must never be printed: every fmt verb, String, GoString and
// slog see "[redacted]".
type secret string

const redacted = "[redacted]"

func (secret) String() string               { return redacted }
func (secret) GoString() string             { return redacted }
func (secret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redacted) }
func (secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s secret) reveal() string             { return string(s) }
func (s secret) header() []string           { return []string{string(s)} }
func (secret) LogValue() slog.Value         { return slog.StringValue(redacted) }

// tokenState is one session token and when to renew it, on the client's clock.
type tokenState struct {
	value     secret
	hdr       []string // value as a header value, shared read-only by every request
	endpoint  int      // index of the endpoint that issued it
	expires   time.Time
	refreshAt time.Time
}

// String keeps the token out of any printout of the state. The methods have value receivers so
// that a copy of the state is covered too: fmt cannot see the methods of unexported fields, so
// the state itself must never be printed field by field.
func (t tokenState) String() string {
	return "token{" + redacted + ", expires " + t.expires.Format(time.RFC3339) + "}"
}

// GoString is String, for %#v.
func (t tokenState) GoString() string { return t.String() }

// Format prints String for every verb.
func (t tokenState) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }

// parseToken checks a token answer: non-empty, at most maxTokenBytes, and only visible ASCII, so
// that it can be sent back as a header value unchanged.
func parseToken(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errors.New("empty token")
	}
	if len(b) > maxTokenBytes {
		return "", errors.New("token longer than " + strconv.Itoa(maxTokenBytes) + " bytes")
	}
	for _, ch := range b {
		if ch <= ' ' || ch >= 0x7f {
			return "", errors.New("token contains a byte that cannot go in a header")
		}
	}
	return string(b), nil
}

// parseTTLHeader parses the TTL IMDS echoes with a token: a decimal number of seconds, 1..21600.
func parseTTLHeader(v string) (time.Duration, error) {
	if v == "" || len(v) > 5 {
		return 0, errors.New("token TTL " + strconv.Quote(v) + " is not 1..21600")
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, errors.New("token TTL " + strconv.Quote(v) + " is not a decimal number")
		}
		n = n*10 + int(v[i]-'0')
	}
	d := time.Duration(n) * time.Second
	if d < time.Second || d > MaxTokenTTL {
		return 0, errors.New("token TTL " + strconv.Quote(v) + " is not 1..21600")
	}
	return d, nil
}

// refreshMargin is how long before expiry a token of lifetime ttl is renewed: a tenth of it, at
// most a minute, so that a token is never used in its last moments (the clocks of client and
// service, and the time a request spends in flight, all differ a little).
func refreshMargin(ttl time.Duration) time.Duration {
	return min(ttl/10, maxRefreshMargin)
}

// token returns a fresh token, asking IMDS for one if the current one is missing, due for renewal
// or equal to stale (rejected). Concurrent callers share one request. The request runs detached
// from ctx, so that a caller that gives up does not fail the others; its own budget is
// max(deadline, now+Timeout).
func (c *Client) token(ctx context.Context, stale *tokenState, deadline time.Time) (*tokenState, error) {
	ch := c.flight.DoChan("token", func() (any, error) {
		// Another flight may have finished between the caller's look and this one.
		if cur := c.tok.Load(); cur != nil && cur != stale && c.cfg.now().Before(cur.refreshAt) {
			return cur, nil
		}
		if own := time.Now().Add(c.cfg.timeout); own.After(deadline) {
			deadline = own
		}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		budget := afterPatientBy(time.Until(deadline), deadline, cancel)
		defer budget.Stop()
		t, err := c.fetchToken(fctx, deadline)
		if err != nil {
			return nil, err
		}
		c.tok.Store(t)
		return t, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*tokenState), nil
	case <-ctx.Done():
		return nil, canceledError(ctx, http.MethodPut, tokenPath, c.cfg.endpoints[c.pref.Load()].base)
	}
}

// fetchToken asks the endpoints in order (the one that worked last first) until one issues a
// token. Only a refused or unroutable connection moves on to the next endpoint.
func (c *Client) fetchToken(ctx context.Context, deadline time.Time) (*tokenState, error) {
	n := len(c.cfg.endpoints)
	first := int(c.pref.Load())
	var errs []*Error
	for i := range n {
		idx := (first + i) % n
		t, next, err := c.putWithRetries(ctx, idx, deadline)
		if err == nil {
			c.pref.Store(uint32(idx))
			return t, nil
		}
		if !next {
			return nil, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	// Auto mode and both endpoints refused: report them together.
	e := *errs[0]
	e.Endpoint = errs[0].Endpoint + " and " + errs[1].Endpoint
	return nil, &e
}

// putWithRetries requests a token from one endpoint, retrying 5xx, 429 and broken connections.
// next reports an error that another endpoint might not have (refused, no route).
func (c *Client) putWithRetries(ctx context.Context, idx int, deadline time.Time) (*tokenState, bool, *Error) {
	for attempt := 1; ; attempt++ {
		t, o, err := c.putOnce(ctx, idx)
		switch o {
		case outOK:
			return t, false, nil
		case outNextEndpoint:
			return nil, true, err
		case outFinal:
			return nil, false, err
		}
		if attempt >= c.cfg.maxAttempts {
			return nil, false, err
		}
		// Retry only if a retry can still wait the full token time-out: a shorter wait could
		// not tell a lost answer from a slow one.
		d := backoff(attempt)
		if time.Until(deadline)-d < c.cfg.tokenTimeout {
			return nil, false, err
		}
		if !sleep(ctx, d) {
			return nil, false, err
		}
	}
}

// outcome says what to do after one attempt.
type outcome uint8

const (
	outOK           outcome = iota
	outRetry                // transient: try again after a back-off
	outFinal                // give up with this error
	outNextEndpoint         // the connection was refused or unroutable: try another endpoint
	outUnauthorized         // a GET was answered 401: renew the token and try again
)

// putOnce sends one token request and classifies what happened, using what the connection saw
// (httptrace): no connection is ErrUnreachable; a connection, a request written and no answer
// within TokenTimeout is ErrHopLimit.
func (c *Client) putOnce(ctx context.Context, idx int) (*tokenState, outcome, *Error) {
	a := c.recordPut(ctx, &c.cfg.endpoints[idx])
	if a.err != nil {
		o, err := c.classifyPutFailure(&a, &c.cfg.endpoints[idx])
		return nil, o, err
	}
	return c.classifyPutAnswer(&a, idx)
}

// putAttempt is what one token request saw: what the connection did (from httptrace and the
// timers) and the answer or the transport's error. Its fields are final: the request is over.
type putAttempt struct {
	resp    *http.Response // the answer, its body read (200) or drained, and closed; nil if none
	body    []byte         // the body of a 200
	bodyErr error          // reading that body failed (errTooLarge: longer than maxTokenBytes)
	err     error          // the transport's error when there is no answer
	ctxErr  error          // the caller's context's error when the request ended
	issued  time.Time      // when the request was sent, on the client's clock (token expiry)

	gotConn       bool          // a connection was made
	sent          bool          // the request was written on it
	waited        time.Duration // from writing the request to the end of the attempt
	dialTimedOut  bool          // no connection within DialTimeout (a caller's dialer)
	tokenTimedOut bool          // no answer within TokenTimeout of writing the request
	peer          net.Addr      // the connection's remote address
}

// putEvidence collects what the httptrace callbacks and the timers see, on their goroutines.
type putEvidence struct {
	mu                          sync.Mutex
	gotConn, sent               bool
	dialTimedOut, tokenTimedOut bool
	peer                        net.Addr
	sentAt                      time.Time
}

// recordPut sends one token request to ep and records what happened. The request ends at the
// first of: an answer, the transport's error, ctx's end, no connection within DialTimeout (for a
// dialer of the caller's; this package's own bounds itself), no answer within TokenTimeout of
// writing the request.
func (c *Client) recordPut(ctx context.Context, ep *endpoint) putAttempt {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ev putEvidence
	dialTimer := newStoppedPatient(func() {
		ev.mu.Lock()
		fire := !ev.gotConn
		ev.dialTimedOut = fire
		ev.mu.Unlock()
		if fire {
			cancel()
		}
	})
	defer dialTimer.Stop()
	tokenTimer := newStoppedPatient(func() {
		ev.mu.Lock()
		ev.tokenTimedOut = true
		ev.mu.Unlock()
		cancel()
	})
	defer tokenTimer.Stop()

	hdr := http.Header{headerTokenTTL: c.ttlHeader, "User-Agent": c.uaHeader}
	req := newRequest(httptrace.WithClientTrace(actx, c.putTrace(&ev, dialTimer, tokenTimer)), http.MethodPut, ep, tokenPath, hdr)
	a := putAttempt{issued: c.cfg.now()}
	a.resp, a.err = c.hc.Do(req)
	if a.err == nil {
		tokenTimer.Stop()
	}
	a.ctxErr = ctx.Err()
	ev.mu.Lock()
	a.gotConn, a.sent, a.dialTimedOut, a.tokenTimedOut, a.peer = ev.gotConn, ev.sent, ev.dialTimedOut, ev.tokenTimedOut, ev.peer
	sentAt := ev.sentAt
	ev.mu.Unlock()
	if a.sent {
		a.waited = time.Since(sentAt)
	}
	if a.err != nil {
		return a
	}
	if a.resp.StatusCode == http.StatusOK {
		a.body, a.bodyErr = readBody(a.resp, maxTokenBytes)
	} else {
		drain(a.resp)
	}
	a.resp.Body.Close()
	return a
}

// putTrace returns the httptrace callbacks that record a token request's connection into ev and
// run its timers. This package's dialer bounds its own connection attempts (patientDialer), from
// when the attempt starts. A caller's HTTPClient has a dialer this package does not set: for it
// the dial timer starts with the request, and restarts at ConnectStart if the dialer reports
// one, so that its own set-up (entering a network namespace, say) does not count.
func (c *Client) putTrace(ev *putEvidence, dialTimer, tokenTimer *patientTimer) *httptrace.ClientTrace {
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			dialTimer.Stop()
			ev.mu.Lock()
			ev.gotConn = true
			ev.peer = info.Conn.RemoteAddr()
			ev.mu.Unlock()
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err != nil {
				return
			}
			ev.mu.Lock()
			ev.sent, ev.sentAt = true, time.Now()
			ev.mu.Unlock()
			tokenTimer.Reset(c.cfg.tokenTimeout)
		},
	}
	if !c.ownDialer {
		trace.ConnectStart = func(_, _ string) {
			ev.mu.Lock()
			connected := ev.gotConn
			ev.mu.Unlock()
			if !connected {
				dialTimer.Reset(c.cfg.dialTimeout)
			}
		}
		dialTimer.Reset(c.cfg.dialTimeout)
	}
	return trace
}

// classifyPutFailure says what a token request that got no answer means, from what its
// connection did: sent and unanswered is the hop limit; never connected is unreachable (another
// endpoint may do better if the connection was refused or unroutable); connected and broken is
// worth a retry.
func (c *Client) classifyPutFailure(a *putAttempt, ep *endpoint) (outcome, *Error) {
	switch {
	case a.tokenTimedOut || (a.sent && a.ctxErr != nil):
		return outFinal, newError(KindHopLimit, http.MethodPut, tokenPath, ep.base, 0, errNoAnswer,
			"the token request got no answer within "+a.waited.Round(time.Millisecond).String()+
				" although the connection was accepted and the request sent: "+adviceHopLimit)
	case a.dialTimedOut || (!a.gotConn && isTimeout(a.err)):
		return outFinal, c.transportError(http.MethodPut, tokenPath, ep, errNoConnection, false, true, "")
	case !a.gotConn && a.ctxErr != nil:
		return outFinal, newError(KindUnreachable, http.MethodPut, tokenPath, ep.base, 0, a.ctxErr,
			"no TCP connection before the time budget ran out: "+adviceUnreachable)
	case !a.gotConn:
		o := outFinal
		if isDialError(a.err) {
			o = outNextEndpoint
		}
		return o, c.transportError(http.MethodPut, tokenPath, ep, netCause(a.err), false, false, "")
	}
	return outRetry, c.transportError(http.MethodPut, tokenPath, ep, netCause(a.err), true, false, "the token answer")
}

// classifyPutAnswer turns the answer to a token request into a token, or says what its status
// means.
func (c *Client) classifyPutAnswer(a *putAttempt, idx int) (*tokenState, outcome, *Error) {
	ep := &c.cfg.endpoints[idx]
	put := func(kind Kind, cause error, msg string) *Error {
		return newError(kind, http.MethodPut, tokenPath, ep.base, a.resp.StatusCode, cause, msg)
	}
	switch code := a.resp.StatusCode; {
	case code == http.StatusOK:
		return c.newToken(a, idx)
	case isRedirect(code):
		return nil, outFinal, redirectError(http.MethodPut, tokenPath, ep.base, a.resp)
	case code == http.StatusBadRequest:
		return nil, outFinal, put(KindTokenRefused, nil,
			"answered 400 Bad Request to the token request (TTL "+c.ttlHeader[0]+
				" s; IMDS accepts 1 to 21600): something between this process and IMDS altered the request")
	case code == http.StatusForbidden && proxied(ep, a.peer):
		return nil, outFinal, put(KindTokenRefused, nil,
			"answered 403 Forbidden to the token request, which went through "+a.peer.String()+": "+adviceProxy)
	case code == http.StatusForbidden:
		return nil, outFinal, put(KindDisabled, nil, "answered 403 Forbidden to the token request: "+
			adviceDisabled+"; or, if a proxy adds X-Forwarded-For on the way: "+adviceProxy)
	case code == http.StatusNotFound:
		return nil, outFinal, put(KindTokenRefused, nil,
			"answered 404 Not Found to the token request: this service does not offer IMDSv2 session "+
				"tokens, so it is not EC2's IMDS (an old emulator, or another cloud's metadata service); "+
				"point the client at an IMDSv2 endpoint")
	case code == http.StatusMethodNotAllowed:
		return nil, outFinal, put(KindTokenRefused, nil,
			"answered 405 Method Not Allowed to the token request: a proxy or filter between this "+
				"process and IMDS blocks PUT; allow PUT "+tokenPath)
	case code == http.StatusTooManyRequests || code >= 500:
		return nil, outRetry, statusError(http.MethodPut, tokenPath, ep.base, code, 1)
	}
	return nil, outFinal, put(KindTokenRefused, nil, "answered "+statusLine(a.resp.StatusCode)+
		" to the token request: the endpoint may not be EC2's IMDS")
}

// newToken checks a 200 answer to a token request and makes the token of it, valid for the TTL
// asked or the shorter one IMDS echoed, from when the request was sent.
func (c *Client) newToken(a *putAttempt, idx int) (*tokenState, outcome, *Error) {
	base := c.cfg.endpoints[idx].base
	switch {
	case a.bodyErr == errTooLarge:
		return nil, outFinal, malformed(http.MethodPut, tokenPath, base, "session token",
			errors.New("longer than "+strconv.Itoa(maxTokenBytes)+" bytes"))
	case a.bodyErr != nil:
		return nil, outRetry, newError(KindServer, http.MethodPut, tokenPath, base, http.StatusOK, a.bodyErr,
			"reading the token answer failed: "+a.bodyErr.Error())
	}
	tok, perr := parseToken(a.body)
	if perr != nil {
		return nil, outFinal, malformed(http.MethodPut, tokenPath, base, "session token", perr)
	}
	ttl := c.cfg.ttl
	if echoed, err := parseTTLHeader(a.resp.Header.Get(headerTokenTTL)); err == nil && echoed < ttl {
		// A proxy or an older service may grant less than asked; trust the shorter lifetime.
		// A missing or unreadable header is not worth failing over: the asked TTL stands.
		ttl = echoed
	}
	exp := a.issued.Add(ttl)
	return &tokenState{value: secret(tok), hdr: []string{tok}, endpoint: idx, expires: exp,
		refreshAt: exp.Add(-refreshMargin(ttl))}, outOK, nil
}

var (
	errNoAnswer     = errors.New("no answer to the token request")
	errNoConnection = errors.New("connect time-out")
)

// proxied reports whether the connection went somewhere other than the endpoint's address, which
// means a proxy was in the way.
func proxied(ep *endpoint, peer net.Addr) bool {
	if !ep.addr.IsValid() || peer == nil {
		return false
	}
	ta, ok := peer.(*net.TCPAddr)
	if !ok {
		return false
	}
	a, ok := netipAddr(ta.IP)
	return ok && netip.AddrPortFrom(a, uint16(ta.Port)) != ep.addr
}
