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
	"sync"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

const demoDoc = `
Usage: imdsv2 demo

Shows the whole move to IMDSv2 on a private, simulated EC2 instance, in under a minute.
It needs root (network namespaces, a cgroup, the auditor's BPF programs) and touches
neither this machine's network nor its other processes.

Every EC2 instance has a metadata service (IMDS) at 169.254.169.254 that tells programs
who they are and hands them the instance role's credentials. Its old protocol, IMDSv1, is
a plain GET that anything able to send a request can abuse; IMDSv2 first asks for a
session token. AWS recommends requiring IMDSv2 (HttpTokens=required), but every program
still using IMDSv1 then breaks. The demo shows how imdsv2 finds them first:

  1. builds a small private network: the metadata service (this project's emulator, set
     to HttpTokens=optional and hop limit 1, the old defaults), an "instance" one network
     hop away and a "container" on a bridge inside it, two hops away;
  2. attaches the auditor to a cgroup of its own (never the machine's root cgroup) and runs
     real programs in it: curl and python3 without a token (IMDSv1), 'imdsv2 get' (IMDSv2),
     and 'imdsv2 get' in the container, which the hop limit stops;
  3. shows each request as the auditor sees it, then the 'imdsv2 ready' report: NOT READY,
     naming every program to fix and why;
  4. enforces IMDSv2 and raises the hop limit to 2, runs the same programs again, and shows
     who is now refused and who now works.

Everything it creates is removed when it ends, also on error or Ctrl-C.
`

const demoInstanceID = "i-0demo1234567890ab"

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
	d := &demo{ctx: ctx, out: stdout, self: self, notify: make(chan struct{}, 1)}
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

// demoCaller is one program the demo runs against the metadata service.
type demoCaller struct {
	label string // for the final table
	ns    testbed.NS
	about string // what it is, for someone who never heard of IMDS
	argv  []string
	shown string // the command line as printed

	ok [2]bool // outcome per round
}

// seenRecord is one auditor record, formatted when it arrived.
type seenRecord struct {
	pids []uint32 // the caller and its parents
	line string
}

type demo struct {
	ctx  context.Context
	out  io.Writer
	self string
	bed  *testbed.Bed
	srv  *imdstest.Server
	cg   *cgroup.Group
	step int

	mu     sync.Mutex
	seen   []seenRecord
	notify chan struct{}
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demo) heading(title string) {
	d.step++
	d.say("\n== %d. %s", d.step, title)
}

// onRecord is called by the auditor for every request it has seen through.
func (d *demo) onRecord(r audit.Record) {
	rec := seenRecord{pids: []uint32{r.Process.PID}, line: ready.FormatRecord(r)}
	for _, p := range r.Process.Parents {
		rec.pids = append(rec.pids, p.PID)
	}
	d.mu.Lock()
	d.seen = append(d.seen, rec)
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// showSeen waits (bounded) until the auditor reported a request of pid, then prints what it
// reported since the last call.
func (d *demo) showSeen(pid uint32) {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		found := false
		for _, r := range d.seen {
			for _, p := range r.pids {
				found = found || p == pid
			}
		}
		if found {
			for _, r := range d.seen {
				d.say("     auditor saw: %s", r.line)
			}
			d.seen = nil
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		select {
		case <-d.notify:
		case <-deadline.C:
			d.say("     auditor saw: nothing (yet)")
			return
		case <-d.ctx.Done():
			return
		}
	}
}

// callerEnv is the demo's environment without AWS settings and proxies, which would change
// what the callers do.
func callerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runCaller runs c inside the demo cgroup and its namespace and prints its output and what
// the auditor saw. It reports whether the program succeeded.
func (d *demo) runCaller(c *demoCaller) (bool, error) {
	cmd := exec.CommandContext(d.ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = callerEnv()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	d.cg.Prepare(cmd)
	shown := c.shown
	d.say("\n   %s, in the %s:", c.about, c.ns)
	d.say("   $ %s", shown)
	err := d.bed.Run(c.ns, cmd)
	if d.ctx.Err() != nil {
		return false, d.ctx.Err()
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		d.say("     %s", line)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return false, fmt.Errorf("run %s: %w", shown, err)
	}
	if cmd.Process != nil {
		d.showSeen(uint32(cmd.Process.Pid))
	}
	return err == nil, nil
}

// lookPath prefers the system's own copy of a program to shims (pyenv and the like), which
// are slow to start and may need the caller's shell set-up.
func lookPath(name string) (string, error) {
	for _, dir := range []string{"/usr/bin", "/usr/local/bin", "/bin"} {
		if fi, err := os.Stat(dir + "/" + name); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return dir + "/" + name, nil
		}
	}
	return exec.LookPath(name)
}

func (d *demo) callers() []*demoCaller {
	var cs []*demoCaller
	url := imdsfacts.EndpointIPv4 + "/latest/meta-data/"
	if curl, err := lookPath("curl"); err == nil {
		cs = append(cs, &demoCaller{label: "curl (shell script)", ns: testbed.Instance,
			about: "A shell script reads the instance id with curl, without a token (IMDSv1)",
			argv:  []string{curl, "-sS", "-f", "-m", "10", url + "instance-id"},
			shown: "curl -sS -f " + url + "instance-id"})
	} else {
		d.say("   (curl is not installed here: skipping the curl caller)")
	}
	if py, err := lookPath("python3"); err == nil {
		cs = append(cs, &demoCaller{label: "python3 (script)", ns: testbed.Instance,
			about: "A Python script reads the instance's IAM role, without a token (IMDSv1)",
			argv: []string{py, "-c", "import sys, urllib.request as u\ntry:\n print(u.urlopen('" + url +
				"iam/security-credentials/', timeout=10).read().decode())\nexcept Exception as e:\n sys.exit('error: %s' % e)"},
			shown: "python3 -c 'urllib.request.urlopen(\"" + url + "iam/security-credentials/\")'"})
	} else {
		d.say("   (python3 is not installed here: skipping the Python caller)")
	}
	return append(cs,
		&demoCaller{label: "imdsv2 get (host)", ns: testbed.Instance,
			about: "This project's client reads the region, with a session token (IMDSv2)",
			argv:  []string{d.self, "get", "--timeout=20s", "meta-data/placement/region"},
			shown: "imdsv2 get meta-data/placement/region"},
		&demoCaller{label: "imdsv2 get (container)", ns: testbed.Container,
			about: "An app in a container on a bridge reads the instance id, with a session token (IMDSv2)",
			argv:  []string{d.self, "get", "--timeout=20s", "meta-data/instance-id"},
			shown: "imdsv2 get meta-data/instance-id"})
}

func (d *demo) run() error {
	start := time.Now()
	d.say("imdsv2 demo: moving an EC2 instance to IMDSv2 without breaking anything.")
	d.say("")
	d.say("Programs on an EC2 instance ask the instance metadata service (IMDS, at 169.254.169.254)")
	d.say("who they are and for the credentials of the instance's role. The old way, IMDSv1, is a plain")
	d.say("GET; the safe way, IMDSv2, first asks for a session token. Requiring IMDSv2 closes the old way,")
	d.say("and every program still using it breaks. This demo finds those programs first, on a simulated")
	d.say("instance built from private network namespaces (nothing here touches the real network).")

	d.heading("Build a simulated instance")
	// A demo killed before its clean-up left namespaces behind: remove those first.
	_, _ = testbed.CleanupStale("imdsv2demo")
	bed, err := testbed.New(testbed.Config{Prefix: "imdsv2demo"})
	if err != nil {
		return err
	}
	defer bed.Close()
	d.bed = bed
	d.srv = imdstest.NewUnstartedServer(imdstest.Config{
		HTTPTokens: imdstest.TokensOptional, HopLimit: 1, InstanceID: demoInstanceID, Region: "eu-west-1",
		RoleName: "demo-app-role",
	})
	defer d.srv.Close()
	if err := bed.ServeIMDS(d.srv); err != nil {
		return err
	}
	d.cg, err = cgroup.NewSwept("", "imdsv2demo-")
	if err != nil {
		return err
	}
	defer d.cg.Remove()
	host, err := ready.InspectHost(bed.Path(testbed.Instance), "/nonexistent/imdsv2-demo-cni")
	if err != nil {
		return err
	}
	live, err := ready.StartLive(ready.LiveOptions{Cgroup: d.cg.Path(), HostAddrs: host.Addrs, OnRecord: d.onRecord})
	if err != nil {
		return err
	}
	defer live.Close()
	d.say("   metadata service  the emulator at 169.254.169.254, set like an older instance:")
	d.say("                     HttpTokens=optional (IMDSv1 allowed), HttpPutResponseHopLimit=1")
	d.say("   instance          the EC2 instance itself, one network hop from the metadata service")
	d.say("   container         a container on a bridge inside the instance, two hops away")
	d.say("   auditor           eBPF programs on the demo's own cgroup %s,", d.cg.Path())
	d.say("                     watching every request the programs below send to the metadata service")

	d.heading("Today: the programs on this instance use the metadata service")
	cs := d.callers()
	for _, c := range cs {
		if c.ok[0], err = d.runCaller(c); err != nil {
			return err
		}
	}

	d.heading("imdsv2 ready: can this instance require IMDSv2 now?")
	live.Settle(d.ctx)
	summary, dur := live.Snapshot()
	client, err := imds.New(imds.Options{Endpoint: imds.EndpointIPv4, HTTPClient: bed.HTTPClient(testbed.Instance, 20*time.Second),
		Timeout: 20 * time.Second, DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	ident, probeErr := readIdentity(d.ctx, client)
	// The demo watched its own cgroup, so its verdict is about that cgroup; its callers use
	// IMDSv1, so the verdict is NOT READY whatever the coverage. Its programs run for
	// seconds, so a second of watching is its minimum (a real audit's default is 5 minutes).
	rep := ready.Evaluate(ready.Input{Identity: ident, ProbeErr: probeErr, Summary: summary, Source: "live",
		Duration: dur, Host: host, Scope: &ready.Scope{Cgroup: d.cg.Path(), ID: d.cg.ID()}, MinWatch: time.Second})
	var text bytes.Buffer
	if err := ready.WriteText(&text, rep); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(text.String(), "\n"), "\n") {
		d.say("   %s", line)
	}

	d.heading("Fix the container's hop limit and require IMDSv2")
	d.say("   On EC2, once ready says READY for the whole instance, its next steps give the command:")
	d.say("   $ %s", imdsfacts.Enforce(imdsfacts.MetadataOptions{InstanceID: demoInstanceID, HopLimit: rep.HopLimit.Recommended}).CLI)
	d.say("   (In a real move the IMDSv1 programs are fixed first; here we enforce anyway to show what breaks.)")
	d.srv.Update(func(c *imdstest.Config) {
		c.HTTPTokens = imdstest.TokensRequired
		c.HopLimit = rep.HopLimit.Recommended
	})

	d.heading("After: the same programs again")
	for _, c := range cs {
		if c.ok[1], err = d.runCaller(c); err != nil {
			return err
		}
	}

	d.heading("What changed")
	outcome := map[bool]string{true: "works", false: "FAILS"}
	for _, c := range cs {
		note := ""
		switch {
		case c.ok[0] && !c.ok[1]:
			note = "  <- used IMDSv1: refused with 401 now; fix it before enforcing (the report named it)"
		case !c.ok[0] && c.ok[1]:
			note = "  <- its token answer now survives the bridge (hop limit 2)"
		}
		d.say("%s", strings.TrimRight(fmt.Sprintf("   %-24s before: %-6s after: %-6s%s", c.label, outcome[c.ok[0]], outcome[c.ok[1]], note), " "))
	}
	d.say("\nVerdict before enforcing: %s. Done in %s; the namespaces, the cgroup and the auditor are gone.",
		rep.Verdict, time.Since(start).Round(100*time.Millisecond))
	return nil
}
