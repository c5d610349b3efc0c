package imds

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Kind classifies an *Error. Each kind but KindCanceled has a sentinel error that errors.Is
// matches.
type Kind uint8

// The kinds of failure.
const (
	// KindUnreachable: no connection (refused, no route, connect time-out). Not on EC2, or IMDS
	// is cut off by a firewall or network policy.
	KindUnreachable Kind = iota + 1
	// KindDisabled: 403 to everything (HttpEndpoint=disabled), or disabled by configuration.
	KindDisabled
	// KindHopLimit: the token request was sent on an accepted connection and never answered.
	KindHopLimit
	// KindTokenRefused: the token request was refused (400, 403 through a proxy, 404, 405), or a
	// fresh token was rejected.
	KindTokenRefused
	// KindNotFound: 404 for a metadata path.
	KindNotFound
	// KindThrottled: 429 answers (IMDS refused requests over its rate limit).
	KindThrottled
	// KindServer: 5xx answers, or connections broken every time.
	KindServer
	// KindTooLarge: an answer over Options.MaxBodyBytes.
	KindTooLarge
	// KindMalformed: an answer that does not parse as what the path holds.
	KindMalformed
	// KindTagsNotEnabled: instance tags are not exposed in metadata.
	KindTagsNotEnabled
	// KindBadSignature: the identity document's signature does not verify.
	KindBadSignature
	// KindCredentials: IMDS answered the credentials request with a Code other than Success.
	KindCredentials
	// KindInvalidArgument: a path, key or certificate given by the caller is not usable.
	KindInvalidArgument
	// KindCanceled: the caller's context ended first; Err is ctx.Err().
	KindCanceled
	// KindRedirect: the endpoint answered with a redirect (3xx). IMDS never redirects; the
	// redirect is not followed, so no request (and no token) goes to its target.
	KindRedirect
	// KindTimeout: a GET got no answer in time on every attempt (Options.RequestTimeout), or the
	// call's time budget (Options.Timeout) ran out first; Err is context.DeadlineExceeded.
	// IMDS drops requests over its rate limit, so this is often throttling, but an overloaded
	// host or short time limits look the same, so it is not reported as ErrThrottled.
	KindTimeout
)

var kindNames = [...]string{
	KindUnreachable:     "unreachable",
	KindDisabled:        "disabled",
	KindHopLimit:        "hop limit",
	KindTokenRefused:    "token refused",
	KindNotFound:        "not found",
	KindThrottled:       "throttled",
	KindServer:          "server error",
	KindTooLarge:        "too large",
	KindMalformed:       "malformed",
	KindTagsNotEnabled:  "tags not enabled",
	KindBadSignature:    "bad signature",
	KindCredentials:     "credentials unavailable",
	KindInvalidArgument: "invalid argument",
	KindCanceled:        "canceled",
	KindRedirect:        "redirect",
	KindTimeout:         "timeout",
}

// String returns a short name of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// The sentinels, one per Kind; test with errors.Is(err, imds.ErrHopLimit).
var (
	ErrUnreachable     = errors.New("imds: metadata service unreachable")
	ErrDisabled        = errors.New("imds: metadata service disabled")
	ErrHopLimit        = errors.New("imds: token answer lost (hop limit)")
	ErrTokenRefused    = errors.New("imds: session token refused")
	ErrNotFound        = errors.New("imds: metadata path not found")
	ErrThrottled       = errors.New("imds: throttled")
	ErrServer          = errors.New("imds: metadata service error")
	ErrTooLarge        = errors.New("imds: answer too large")
	ErrMalformed       = errors.New("imds: malformed answer")
	ErrTagsNotEnabled  = errors.New("imds: instance tags not enabled in metadata")
	ErrBadSignature    = errors.New("imds: identity document signature does not verify")
	ErrCredentials     = errors.New("imds: role credentials unavailable")
	ErrInvalidArgument = errors.New("imds: invalid argument")
	ErrRedirect        = errors.New("imds: redirect refused")
	ErrTimeout         = errors.New("imds: no answer in time")
)

var sentinels = [...]error{
	KindUnreachable:     ErrUnreachable,
	KindDisabled:        ErrDisabled,
	KindHopLimit:        ErrHopLimit,
	KindTokenRefused:    ErrTokenRefused,
	KindNotFound:        ErrNotFound,
	KindThrottled:       ErrThrottled,
	KindServer:          ErrServer,
	KindTooLarge:        ErrTooLarge,
	KindMalformed:       ErrMalformed,
	KindTagsNotEnabled:  ErrTagsNotEnabled,
	KindBadSignature:    ErrBadSignature,
	KindCredentials:     ErrCredentials,
	KindInvalidArgument: ErrInvalidArgument,
	KindRedirect:        ErrRedirect,
	KindTimeout:         ErrTimeout,
}

// Error is the error of every Client method. Its text says what is wrong and what to do; it never
// contains a token, a credential or user data.
type Error struct {
	// Kind classifies the failure; errors.Is(err, sentinel) compares it.
	Kind Kind
	// Op is the HTTP method of the failed request ("GET", "PUT"), or the operation ("verify").
	Op string
	// Path is the URL path asked for, e.g. "/latest/meta-data/instance-id".
	Path string
	// Endpoint is the base URL the request went to, e.g. "http://169.254.169.254".
	Endpoint string
	// StatusCode is the HTTP status of the answer, 0 if there was none.
	StatusCode int
	// Err is the underlying cause, if any (a network error, ctx.Err(), a JSON error).
	Err error

	// msg says what happened and what to do, without the Op/Path/Endpoint prefix.
	msg string
}

// Error returns the full message: the request, what went wrong, the cause, and the fix.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("imds: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteByte(' ')
	}
	if e.Endpoint != "" {
		b.WriteString("at ")
		b.WriteString(e.Endpoint)
	}
	if e.Op != "" || e.Path != "" || e.Endpoint != "" {
		b.WriteString(": ")
	}
	if e.msg != "" {
		b.WriteString(e.msg)
	} else {
		b.WriteString(e.Kind.String())
		if e.Err != nil {
			b.WriteString(": ")
			b.WriteString(e.Err.Error())
		}
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's kind. An ErrTagsNotEnabled error also matches
// ErrNotFound, since it is a 404 underneath.
func (e *Error) Is(target error) bool {
	if int(e.Kind) < len(sentinels) && sentinels[e.Kind] != nil && target == sentinels[e.Kind] {
		return true
	}
	return e.Kind == KindTagsNotEnabled && target == ErrNotFound
}

// GoString keeps %#v readable and free of anything but the fields.
func (e *Error) GoString() string {
	return "&imds.Error{Kind:" + e.Kind.String() + ", Op:" + strconv.Quote(e.Op) +
		", Path:" + strconv.Quote(e.Path) + ", Endpoint:" + strconv.Quote(e.Endpoint) +
		", StatusCode:" + strconv.Itoa(e.StatusCode) + ", Err:" + strconv.Quote(errText(e.Err)) + "}"
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Advice shared by several messages that carries a command, rendered by internal/imdsfacts.
var (
	adviceHopLimit = "the instance's HttpPutResponseHopLimit is probably 1 and this process is " +
		"behind a container bridge (one hop too many), so the answer is dropped on its way back; " +
		"set the hop limit to " + strconv.Itoa(imdsfacts.HopLimitForContainers) + ": " +
		imdsfacts.MetadataOptions{HopLimit: imdsfacts.HopLimitForContainers, HTTPEndpoint: "enabled"}.Command()
	adviceDisabled = "the instance's metadata endpoint is disabled (HttpEndpoint=disabled); " +
		"enable it: " + imdsfacts.MetadataOptions{HTTPEndpoint: "enabled"}.Command()
	adviceTags = "expose tags in metadata: " + imdsfacts.MetadataOptions{Tags: "enabled"}.Command()
)

// Advice shared by several messages.
const (
	adviceProxy = "IMDS refuses to issue tokens to requests that went through a proxy " +
		"(X-Forwarded-For); bypass the proxy for the metadata address (add " + imdsfacts.IPv4 + " and " +
		imdsfacts.IPv6 + " to NO_PROXY)"
	adviceUnreachable = "this is not an EC2 instance, or IMDS is cut off (host firewall, " +
		"network policy, HttpEndpoint=disabled at launch); on EC2 check iptables/nftables rules " +
		"for " + imdsfacts.IPv4 + ", or set the endpoint (" + EnvEndpoint + ") if IMDS lives elsewhere"
	adviceThrottled = "IMDS limits each instance's request rate and drops or refuses requests " +
		"over it; cache what you read (one Client per process) and call less often"
	// adviceTimedOut is for answers that did not come in time: IMDS drops requests over its
	// rate limit, but an overloaded host, or limits set short on purpose, look the same.
	adviceTimedOut = "IMDS drops requests over its per-instance rate limit, so this usually " +
		"means throttling: cache what you read (one Client per process) and call less often; " +
		"on an overloaded host, a longer budget helps (Options.Timeout and RequestTimeout, " +
		"imdsv2 get --timeout)"
)

// newError builds an error; msg is the problem and its fix.
func newError(kind Kind, op, path, endpoint string, status int, cause error, msg string) *Error {
	return &Error{Kind: kind, Op: op, Path: path, Endpoint: endpoint, StatusCode: status,
		Err: cause, msg: msg}
}

// canceledError reports that the caller's context ended before the request finished.
func canceledError(ctx context.Context, op, path, endpoint string) *Error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = context.Canceled
	}
	msg := "the caller's context ended before IMDS answered (" + cause.Error() +
		"); give the call more time, or leave the deadline to Options.Timeout"
	return newError(KindCanceled, op, path, endpoint, 0, cause, msg)
}

// statusError classifies an unexpected HTTP status of a GET (after the token has been dealt with).
func statusError(op, path, endpoint string, status, attempts int) *Error {
	st := statusLine(status)
	tries := ""
	if attempts > 1 {
		tries = " (" + strconv.Itoa(attempts) + " attempts)"
	}
	switch {
	case status == 403:
		return newError(KindDisabled, op, path, endpoint, status, nil, "answered "+st+": "+adviceDisabled)
	case status == 404:
		return newError(KindNotFound, op, path, endpoint, status, nil,
			"answered "+st+": this metadata path does not exist on this instance; List its parent "+
				"directory to see what does (some paths exist only with a feature: IPv6, Spot, tags, an "+
				"instance profile)")
	case status == 429:
		return newError(KindThrottled, op, path, endpoint, status, nil,
			"answered "+st+tries+": "+adviceThrottled)
	case status >= 500:
		return newError(KindServer, op, path, endpoint, status, nil,
			"answered "+st+tries+": the metadata service has a problem; try again later, and if it "+
				"persists, stop and start the instance or contact AWS support")
	}
	return newError(KindMalformed, op, path, endpoint, status, nil,
		"answered with unexpected status "+st+": the endpoint may not be EC2's IMDS (a proxy?)")
}

// statusLine is a status code with its text, "404 Not Found", or the code alone when net/http
// has no text for it.
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// isRedirect reports a 3xx status. IMDS answers none; the client follows none (refuseRedirect).
func isRedirect(status int) bool { return status >= 300 && status < 400 }

// redirectError reports a redirect that was not followed. It names the status and the host the
// redirect pointed at, and shows the Location without its user information, query or fragment
// (RedactURL), cut short and with control characters escaped, since a hostile server wrote it.
func redirectError(op, path, endpoint string, resp *http.Response) *Error {
	st := statusLine(resp.StatusCode)
	target := "without a Location"
	if loc, err := resp.Location(); err == nil {
		shown := *loc
		shown.RawQuery, shown.ForceQuery, shown.Fragment, shown.RawFragment = "", false, "", ""
		text := RedactURL(shown.String())
		if len(text) > maxLocationText {
			text = text[:maxLocationText] + "..."
		}
		target = "to host " + strconv.Quote(loc.Host) + " (" + strconv.Quote(text) + ")"
	} else if resp.Header.Get("Location") != "" {
		target = "to a Location that is not a URL"
	}
	return newError(KindRedirect, op, path, endpoint, resp.StatusCode, nil,
		"answered "+st+" "+target+": IMDS never redirects, so this endpoint is not EC2's IMDS (a "+
			"proxy, a captive portal, or a spoofed or hostile server); the redirect was not followed "+
			"and nothing, no session token either, was sent there; point the client at IMDS itself")
}

// maxLocationText bounds the Location shown in a redirect error.
const maxLocationText = 200

// malformed reports an answer that does not parse; what names the expected content.
func malformed(op, path, endpoint, what string, cause error) *Error {
	msg := "the answer is not a valid " + what
	if cause != nil {
		msg += ": " + cause.Error()
	}
	msg += "; the endpoint may not be EC2's IMDS, or a proxy altered the answer"
	return newError(KindMalformed, op, path, endpoint, 200, cause, msg)
}

// invalidArgument reports a caller mistake.
func invalidArgument(op, path, msg string) *Error {
	return newError(KindInvalidArgument, op, path, "", 0, nil, msg)
}
