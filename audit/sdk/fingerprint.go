package sdk

import (
	"path"
	"strconv"
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Clients that send no User-Agent are named by what they do send: the header names in their
// order and case, the Connection value, the token TTL they ask for, and the executable that sent
// them. The table below is built from captures of the real clients (testdata/captures, made by
// internal/e2e with -update-captures) and tested against every one of them: each capture is
// named as its own client and no other.

// Shape is what a request says apart from its User-Agent. No value in it can be a secret: the
// token header is a name only.
type Shape struct {
	Method string
	Proto  string // of the request line, "HTTP/1.1"
	// Headers are the header names as sent, in order and case, joined by ", "
	// (httpreq.Request.Headers).
	Headers string
	// TokenTTL is the X-aws-ec2-metadata-token-ttl-seconds value; -1 when absent.
	TokenTTL   int
	Connection string
	Accept     string
}

// String renders the shape for people: the header names in order, with the values that tell
// clients apart ("PUT x-aws-ec2-metadata-token-ttl-seconds=21600, Host, Connection=keep-alive,
// Content-Length").
func (s Shape) String() string {
	var b strings.Builder
	b.WriteString(s.Method)
	if s.Proto != "" && s.Proto != "HTTP/1.1" {
		b.WriteString(" " + s.Proto)
	}
	for i, name := range strings.Split(s.Headers, ", ") {
		if name == "" {
			continue
		}
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(name)
		switch strings.ToLower(name) {
		case "x-aws-ec2-metadata-token-ttl-seconds":
			if s.TokenTTL >= 0 {
				b.WriteString("=" + strconv.Itoa(s.TokenTTL))
			}
		case "connection":
			b.WriteString("=" + s.Connection)
		case "accept":
			b.WriteString("=" + s.Accept)
		}
	}
	return b.String()
}

// Sender is what the audit knows of the process that sent a request.
type Sender struct {
	Exe  string // executable path; "" when unknown
	Comm string // the kernel's name of the thread
}

// names returns the executable's base name and the comm, those that are known.
func (s Sender) names() []string {
	var out []string
	if s.Exe != "" {
		out = append(out, path.Base(s.Exe))
	}
	if s.Comm != "" {
		out = append(out, s.Comm)
	}
	return out
}

// wire is one request shape a client sends, on an HTTP/1.1 request line (every client captured).
type wire struct {
	method     string
	headers    string // names, exactly as sent
	ttl        int    // token TTL asked; 0: no TTL header
	connection string // Connection value, compared without regard to case
}

// fingerprint names a client without a User-Agent by the requests it sends.
type fingerprint struct {
	id      string
	product string
	name    string
	kind    Kind
	min     string
	// exes are the executables' base names that send these shapes (a name ending in "*" is a
	// prefix: "python3*" covers python3.11).
	exes  []string
	wires []wire
	// clients are the captured clients this fingerprint stands for (testdata/captures).
	clients []string
	// note says what the shape cannot tell; it goes into the advice.
	note string
	// advice, when set, replaces the advice of the kind.
	advice string
}

const (
	jsTTL = "x-aws-ec2-metadata-token-ttl-seconds, Host, Connection, Content-Length"
	jsGET = "x-aws-ec2-metadata-token, Host, Connection"
)

// fingerprints are tried in order; the first that matches names the client.
var fingerprints = []fingerprint{
	{
		// @smithy/credential-provider-imds uses Node's global agent, which keeps connections
		// alive from Node.js 19 on.
		id: "aws-sdk-js-v3/smithy-imds", product: imdsfacts.JavaScriptV3.ID, name: imdsfacts.JavaScriptV3.Name,
		kind: KindAWSSDK, min: imdsfacts.JavaScriptV3.MinIMDSv2, exes: []string{"node", "nodejs"},
		wires: []wire{
			{method: "PUT", headers: jsTTL, ttl: 21600, connection: "keep-alive"},
			{method: "GET", headers: jsGET, connection: "keep-alive"},
		},
		clients: []string{"aws-sdk-js-v3"},
	},
	{
		// aws-sdk v2 (2.575.0 and later) replaces its headers on the token path with these, on
		// an agent of its own that closes connections. The v3 provider under Node.js 18 or
		// older (no keep-alive by default) is expected to send the same; not captured here.
		id: "aws-sdk-js/token-path", product: "aws-sdk-js", name: "AWS SDK for JavaScript (v2 2.575.0 or later, or v3 on Node.js 18 or older)",
		kind: KindAWSSDK, exes: []string{"node", "nodejs"},
		wires: []wire{
			{method: "PUT", headers: jsTTL, ttl: 21600, connection: "close"},
			{method: "GET", headers: jsGET, connection: "close"},
		},
		clients: []string{"aws-sdk-js-v2"},
		note:    "named by its header shape (it sends no User-Agent)",
	},
	{
		// Node's own http module: what a program without an SDK sends, and also what the v3
		// provider sends when it falls back to IMDSv1 (the process's token PUT names the SDK).
		id: "node-http", product: "node-http", name: "Node.js http", kind: KindLibrary, exes: []string{"node", "nodejs"},
		wires: []wire{
			{method: "GET", headers: "Host, Connection", connection: "keep-alive"},
			{method: "GET", headers: "Host, Connection", connection: "close"},
		},
		clients: []string{"node-http"},
		advice: "Node's http module with no User-Agent: a program's own IMDS call, or an AWS SDK for JavaScript " +
			"falling back to IMDSv1 after its token request failed (the process's token PUTs tell which): a program " +
			"of its own must fetch a token first (PUT /latest/api/token) or use the v3 SDK",
	},
}

func (w wire) matches(s Shape) bool {
	if w.method != s.Method || s.Proto != "HTTP/1.1" || w.headers != s.Headers || !strings.EqualFold(w.connection, s.Connection) {
		return false
	}
	if w.ttl == 0 {
		return s.TokenTTL < 0
	}
	return w.ttl == s.TokenTTL
}

// sentBy reports whether the sender can be one of f's executables: an unknown sender can.
func (f *fingerprint) sentBy(s Sender) bool {
	names := s.names()
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		for _, e := range f.exes {
			if n == e || strings.HasSuffix(e, "*") && strings.HasPrefix(n, strings.TrimSuffix(e, "*")) {
				return true
			}
		}
	}
	return false
}

func (f *fingerprint) matches(s Shape, from Sender) bool {
	if !f.sentBy(from) {
		return false
	}
	for _, w := range f.wires {
		if w.matches(s) {
			return true
		}
	}
	return false
}

// IdentifyRequest names the sender of a request: by its User-Agent when it has one (Identify),
// else by its shape and executable. A request that matches no fingerprint is "none" (no
// User-Agent), with its shape in Headers, so that an operator can tell clients apart.
func IdentifyRequest(userAgent string, s Shape, from Sender) Info {
	if strings.TrimSpace(userAgent) != "" {
		return Identify(userAgent)
	}
	for i := range fingerprints {
		f := &fingerprints[i]
		if f.matches(s, from) {
			info := rule{product: f.product, name: f.name, kind: f.kind, min: f.min}.info("")
			info.Fingerprint, info.Headers = f.id, s.String()
			if f.advice != "" {
				info.Advice = f.advice
			}
			if f.kind == KindAWSSDK && f.min == "" {
				// A family told apart by shape, not version: the shape itself is the token path.
				info.Advice = f.name + " (" + f.note + ") asks for tokens on this path; it sends IMDSv1 only after " +
					"its token request failed (hop limit too low, proxy, 403/404/405): fix that, then set " + DisableV1Fallback +
					"; v2 releases before " + imdsfacts.JavaScriptV2.MinIMDSv2 + " also make some calls without a token " +
					"(those carry its User-Agent and are named by it): upgrade those"
			}
			return info
		}
	}
	info := Identify("")
	info.Headers = s.String()
	if names := from.names(); len(names) > 0 {
		info.Name += ", sent by " + names[0]
	}
	return info
}

// specificity ranks what an identity says of its program: an SDK or agent names it better than
// the HTTP library it uses underneath (cloud-init sends Cloud-Init/22.4.2 on its token PUT and
// python-requests on its GETs; the JavaScript v3 SDK's fallback GETs look like Node's http).
func specificity(i *Info) int {
	if i == nil {
		return 0
	}
	switch i.Kind {
	case KindAWSSDK, KindAgent:
		return 4
	case KindScript:
		return 3
	case KindLibrary:
		return 2
	}
	return 1
}

// MoreSpecific reports whether a names its program better than b does: a more specific kind,
// or the same kind with a version where b has none. The identity of a process is the most
// specific of its requests'.
func MoreSpecific(a, b *Info) bool {
	return specificity(a) > specificity(b) || (specificity(a) == specificity(b) && a != nil && b != nil &&
		b.Version == "" && a.Version != "")
}
