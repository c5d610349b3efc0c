package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

const demoDoc = `
Usage: imdsv2 demo

Shows, on this machine and without touching its network, what IMDSv2 and the hop limit mean.
It needs root (to create network namespaces) and takes a few seconds.

It builds a small private network out of network namespaces:

  imds       the metadata service (this project's emulator) at 169.254.169.254 and fd00:ec2::254
  instance   an "EC2 instance", one network hop from IMDS
  container  a "container" on a bridge inside the instance, two hops from IMDS

then runs 'imdsv2 get' as a real process in the instance (IPv4 and IPv6) and in the container,
first with the instance's hop limit at 1 (the default) and then at 2, and explains each outcome.
The whole demo runs inside a private network namespace of its own; everything it creates is
removed when it ends, also on Ctrl-C.
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", demoDoc, stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if why := privtest.Missing(); why != "" {
		fmt.Fprintf(stderr, "imdsv2 demo: %s\n", why)
		return exitUsage
	}
	// From here on this process (re-executed) has a network namespace with only loopback, so no
	// mistake can send a packet to the machine's network.
	if err := netguard.Reexec(); err != nil {
		fmt.Fprintf(stderr, "imdsv2 demo: %v\n", err)
		return exitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "imdsv2 demo: %v\n", err)
		return exitUsage
	}
	d := &demo{ctx: ctx, out: stdout, self: self}
	if err := d.run(); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "imdsv2 demo: interrupted; everything it created has been removed")
			return exitFail
		}
		fmt.Fprintf(stderr, "imdsv2 demo: %v\n", err)
		return exitFail
	}
	return exitOK
}

type demo struct {
	ctx  context.Context
	out  io.Writer
	self string
	bed  *testbed.Bed
	srv  *imdstest.Server
	step int
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demo) heading(title string) {
	d.step++
	d.say("\n== %d. %s", d.step, title)
}

// get runs `imdsv2 get ARGS...` as a process inside ns and returns its combined output.
func (d *demo) get(ns testbed.NS, args ...string) (string, error) {
	cmd := exec.CommandContext(d.ctx, d.self, append([]string{"get"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // no AWS_* from the caller's shell
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	d.say("   $ imdsv2 get %s        (in the %s namespace)", strings.Join(args, " "), ns)
	err := d.bed.Run(ns, cmd)
	out := strings.TrimSpace(buf.String())
	for _, line := range strings.Split(out, "\n") {
		d.say("     %s", line)
	}
	return out, err
}

func (d *demo) run() error {
	start := time.Now()
	d.say("imdsv2 demo: IMDSv2 session tokens and the hop limit, on a private test network.")
	bed, err := testbed.New(testbed.Config{Prefix: "imdsv2demo"})
	if err != nil {
		return err
	}
	defer bed.Close()
	d.bed = bed
	d.srv = imdstest.NewUnstartedServer(imdstest.Config{
		HTTPTokens: imdstest.TokensOptional, HopLimit: 1,
		InstanceID: "i-0demo1234567890ab", Region: "eu-west-1",
	})
	defer d.srv.Close()
	if err := bed.ServeIMDS(d.srv); err != nil {
		return err
	}
	d.say("Built three network namespaces: imds (the emulator at 169.254.169.254 and fd00:ec2::254),")
	d.say("instance (one hop away) and container (behind a bridge in the instance, two hops away).")
	d.say("The instance is set to HttpTokens=optional and HttpPutResponseHopLimit=1, the AWS defaults.")

	d.heading("The instance reads its ID with IMDSv2 over IPv4")
	d.say("   IMDSv2 first asks for a session token (PUT /latest/api/token), then sends it with each read.")
	if _, err := d.get(testbed.Instance, "meta-data/instance-id"); err != nil {
		return fmt.Errorf("instance read over IPv4 failed: %w", err)
	}

	d.heading("The same over IPv6 (fd00:ec2::254, Nitro instances with HttpProtocolIpv6=enabled)")
	if _, err := d.get(testbed.Instance, "--endpoint-mode", "ipv6", "meta-data/placement/region"); err != nil {
		return fmt.Errorf("instance read over IPv6 failed: %w", err)
	}

	d.heading("A container on a bridge tries the same, with the hop limit at 1")
	d.say("   IMDS sends its token answer with IP TTL = hop limit = 1. The bridge is one more routing hop,")
	d.say("   so the answer is dropped on the way: the request hangs. Most SDKs then silently fall back")
	d.say("   to IMDSv1, which breaks the day IMDSv2 is required. imdsv2 says what happened instead:")
	out, err := d.get(testbed.Container, "meta-data/instance-id")
	var exit *exec.ExitError
	if err == nil || !errors.As(err, &exit) || !strings.Contains(out, "hop") {
		return fmt.Errorf("expected the hop-limit error in the container, got %v: %s", err, out)
	}

	d.heading("The operator raises the hop limit to 2")
	d.say("   On EC2: aws ec2 modify-instance-metadata-options --instance-id i-0demo1234567890ab \\")
	d.say("             --http-put-response-hop-limit 2 --http-tokens required --http-endpoint enabled")
	d.srv.Update(func(c *imdstest.Config) { c.HopLimit = 2 })
	if _, err := d.get(testbed.Container, "meta-data/instance-id"); err != nil {
		return fmt.Errorf("container read with hop limit 2 failed: %w", err)
	}

	d.heading("What the metadata service saw")
	v1 := 0
	for _, r := range d.srv.Requests() {
		if r.IMDSv1() {
			v1++
		}
		d.say("   %s", formatRequest(r))
	}
	d.say("\nResult: every read used a session token (%d IMDSv1 requests). The container needed hop limit 2.", v1)
	d.say("Done in %s; the namespaces and the emulator are gone.", time.Since(start).Round(100*time.Millisecond))
	return nil
}
