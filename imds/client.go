package imds

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"
)

// Client reads instance metadata with IMDSv2 session tokens. Create it with New; it is safe for
// concurrent use and meant to be shared (it holds the token and a pool of connections).
type Client struct {
	cfg       config
	hc        *http.Client
	realClock bool // cfg.now is time.Now, so one clock read serves both purposes
	// ownDialer: the transport dials with patientDialer, which bounds each connection attempt
	// itself; any other dialer is bounded by putOnce from the moment of the request.
	ownDialer bool

	pref      atomic.Uint32 // index of the endpoint that issued the last token (Auto mode)
	tok       atomic.Pointer[tokenState]
	flight    singleflight.Group
	fallbacks atomic.Uint64

	ttlHeader []string // header values, shared read-only by every request
	uaHeader  []string
}

// New returns a Client configured by o, the environment (see Options for the precedence) and
// the defaults. It sends nothing: the first call asks for a token. It fails only on invalid
// options or environment values; a client disabled by AWS_EC2_METADATA_DISABLED is returned and
// every call on it fails with ErrDisabled.
func New(o Options) (*Client, error) {
	return newClient(o, hooks{})
}

// newClient is New with the test hooks h.
func newClient(o Options, h hooks) (*Client, error) {
	cfg, err := resolve(o, h)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:       cfg,
		realClock: h.now == nil,
		ttlHeader: []string{strconv.FormatInt(int64(cfg.ttl/time.Second), 10)},
		uaHeader:  []string{cfg.userAgent},
		ownDialer: o.HTTPClient == nil && h.dial == nil,
	}
	if o.HTTPClient != nil {
		// A copy, so that the caller's client keeps its own redirect policy for its other uses.
		hc := *o.HTTPClient
		c.hc = &hc
	} else {
		c.hc = &http.Client{Transport: newTransport(cfg.dialTimeout, h.dial)}
	}
	c.hc.CheckRedirect = refuseRedirect
	return c, nil
}

// refuseRedirect makes the HTTP client hand a redirect back instead of following it: IMDS never
// redirects, and following one would send the request, with its session token, to whatever host
// the answer names. The caller turns the 3xx into ErrRedirect (redirectError).
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newTransport returns the transport of the default client: keep-alive connections enough for
// many concurrent callers, no proxy (IMDS refuses tokens through one), no transparent gzip (user
// data is decompressed by UserData, within the size limit).
func newTransport(dialTimeout time.Duration, dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
	if dial == nil {
		dial = patientDialer(dialTimeout)
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        60 * time.Second,
		DisableCompression:     true,
		ExpectContinueTimeout:  0,
		MaxResponseHeaderBytes: 16 << 10,
	}
}

// String describes the client without its token.
func (c *Client) String() string {
	s := "imds.Client{endpoint: " + c.endpointText() + ", token: "
	if c.tok.Load() != nil {
		s += redacted
	} else {
		s += "none"
	}
	if c.cfg.allowV1 {
		s += ", IMDSv1 fallback allowed"
	}
	if c.cfg.disabled != "" {
		s += ", disabled"
	}
	return s + "}"
}

// GoString is String, so that %#v shows no internals.
func (c *Client) GoString() string { return c.String() }

func (c *Client) endpointText() string {
	s := c.cfg.endpoints[0].base
	for _, ep := range c.cfg.endpoints[1:] {
		s += " or " + ep.base
	}
	return s
}

// Fallbacks returns how many calls have fallen back to IMDSv1 since New.
func (c *Client) Fallbacks() uint64 { return c.fallbacks.Load() }

// The trees under /latest/ that the path arguments of Get, List, Dynamic and ListDynamic are
// relative to.
const (
	treeMetaData = "/latest/meta-data/"
	treeDynamic  = "/latest/dynamic/"
)

// Get returns the content at path, relative to /latest/meta-data/ like the AWS SDK's GetMetadata
// ("instance-id", "placement/region"); a leading "/" is ignored. A path ending in "/" returns
// the listing as IMDS sends it (List parses it). The other trees have their own calls: UserData,
// Dynamic and IdentityDocument.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.readIn(ctx, "Get", treeMetaData, path)
}

// List returns the entries of the directory at path, relative to /latest/meta-data/ as for Get
// ("" is the top; a trailing "/" is added). Subdirectories end in "/".
func (c *Client) List(ctx context.Context, path string) ([]string, error) {
	return c.listIn(ctx, "List", treeMetaData, path)
}

// Dynamic returns the content at path relative to /latest/dynamic/
// ("instance-identity/document", "instance-identity/pkcs7"), like the AWS SDK's GetDynamicData;
// a leading "/" is ignored. IdentityDocument reads and parses the identity document.
func (c *Client) Dynamic(ctx context.Context, path string) ([]byte, error) {
	return c.readIn(ctx, "Dynamic", treeDynamic, path)
}

// ListDynamic returns the entries of the directory at path relative to /latest/dynamic/ ("" is
// the top), as List does for /latest/meta-data/.
func (c *Client) ListDynamic(ctx context.Context, path string) ([]string, error) {
	return c.listIn(ctx, "ListDynamic", treeDynamic, path)
}

// readIn reads path relative to tree, for the Client method op.
func (c *Client) readIn(ctx context.Context, op, tree, path string) ([]byte, error) {
	p, err := treePath(tree, path)
	if err != nil {
		return nil, err
	}
	return c.get(ctx, op, p)
}

// listIn lists the directory at path relative to tree, for the Client method op.
func (c *Client) listIn(ctx context.Context, op, tree, path string) ([]string, error) {
	p, err := treePath(tree, path)
	if err != nil {
		return nil, err
	}
	return c.list(ctx, op, p)
}

// list lists the directory at the URL path p, for the Client method op.
func (c *Client) list(ctx context.Context, op, p string) ([]string, error) {
	if len(p) == 0 || p[len(p)-1] != '/' {
		p += "/"
	}
	b, err := c.get(ctx, op, p)
	if err != nil {
		return nil, err
	}
	entries, perr := parseListing(b)
	if perr != nil {
		return nil, malformed(http.MethodGet, p, c.baseURL(), "directory listing", perr)
	}
	return entries, nil
}

// treePath turns a caller's path, relative to tree (a URL path ending in "/"), into a URL path,
// refusing anything that could escape the tree or smuggle a query. Leading slashes are dropped:
// the path is relative whatever it starts with.
func treePath(tree, path string) (string, error) {
	seg := 0 // start of the current segment
	for i := 0; i <= len(path); i++ {
		if i < len(path) {
			ch := path[i]
			if ch < ' ' || ch == 0x7f || ch == '?' || ch == '#' || ch == '%' || ch == '\\' {
				return "", invalidArgument(http.MethodGet, "", "path "+strconv.Quote(path)+
					" contains a character that is not allowed (control, ?, #, %, \\)")
			}
			if ch != '/' {
				continue
			}
		}
		if s := path[seg:i]; s == "." || s == ".." {
			return "", invalidArgument(http.MethodGet, "", "path "+strconv.Quote(path)+
				" contains a . or .. segment")
		}
		seg = i + 1
	}
	return tree + strings.TrimLeft(path, "/"), nil
}

// get reads the URL path p for the Client method op (named in a Fallback): token, request with
// retries, one retry on 401 with a new token, and the IMDSv1 fallback when it is allowed.
func (c *Client) get(ctx context.Context, op, p string) ([]byte, error) {
	if c.cfg.disabled != "" {
		return nil, newError(KindDisabled, http.MethodGet, p, "", 0, nil,
			"IMDS access is switched off in this process: "+c.cfg.disabled+"; remove it to use IMDS")
	}
	wall := time.Now()
	now := wall
	if !c.realClock {
		now = c.cfg.now()
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = wall.Add(c.cfg.timeout)
	}

	tok := c.tok.Load()
	if tok == nil || !now.Before(tok.refreshAt) {
		fresh, err := c.token(ctx, tok, deadline)
		switch {
		case err == nil:
			tok = fresh
		case tok != nil && now.Before(tok.expires) && !isKind(err, KindCanceled):
			// Renewal failed but the old token still has a little life: use it, renew next time.
		default:
			return c.fallback(ctx, op, p, deadline, err)
		}
	}

	body, unauthorized, err := c.fetch(ctx, p, deadline, tok)
	if !unauthorized {
		return body, err
	}
	// 401: the token was revoked or expired early. Drop it (unless someone already has) and try
	// once more with a new one.
	c.tok.CompareAndSwap(tok, nil)
	fresh, terr := c.token(ctx, tok, deadline)
	if terr != nil {
		return c.fallback(ctx, op, p, deadline, terr)
	}
	body, unauthorized, err = c.fetch(ctx, p, deadline, fresh)
	if unauthorized {
		return nil, newError(KindTokenRefused, http.MethodGet, p, c.cfg.endpoints[fresh.endpoint].base, 401, nil,
			"IMDS answered 401 Unauthorized to a session token it had just issued: tokens are only "+
				"valid where they were issued; if a proxy or load balancer fronts IMDS, bypass it")
	}
	return body, err
}

// fallback handles a failed token request: an IMDSv1 request when allowed and the failure is one
// an older set-up produces, else the token error.
func (c *Client) fallback(ctx context.Context, op, p string, deadline time.Time, tokenErr error) ([]byte, error) {
	var e *Error
	if !c.cfg.allowV1 || !errors.As(tokenErr, &e) || !fallbackReason(e) {
		return nil, tokenErr
	}
	c.fallbacks.Add(1)
	if c.cfg.onFallback != nil {
		c.cfg.onFallback(Fallback{Op: op, Path: p,
			Endpoint: c.cfg.endpoints[c.pref.Load()].base, Reason: tokenErr})
	}
	body, unauthorized, err := c.fetch(ctx, p, deadline, nil)
	if unauthorized {
		// HttpTokens=required: IMDSv1 is off, and the token failure is the real problem.
		return nil, tokenErr
	}
	return body, err
}

// fallbackReason reports token failures after which the AWS SDKs fall back to IMDSv1.
func fallbackReason(e *Error) bool {
	if e.Kind == KindHopLimit {
		return true
	}
	return e.Op == http.MethodPut && (e.StatusCode == 403 || e.StatusCode == 404 || e.StatusCode == 405)
}

func isKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// fetch GETs p with tok (nil: no token, IMDSv1), retrying 5xx, 429, time-outs and broken
// connections. unauthorized reports a 401, which the caller handles.
func (c *Client) fetch(ctx context.Context, p string, deadline time.Time, tok *tokenState) (body []byte, unauthorized bool, err error) {
	idx := int(c.pref.Load())
	hdr := http.Header{"User-Agent": c.uaHeader}
	if tok != nil {
		idx = tok.endpoint
		hdr[headerToken] = tok.hdr
	}
	t := getTries{ep: &c.cfg.endpoints[idx], p: p}
	for t.attempt = 1; ; t.attempt++ {
		limit := min(c.cfg.reqTimeout, time.Until(deadline))
		if limit <= 0 {
			return nil, false, c.giveUp(ctx, t.last, t.ep, p, t.timeouts, t.attempt-1)
		}
		b, status, err := c.getOnce(ctx, t.ep, p, hdr, limit, deadline)
		switch o, e := c.classifyGet(ctx, &t, status, err, limit); o {
		case outOK:
			return b, false, nil
		case outUnauthorized:
			return nil, true, nil
		case outFinal:
			return nil, false, e
		}
		if t.attempt >= c.cfg.maxAttempts {
			return nil, false, t.last
		}
		d := backoff(t.attempt)
		if time.Until(deadline) <= d {
			return nil, false, t.last
		}
		if !sleep(ctx, d) {
			return nil, false, c.giveUp(ctx, t.last, t.ep, p, t.timeouts, t.attempt)
		}
	}
}

// getTries is the state of one fetch's attempts.
type getTries struct {
	ep       *endpoint
	p        string
	attempt  int    // the attempt in progress, from 1
	timeouts int    // how many attempts timed out
	last     *Error // the last retryable failure
}

// classifyGet says what one GET attempt's result (getOnce's status and error, the attempt
// having had limit) means: outOK, outUnauthorized (401: the caller renews the token), outFinal
// with the error, or outRetry, with the failure recorded in t.last.
func (c *Client) classifyGet(ctx context.Context, t *getTries, status int, err error, limit time.Duration) (outcome, *Error) {
	var redirect *Error
	switch {
	case err == nil && status == http.StatusOK:
		return outOK, nil
	case isRedirect(status) && errors.As(err, &redirect):
		return outFinal, redirect
	case err == nil && status == http.StatusUnauthorized:
		return outUnauthorized, nil
	case err == nil && (status == http.StatusTooManyRequests || status >= 500):
		t.last = statusError(http.MethodGet, t.p, t.ep.base, status, t.attempt)
	case err == nil:
		return outFinal, statusError(http.MethodGet, t.p, t.ep.base, status, t.attempt)
	case err == errTooLarge:
		return outFinal, newError(KindTooLarge, http.MethodGet, t.p, t.ep.base, http.StatusOK, nil,
			"the answer is larger than "+strconv.FormatInt(c.cfg.maxBody, 10)+
				" bytes (Options.MaxBodyBytes); raise the limit if this answer is expected")
	case ctx.Err() != nil:
		return outFinal, c.giveUp(ctx, t.last, t.ep, t.p, t.timeouts, t.attempt)
	case isDialError(err):
		return outFinal, c.transportError(http.MethodGet, t.p, t.ep, netCause(err), false, isTimeout(err), "")
	case err == errAttemptTimeout || isTimeout(err):
		t.timeouts++
		t.last = newError(KindTimeout, http.MethodGet, t.p, t.ep.base, 0, context.DeadlineExceeded,
			"no answer within "+limit.Round(time.Millisecond).String()+" ("+strconv.Itoa(t.timeouts)+
				" of "+strconv.Itoa(t.attempt)+" attempts timed out): "+adviceTimedOut)
	default:
		t.last = c.transportError(http.MethodGet, t.p, t.ep, netCause(err), true, false,
			"the answer ("+strconv.Itoa(t.attempt)+" attempts)")
	}
	return outRetry, t.last
}

// transportError reports a request that got no answer because of its connection: none was made
// (connected false: refused, no route, or with timedOut none within DialTimeout), which is
// ErrUnreachable; or the connection broke before the answer (what names it, e.g. "the token
// answer"), which is ErrServer.
func (c *Client) transportError(op, p string, ep *endpoint, cause error, connected, timedOut bool, what string) *Error {
	switch {
	case connected:
		return newError(KindServer, op, p, ep.base, 0, cause, "the connection broke before "+what+": "+
			cause.Error()+"; if this persists, something between this process and IMDS interferes")
	case timedOut:
		return newError(KindUnreachable, op, p, ep.base, 0, cause,
			"no TCP connection within "+c.cfg.dialTimeout.String()+": "+adviceUnreachable)
	}
	return newError(KindUnreachable, op, p, ep.base, 0, cause, "cannot connect: "+cause.Error()+": "+adviceUnreachable)
}

// giveUp reports the end of the time budget or of the caller's context: the last retryable
// failure if there was one, else a time-out or the context's error.
func (c *Client) giveUp(ctx context.Context, last *Error, ep *endpoint, p string, timeouts, attempts int) *Error {
	if last != nil {
		if err := ctx.Err(); err != nil {
			e := *last
			e.Err = context.Cause(ctx)
			e.msg += " (then the caller's context ended: " + e.Err.Error() + ")"
			return &e
		}
		return last
	}
	if ctx.Err() != nil {
		return canceledError(ctx, http.MethodGet, p, ep.base)
	}
	return newError(KindTimeout, http.MethodGet, p, ep.base, 0, context.DeadlineExceeded,
		"no answer before the time budget ("+c.cfg.timeout.String()+", Options.Timeout) ran out: "+adviceTimedOut)
}

// getOnce sends one GET and reads the answer if it is a 200. An attempt that runs out of time
// (limit, with no grace past deadline, the call's budget) returns errAttemptTimeout.
func (c *Client) getOnce(ctx context.Context, ep *endpoint, p string, hdr http.Header, limit time.Duration, deadline time.Time) ([]byte, int, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := afterPatientBy(limit, deadline, func() { cancel(errAttemptTimeout) })
	defer t.Stop()
	resp, err := c.hc.Do(newRequest(actx, http.MethodGet, ep, p, hdr))
	if err != nil {
		if ctx.Err() == nil && context.Cause(actx) == errAttemptTimeout && !isDialError(err) {
			return nil, 0, errAttemptTimeout
		}
		return nil, 0, err
	}
	defer resp.Body.Close()
	if isRedirect(resp.StatusCode) {
		drain(resp)
		return nil, resp.StatusCode, redirectError(http.MethodGet, p, ep.base, resp)
	}
	if resp.StatusCode != http.StatusOK {
		drain(resp)
		return nil, resp.StatusCode, nil
	}
	b, err := readBody(resp, c.cfg.maxBody)
	if err != nil && err != errTooLarge && ctx.Err() == nil && context.Cause(actx) == errAttemptTimeout {
		return nil, 0, errAttemptTimeout
	}
	return b, http.StatusOK, err
}

// request bundles a request with its URL, so that building one costs a single allocation
// (plus WithContext's copy).
type request struct {
	u url.URL
	r http.Request
}

func newRequest(ctx context.Context, method string, ep *endpoint, p string, hdr http.Header) *http.Request {
	rq := &request{}
	rq.u.Scheme, rq.u.Host, rq.u.Path = ep.scheme, ep.host, p
	if ep.prefix != "" {
		rq.u.Path = ep.prefix + p
	}
	rq.r.Method, rq.r.URL, rq.r.Header, rq.r.Host = method, &rq.u, hdr, ep.host
	rq.r.Proto, rq.r.ProtoMajor, rq.r.ProtoMinor = "HTTP/1.1", 1, 1
	return rq.r.WithContext(ctx)
}

// drain reads a little of an unwanted body so that the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
}

// backoff returns the wait before retry number attempt: exponential from 50 ms, capped at
// 400 ms, with half of it random so that many clients do not retry in step.
func backoff(attempt int) time.Duration {
	d := min(50*time.Millisecond<<min(attempt-1, 8), 400*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isDialError reports a failure to connect (refused, no route, DNS, connect time-out).
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// netCause strips the *url.Error wrapper, whose text repeats the URL the message already names.
func netCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func netipAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
