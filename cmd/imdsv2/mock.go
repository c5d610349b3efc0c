package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"

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

Examples:
  imdsv2 mock --log
  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 imdsv2 get meta-data/instance-id
  imdsv2 mock --tokens required --tags Name=web,Env=prod --role app-role --spot-after 2m
  imdsv2 mock --netns imds --listen 169.254.169.254:80 --hop-limit 2
`

func runMock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("mock", mockDoc, stderr)
	listen := fs.String("listen", "127.0.0.1:1338", "address to listen on (repeat with commas for several, e.g. 127.0.0.1:1338,[::1]:1338)")
	tokens := fs.String("tokens", imdstest.TokensOptional, "HttpTokens: optional (IMDSv1 accepted) or required (IMDSv2 only)")
	hopLimit := fs.Int("hop-limit", 1, "HttpPutResponseHopLimit, 1..64: IP TTL of token answers")
	disabled := fs.Bool("disabled", false, "HttpEndpoint=disabled: answer 403 to everything")
	var tags tagsFlag
	fs.Var(&tags, "tags", "instance tags KEY=VALUE[,KEY=VALUE...]; enables InstanceMetadataTags")
	role := fs.String("role", "", "IAM role name of the instance profile (default: none)")
	instanceID := fs.String("instance-id", "", "instance ID (default i-0123456789abcdef0)")
	region := fs.String("region", "", "region (default us-east-1)")
	spotAfter := fs.Duration("spot-after", 0, "announce a spot interruption this long after start (0: never)")
	rebalanceAfter := fs.Duration("rebalance-after", 0, "announce a rebalance recommendation this long after start (0: never)")
	userData := fs.String("user-data", "", "file served as user data (default: none, 404)")
	nsName := fs.String("netns", "", "open the listeners inside this named network namespace (/var/run/netns/NAME)")
	logFlag := fs.Bool("log", false, "print one line per request on stderr (method, path, token or not, status, client)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	switch *tokens {
	case imdstest.TokensOptional, imdstest.TokensRequired:
	default:
		fmt.Fprintf(stderr, "imdsv2 mock: --tokens must be optional or required, not %q\n", *tokens)
		return exitUsage
	}
	if *hopLimit < 1 || *hopLimit > 64 {
		fmt.Fprintf(stderr, "imdsv2 mock: --hop-limit must be 1..64, not %d\n", *hopLimit)
		return exitUsage
	}
	cfg := imdstest.Config{
		HTTPTokens: *tokens, HopLimit: *hopLimit, EndpointDisabled: *disabled,
		TagsEnabled: len(tags) > 0, Tags: tags, RoleName: *role, InstanceID: *instanceID, Region: *region,
		SpotActionAfter: *spotAfter, RebalanceAfter: *rebalanceAfter,
	}
	if *userData != "" {
		b, err := os.ReadFile(*userData)
		if err != nil {
			fmt.Fprintf(stderr, "imdsv2 mock: --user-data: %v\n", err)
			return exitUsage
		}
		cfg.UserData = b
	}

	srv := imdstest.NewUnstartedServer(cfg)
	defer srv.Close()
	var lns []net.Listener
	for _, addr := range strings.Split(*listen, ",") {
		ln, err := listenIn(*nsName, strings.TrimSpace(addr))
		if err != nil {
			fmt.Fprintf(stderr, "imdsv2 mock: %v\n", err)
			for _, l := range lns {
				l.Close()
			}
			return exitFail
		}
		lns = append(lns, ln)
	}
	if *logFlag {
		logRequests(ctx, srv, stderr)
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		fmt.Fprintf(stdout, "imdsv2 mock: serving IMDS at http://%s (tokens %s, hop limit %d)\n", ln.Addr(), *tokens, *hopLimit)
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "imdsv2 mock: stopping")
		return exitOK
	case err := <-errc:
		if err != nil {
			fmt.Fprintf(stderr, "imdsv2 mock: %v\n", err)
			return exitFail
		}
		return exitOK
	}
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

// logRequests prints each request once, when it has been answered (or left unanswered), until
// ctx is done. Following the server rather than polling its bounded request log keeps every
// request, once, however many come.
func logRequests(ctx context.Context, srv *imdstest.Server, w io.Writer) {
	var mu sync.Mutex
	stop := srv.Follow(func(r imdstest.Request) {
		line := formatRequest(r)
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			fmt.Fprintln(w, line)
		}
	})
	context.AfterFunc(ctx, stop)
}

// formatRequest renders one request-log entry; never a token, only whether one was sent.
func formatRequest(r imdstest.Request) string {
	kind := "IMDSv2"
	switch {
	case r.Method == "PUT":
		kind = "token"
	case !r.TokenSent:
		kind = "IMDSv1"
	}
	return fmt.Sprintf("%s %-6s %-4s %-45s %3d from %s ua=%q",
		r.Time.Format("15:04:05.000"), kind, r.Method, r.Path, r.Status, r.Remote, r.UserAgent)
}
