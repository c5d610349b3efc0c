package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

const mockDoc = `
Usage: imdsv2 mock [flags]

Runs the IMDS emulator: the same one the project's tests use. It answers like the real service:
session tokens with TTL bounds and expiry, 401 for missing or bad tokens when --tokens required,
403 for proxied token requests and when --disabled, listings, a signed identity document (test
key), role credentials that expire (fake, never real AWS keys), tags, spot and rebalance notices,
user data. Point a client at it with --endpoint or AWS_EC2_METADATA_SERVICE_ENDPOINT.

By default it listens on loopback. The real addresses (169.254.169.254, fd00:ec2::254) belong in a
network namespace of your own: create one, give it the address, and pass --netns NAME; the
listener is then opened inside that namespace. The hop limit of token answers is only visible
across routed namespaces (see 'imdsv2 demo').

With --output json, stdout carries JSON lines, each with "type" and "schema": "serving" (url,
tokens, hop_limit) per listener, "request" per request with --log (time, kind, method, path,
status, remote, user_agent; never a token), and "stopped" at the end.

Exit status: 0 when stopped by SIGINT or SIGTERM, 1 when a listener could not be opened or
failed, 2 on bad usage.

Examples:
  imdsv2 mock --log
  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 imdsv2 get meta-data/instance-id
  imdsv2 mock --tokens required --tags Name=web,Env=prod --role app-role --spot-after 2m
  imdsv2 mock --netns imds --listen 169.254.169.254:80 --hop-limit 2
  imdsv2 mock --listen 127.0.0.1:0 --output json --log
`

// mockSchema is the version of the layout of mock's JSON lines.
const mockSchema = 1

// mockLine is one JSON line of `imdsv2 mock --output json`: "serving" per listener, "request"
// per request with --log, "stopped" at the end.
type mockLine struct {
	Type      string `json:"type"`
	Schema    int    `json:"schema"`
	URL       string `json:"url,omitempty"`
	Tokens    string `json:"tokens,omitempty"`
	HopLimit  int    `json:"hop_limit,omitempty"`
	Time      string `json:"time,omitempty"`
	Kind      string `json:"kind,omitempty"` // "IMDSv1", "IMDSv2" or "token"
	Method    string `json:"method,omitempty"`
	Path      string `json:"path,omitempty"`
	Status    int    `json:"status,omitempty"`
	Remote    string `json:"remote,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// mockConfig is the command line of `imdsv2 mock`.
type mockConfig struct {
	listen   string
	tokens   *choiceFlag
	userData string
	nsName   string
	log      bool
	output   *choiceFlag
	server   imdstest.Config
	tags     tagsFlag
}

func (c *mockConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "listen", "127.0.0.1:1338", "listen on `ADDR` (comma-separated for several, e.g. 127.0.0.1:1338,[::1]:1338)")
	c.tokens = newChoice(imdstest.TokensOptional, imdstest.TokensOptional, imdstest.TokensRequired)
	fs.Var(c.tokens, "tokens", "HttpTokens: optional (IMDSv1 accepted) or required (IMDSv2 only)")
	fs.IntVar(&c.server.HopLimit, "hop-limit", 1, "HttpPutResponseHopLimit, 1..64: IP TTL of token answers")
	fs.BoolVar(&c.server.EndpointDisabled, "disabled", false, "HttpEndpoint=disabled: answer 403 to everything")
	fs.Var(&c.tags, "tags", "instance tags `KEY=VALUE[,KEY=VALUE...]`; enables InstanceMetadataTags")
	fs.StringVar(&c.server.RoleName, "role", "", "IAM role `NAME` of the instance profile (default: none)")
	fs.StringVar(&c.server.InstanceID, "instance-id", "", "instance `ID` (default i-0123456789abcdef0)")
	fs.StringVar(&c.server.Region, "region", "", "the instance's `REGION` (default us-east-1)")
	fs.DurationVar(&c.server.SpotActionAfter, "spot-after", 0, "announce a spot interruption this long after start (0: never)")
	fs.DurationVar(&c.server.RebalanceAfter, "rebalance-after", 0, "announce a rebalance recommendation this long after start (0: never)")
	fs.StringVar(&c.userData, "user-data", "", "`FILE` served as user data (default: none, 404)")
	fs.StringVar(&c.nsName, "netns", "", "open the listeners inside the network namespace `NAME` (/var/run/netns/NAME)")
	fs.BoolVar(&c.log, "log", false, "print one line per request (method, path, token or not, status, client): on stderr, or as JSON lines on stdout with --output json")
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text or json (JSON lines: serving, request with --log, stopped)")
}

func (c *mockConfig) setArgs(args []string) error {
	if c.server.HopLimit < 1 || c.server.HopLimit > 64 {
		return usageErrorf("--hop-limit must be 1..64, not %d", c.server.HopLimit)
	}
	c.server.HTTPTokens = c.tokens.value
	c.server.TagsEnabled, c.server.Tags = len(c.tags) > 0, c.tags
	if c.userData != "" {
		b, err := os.ReadFile(c.userData)
		if err != nil {
			return usageErrorf("--user-data: %v", err)
		}
		c.server.UserData = b
	}
	return noArgs(args)
}

// run serves until ctx is done or a listener fails.
func (c *mockConfig) run(ctx context.Context, s streams) error {
	srv := imdstest.NewUnstartedServer(c.server)
	defer srv.Close()
	var lns []net.Listener
	for _, addr := range strings.Split(c.listen, ",") {
		ln, err := listenIn(c.nsName, strings.TrimSpace(addr))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return err
		}
		lns = append(lns, ln)
	}
	out := &mockOutput{json: c.output.json(), out: s.out}
	if c.log {
		logTo := s.err
		if out.json {
			logTo = s.out
		}
		logRequests(ctx, srv, func(r imdstest.Request) { out.request(logTo, r) })
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		out.serving(ln.Addr().String(), c.server)
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
		out.stopped()
		return nil
	case err := <-errc:
		return err
	}
}

// mockOutput prints mock's lines, as text or JSON lines, one at a time.
type mockOutput struct {
	mu   sync.Mutex
	json bool
	out  io.Writer
}

func (o *mockOutput) line(w io.Writer, text string, l mockLine) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		l.Schema = mockSchema
		b, _ := json.Marshal(l)
		text = string(b)
	}
	fmt.Fprintln(w, text)
}

func (o *mockOutput) serving(addr string, cfg imdstest.Config) {
	o.line(o.out, fmt.Sprintf("imdsv2 mock: serving IMDS at http://%s (tokens %s, hop limit %d)", addr, cfg.HTTPTokens, cfg.HopLimit),
		mockLine{Type: "serving", URL: "http://" + addr, Tokens: cfg.HTTPTokens, HopLimit: cfg.HopLimit})
}

func (o *mockOutput) stopped() { o.line(o.out, "imdsv2 mock: stopping", mockLine{Type: "stopped"}) }

func (o *mockOutput) request(w io.Writer, r imdstest.Request) {
	o.line(w, formatRequest(r), mockLine{Type: "request", Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: requestKind(r),
		Method: r.Method, Path: r.Path, Status: r.Status, Remote: r.Remote.String(), UserAgent: r.UserAgent})
}

// listenIn opens a TCP listener, inside the named network namespace when nsName is set.
func listenIn(nsName, addr string) (net.Listener, error) {
	if nsName == "" {
		return net.Listen("tcp", addr)
	}
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("--netns %s: %w (create it with: ip netns add %s)", nsName, err, nsName)
	}
	defer target.Close()
	var ln net.Listener
	err = testbed.InNamespace(target, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in namespace %s: %w", addr, nsName, err)
	}
	return ln, nil
}

// logRequests calls show for each request once, when it has been answered (or left
// unanswered), until ctx is done. Following the server rather than polling its bounded request
// log keeps every request, once, however many come.
func logRequests(ctx context.Context, srv *imdstest.Server, show func(imdstest.Request)) {
	var mu sync.Mutex
	stop := srv.Follow(func(r imdstest.Request) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			show(r)
		}
	})
	context.AfterFunc(ctx, stop)
}

// requestKind names what a request was: a token request, or a GET with or without one.
func requestKind(r imdstest.Request) string {
	switch {
	case r.Method == "PUT":
		return "token"
	case !r.TokenSent:
		return "IMDSv1"
	}
	return "IMDSv2"
}

// formatRequest renders one request-log entry; never a token, only whether one was sent.
func formatRequest(r imdstest.Request) string {
	return fmt.Sprintf("%s %-6s %-4s %-45s %3d from %s ua=%q",
		r.Time.Format("15:04:05.000"), requestKind(r), r.Method, r.Path, r.Status, r.Remote, r.UserAgent)
}
