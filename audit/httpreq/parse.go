package httpreq

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// MaxHeadBytes is the largest header block accepted. Most IMDS requests are a few hundred
// bytes, but tracing headers (baggage, tracestate) can take a block past several KiB, and a
// block must be read whole to know that no token header is in it. Within the block, lines and
// header fields are not counted or bounded: nothing is kept per field, and a limit below the
// block's would turn a tokenless request into an unclassified one.
const MaxHeadBytes = 64 << 10

// MaxShapeBytes bounds Request.Headers; MaxShapeValueBytes the Connection and Accept values.
const (
	MaxShapeBytes      = 512
	MaxShapeValueBytes = 64
)

// Errors returned by the parsers; test with errors.Is.
var (
	// ErrIncomplete: the first line is not complete, nothing could be parsed.
	ErrIncomplete = errors.New("httpreq: first line incomplete")
	// ErrMalformed: the bytes are not an HTTP/1.x header block.
	ErrMalformed = errors.New("httpreq: malformed header block")
	// ErrTooLarge: the block exceeds MaxHeadBytes.
	ErrTooLarge = errors.New("httpreq: header block too large")
)

// Header names the parser looks for (compared without regard to case).
const (
	HeaderToken        = "X-aws-ec2-metadata-token"
	HeaderTokenTTL     = "X-aws-ec2-metadata-token-ttl-seconds"
	HeaderForwardedFor = "X-Forwarded-For"
)

// Request is what the auditor keeps of a request's header block. It holds no
// header value that could be a secret: the token header is reduced to HasToken.
type Request struct {
	Method string // as sent, e.g. "GET"
	Target string // request-target as sent, e.g. "/latest/meta-data/?x=1"
	Path   string // Target without query or fragment; absolute-form reduced to its path
	Proto  string // "HTTP/1.1"

	Host      string // Host header value
	UserAgent string // User-Agent header value

	HasToken bool // X-aws-ec2-metadata-token present (its value is never kept)
	// TokenTTL is the X-aws-ec2-metadata-token-ttl-seconds value; -1 when the
	// header is absent, -2 when present but not a number.
	TokenTTL  int
	Forwarded bool // X-Forwarded-For present

	// Headers are the header names as sent, in order and case, joined by ", " (a shape that
	// tells clients without a User-Agent apart); cut at MaxShapeBytes.
	Headers string
	// Connection and Accept are those headers' values, cut at MaxShapeValueBytes.
	Connection string
	Accept     string

	Metadata       string // "Metadata" header value (Azure IMDS wants "true")
	MetadataFlavor string // "Metadata-Flavor" header value (GCP "Google", IBM "ibm")
	OtherCloudAuth bool   // a header other clouds' services require (Metadata-Token*, Authorization: Bearer Oracle)

	// ContentLength is the Content-Length value, -1 when absent or invalid.
	ContentLength int64
	Chunked       bool // Transfer-Encoding ends in chunked
	// Complete says the block ended with an empty line; false for a block cut
	// short (only its complete lines were read).
	Complete bool
}

// Response is what the auditor keeps of an answer: never the body.
type Response struct {
	Proto  string // "HTTP/1.1"
	Status int    // 100..999
	// ContentLength is the Content-Length value, -1 when absent or invalid.
	ContentLength int64
	Chunked       bool // Transfer-Encoding ends in chunked
	Close         bool // Connection: close
	// TokenTTL is the X-aws-ec2-metadata-token-ttl-seconds value echoed on a
	// token answer, -1 when absent or invalid.
	TokenTTL int
	Complete bool // the block ended with an empty line
}

// lines iterates over the CRLF- (or LF-) terminated lines of b. The final
// unterminated remainder is reported through rest.
type lines struct {
	b    []byte
	rest []byte
}

// next returns the next complete line without its terminator, or ok=false.
func (l *lines) next() (line []byte, ok bool) {
	i := bytes.IndexByte(l.b, '\n')
	if i < 0 {
		l.rest = l.b
		l.b = nil
		return nil, false
	}
	line = l.b[:i]
	l.b = l.b[i+1:]
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, true
}

// headerFunc receives each header field; value is borrowed.
type headerFunc func(name, value []byte)

// parseHeaders reads header lines until the empty line. It returns whether the
// block was complete.
func parseHeaders(l *lines, fn headerFunc) (complete bool, err error) {
	for {
		line, ok := l.next()
		if !ok {
			return false, nil
		}
		if len(line) == 0 {
			return true, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding: a continuation of the previous value.
			// Nothing the auditor reads is ever folded, so skip it.
			if hasCtl(line) {
				return false, ErrMalformed
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false, ErrMalformed
		}
		value := bytes.Trim(line[colon+1:], " \t")
		if hasCtl(value) {
			return false, ErrMalformed
		}
		fn(line[:colon], value)
	}
}

// ParseRequest parses a request header block (request line and header
// fields). A block without its final empty line is parsed as far as its
// complete lines go and returned with Complete false; err is then nil unless
// the request line itself is incomplete or something is malformed.
func ParseRequest(head []byte) (Request, error) {
	return ParseRequestToken(head, nil)
}

// ParseRequestToken is ParseRequest that also hands the value of each complete
// X-aws-ec2-metadata-token header to token (when not nil), for a redactor
// that scrubs the value wherever it reappears. The value is not kept, and
// valid only during the call.
func ParseRequestToken(head []byte, token func(value []byte)) (Request, error) {
	r := Request{TokenTTL: -1, ContentLength: -1}
	if len(head) > MaxHeadBytes {
		return r, ErrTooLarge
	}
	l := lines{b: head}
	line, ok := l.next()
	if !ok {
		return r, ErrIncomplete
	}
	if err := r.parseRequestLine(line); err != nil {
		return r, err
	}
	header := r.header
	if token != nil {
		header = func(name, value []byte) {
			if equalFold(name, HeaderToken) {
				token(value)
			}
			r.header(name, value)
		}
	}
	complete, err := parseHeaders(&l, header)
	if err != nil {
		return r, err
	}
	r.Complete = complete
	if !r.Complete {
		// A cut-off last line still proves the token header was sent
		// once its name and colon are there.
		if name, _, ok := bytes.Cut(l.rest, []byte{':'}); ok && equalFold(name, HeaderToken) {
			r.HasToken = true
		}
	}
	return r, nil
}

func (r *Request) parseRequestLine(line []byte) error {
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(method) == 0 || len(method) > 16 || !isToken(method) {
		return ErrMalformed
	}
	target, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(target) == 0 || !isVisible(target) || !isHTTPVersion(proto) {
		return ErrMalformed
	}
	r.Method = string(method)
	r.Target = string(target)
	r.Proto = string(proto)
	r.Path = pathOf(r.Target)
	return nil
}

func (r *Request) header(name, value []byte) {
	if len(r.Headers)+len(name)+2 <= MaxShapeBytes {
		if r.Headers != "" {
			r.Headers += ", "
		}
		r.Headers += string(name)
	}
	switch {
	case equalFold(name, HeaderToken):
		r.HasToken = true // the value is a secret: never copied
	case equalFold(name, HeaderTokenTTL):
		r.TokenTTL = -2
		if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
			r.TokenTTL = n
		}
	case equalFold(name, HeaderForwardedFor):
		r.Forwarded = true
	case equalFold(name, "Host"):
		r.Host = string(value)
	case equalFold(name, "User-Agent"):
		r.UserAgent = string(value)
	case equalFold(name, "Connection"):
		r.Connection = string(value[:min(len(value), MaxShapeValueBytes)])
	case equalFold(name, "Accept"):
		r.Accept = string(value[:min(len(value), MaxShapeValueBytes)])
	case equalFold(name, "Metadata"):
		r.Metadata = string(value)
	case equalFold(name, "Metadata-Flavor"):
		r.MetadataFlavor = string(value)
	case equalFold(name, "Metadata-Token"), equalFold(name, "Metadata-Token-Expiry-Seconds"):
		r.OtherCloudAuth = true // Linode; the value is not kept
	case equalFold(name, "Authorization"):
		// Oracle's IMDSv2 wants "Bearer Oracle"; any other value may be a
		// credential, so only the fact is kept.
		if equalFold(value, "Bearer Oracle") {
			r.OtherCloudAuth = true
		}
	case equalFold(name, "Content-Length"):
		r.ContentLength = parseLength(value, r.ContentLength)
	case equalFold(name, "Transfer-Encoding"):
		r.Chunked = isChunked(value)
	}
}

// ParseResponse parses an answer's status line and header fields. It never
// reads beyond the header block.
func ParseResponse(head []byte) (Response, error) {
	r := Response{ContentLength: -1, TokenTTL: -1}
	if len(head) > MaxHeadBytes {
		return r, ErrTooLarge
	}
	l := lines{b: head}
	line, ok := l.next()
	if !ok {
		// The status line alone is enough when a capture cut the block short.
		line = l.rest
		if len(line) < len("HTTP/1.1 200") {
			return r, ErrIncomplete
		}
	}
	var err error
	r.Proto, r.Status, err = ParseStatusLine(line)
	if err != nil {
		return r, err
	}
	if !ok {
		return r, nil
	}
	r.Complete, err = parseHeaders(&l, func(name, value []byte) {
		switch {
		case equalFold(name, "Content-Length"):
			r.ContentLength = parseLength(value, r.ContentLength)
		case equalFold(name, "Transfer-Encoding"):
			r.Chunked = isChunked(value)
		case equalFold(name, "Connection"):
			r.Close = containsFold(value, "close")
		case equalFold(name, HeaderTokenTTL):
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
				r.TokenTTL = n
			}
		}
	})
	return r, err
}

// ParseStatusLine parses "HTTP/1.1 200 OK" (the reason phrase is optional and
// ignored) and returns the protocol and the status code.
func ParseStatusLine(line []byte) (proto string, status int, err error) {
	p, rest, _ := bytes.Cut(line, []byte{' '})
	if !isHTTPVersion(p) || len(rest) < 3 {
		return "", 0, ErrMalformed
	}
	code := rest[:3]
	if len(rest) > 3 && rest[3] != ' ' {
		return "", 0, ErrMalformed
	}
	n := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return "", 0, ErrMalformed
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 {
		return "", 0, ErrMalformed
	}
	return string(p), n, nil
}

// LooksLikeRequestStart reports whether b can be the first bytes of a request
// line: a method name (letters, any case) followed by a space and the start of a
// request-target, or an upper-case prefix of one.
func LooksLikeRequestStart(b []byte) bool {
	upper := true
	for i, c := range b {
		if c == ' ' {
			if i == 0 {
				return false
			}
			// The request-target: origin form, absolute form or "*".
			return i+1 == len(b) || strings.IndexByte("/*hH", b[i+1]) >= 0
		}
		switch {
		case i >= 16:
			return false
		case 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z':
			upper = false
		default:
			return false
		}
	}
	// A bare prefix of a method (the segment ends before its space) counts only in upper
	// case: lower-case text is far more often the middle of a body.
	return len(b) > 0 && upper
}

// LooksLikeResponseStart reports whether b can be the first bytes of a status
// line ("HTTP/"), or a prefix of one.
func LooksLikeResponseStart(b []byte) bool {
	const p = "HTTP/"
	if len(b) < len(p) {
		return len(b) > 0 && string(b) == p[:len(b)]
	}
	return string(b[:len(p)]) == p
}

func isHTTPVersion(b []byte) bool {
	return len(b) == 8 && string(b[:7]) == "HTTP/1." && (b[7] == '0' || b[7] == '1')
}

// pathOf strips the query and fragment and reduces an absolute-form target
// ("http://169.254.169.254/latest/...") to its path.
func pathOf(target string) string {
	if i := strings.Index(target, "://"); i > 0 && !strings.HasPrefix(target, "/") {
		rest := target[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "/"
		}
		target = rest[j:]
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	return target
}

func parseLength(v []byte, prev int64) int64 {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 || (prev >= 0 && prev != n) {
		return -1
	}
	return n
}

func isChunked(v []byte) bool {
	v = bytes.TrimRight(v, " \t")
	i := bytes.LastIndexByte(v, ',')
	return equalFold(bytes.TrimSpace(v[i+1:]), "chunked")
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if equalFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isToken reports whether b is an RFC 9110 token (method or field name).
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

func isVisible(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// hasCtl reports control characters other than horizontal tab.
func hasCtl(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}
