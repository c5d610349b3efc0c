package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/imdsv2/imdsv2/agent"
	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/bpf"
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
Usage: imdsv2 demo [--output text|json]

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

With --output json the story goes to stderr and stdout carries one JSON document: "schema",
ready's "verdict" before enforcing, each caller's outcome before and after ("callers":
caller, command, where, before, after: works or fails), ready's whole "report" and "seconds".

Exit status: 0 when the demo ran to its end, 1 when a step failed or it was interrupted, 2
when it cannot run here (not root, no network namespaces).
`

const demoInstanceID = "i-0demo1234567890ab"

// demoSchema is the version of the layout of the demo's JSON document.
const demoSchema = 1

// demoResult is the --output json document of `imdsv2 demo`.
type demoResult struct {
	Schema int `json:"schema"`
	// Verdict is ready's verdict before enforcing (NOT READY: the demo's callers use IMDSv1).
	Verdict ready.Verdict `json:"verdict"`
	Callers []demoOutcome `json:"callers"`
	Report  *ready.Report `json:"report"`
	Seconds float64       `json:"seconds"`
}

// demoOutcome is what one caller did before and after IMDSv2 was required.
type demoOutcome struct {
	Caller  string `json:"caller"`
	Command string `json:"command"`
	Where   string `json:"where"` // "instance" or "container"
	Before  string `json:"before"`
	After   string `json:"after"`
}

// demoConfig is the command line of `imdsv2 demo`.
type demoConfig struct {
	output *choiceFlag
}

func (c *demoConfig) register(fs *flag.FlagSet) {
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text (the story, for people) or json (the story on stderr, the outcome as JSON on stdout)")
}

func (c *demoConfig) setArgs(args []string) error { return noArgs(args) }

func (c *demoConfig) run(ctx context.Context, s streams) error {
	if why := privtest.Missing(); why != "" {
		return cannotRun(errors.New(why))
	}
	// From here on this process (re-executed) has a network namespace with only loopback, so no
	// mistake can send a packet to the machine's network.
	if err := netguard.Reexec(); err != nil {
		return cannotRun(err)
	}
	self, err := os.Executable()
	if err != nil {
		return cannotRun(err)
	}
	d := &demo{ctx: ctx, out: s.out, self: self, notify: make(chan struct{}, 1)}
	if c.output.json() {
		d.out = s.err
	}
	res, err := d.run()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted; everything it created has been removed")
		}
		return err
	}
	if c.output.json() {
		return writeJSON(s.out, res)
	}
	return nil
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
	host *ready.Host
	step int

	closers []func() // what close undoes

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

// run tells the story: a simulated instance, its callers before, ready's verdict, enforcement,
// the callers after. Everything it created is removed when it returns.
func (d *demo) run() (*demoResult, error) {
	start := time.Now()
	d.intro()
	defer d.close()
	live, err := d.build()
	if err != nil {
		return nil, err
	}

	d.heading("Today: the programs on this instance use the metadata service")
	cs := d.callers()
	if err := d.round(cs, 0); err != nil {
		return nil, err
	}

	d.heading("imdsv2 ready: can this instance require IMDSv2 now?")
	rep, err := d.verdict(live)
	if err != nil {
		return nil, err
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
	if err := d.round(cs, 1); err != nil {
		return nil, err
	}

	d.heading("What changed")
	res := &demoResult{Schema: demoSchema, Verdict: rep.Verdict, Report: rep, Callers: []demoOutcome{}}
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
		res.Callers = append(res.Callers, demoOutcome{Caller: c.label, Command: c.shown, Where: c.ns.String(),
			Before: strings.ToLower(outcome[c.ok[0]]), After: strings.ToLower(outcome[c.ok[1]])})
	}
	res.Seconds = time.Since(start).Round(100 * time.Millisecond).Seconds()
	d.say("\nVerdict before enforcing: %s. Done in %s; the namespaces, the cgroup and the auditor are gone.",
		rep.Verdict, time.Since(start).Round(100*time.Millisecond))
	return res, nil
}

// intro says what IMDS is and what the demo shows, for someone who never heard of it.
func (d *demo) intro() {
	d.say("imdsv2 demo: moving an EC2 instance to IMDSv2 without breaking anything.")
	d.say("")
	d.say("Programs on an EC2 instance ask the instance metadata service (IMDS, at 169.254.169.254)")
	d.say("who they are and for the credentials of the instance's role. The old way, IMDSv1, is a plain")
	d.say("GET; the safe way, IMDSv2, first asks for a session token. Requiring IMDSv2 closes the old way,")
	d.say("and every program still using it breaks. This demo finds those programs first, on a simulated")
	d.say("instance built from private network namespaces (nothing here touches the real network).")
}

// onClose registers what close undoes, last first.
func (d *demo) onClose(f func()) { d.closers = append(d.closers, f) }

// close removes everything the demo created, in the reverse order of creation.
func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// build makes the simulated instance: the test bed with the emulator, the demo's cgroup and
// the auditor attached to it.
func (d *demo) build() (*agent.Agent, error) {
	d.heading("Build a simulated instance")
	// A demo killed before its clean-up left namespaces behind: remove those first.
	_, _ = testbed.CleanupStale("imdsv2demo")
	bed, err := testbed.New(testbed.Config{Prefix: "imdsv2demo"})
	if err != nil {
		return nil, err
	}
	d.onClose(func() { bed.Close() })
	d.bed = bed
	d.srv = imdstest.NewUnstartedServer(imdstest.Config{
		HTTPTokens: imdstest.TokensOptional, HopLimit: 1, InstanceID: demoInstanceID, Region: "eu-west-1",
		RoleName: "demo-app-role",
	})
	d.onClose(d.srv.Close)
	if err := bed.ServeIMDS(d.srv); err != nil {
		return nil, err
	}
	d.cg, err = cgroup.NewSwept("", "imdsv2demo-")
	if err != nil {
		return nil, err
	}
	d.onClose(func() { d.cg.Remove() })
	d.host, err = ready.InspectHost(bed.Path(testbed.Instance), "/nonexistent/imdsv2-demo-cni")
	if err != nil {
		return nil, err
	}
	// The simulated instance's network namespace is the host's for the auditor.
	live, err := agent.Start(agent.Options{Cgroup: d.cg.Path(), BPF: bpf.Options{HostNetns: bed.Path(testbed.Instance)},
		Audit: audit.Options{HostAddrs: d.host.Addrs, OnRecord: d.onRecord}})
	if err != nil {
		return nil, err
	}
	d.onClose(func() { live.Close() })
	d.say("   metadata service  the emulator at 169.254.169.254, set like an older instance:")
	d.say("                     HttpTokens=optional (IMDSv1 allowed), HttpPutResponseHopLimit=1")
	d.say("   instance          the EC2 instance itself, one network hop from the metadata service")
	d.say("   container         a container on a bridge inside the instance, two hops away")
	d.say("   auditor           eBPF programs on the demo's own cgroup %s,", d.cg.Path())
	d.say("                     watching every request the programs below send to the metadata service")
	return live, nil
}

// round runs every caller once and records whether it worked, in round 0 (before) or 1 (after).
func (d *demo) round(cs []*demoCaller, n int) error {
	for _, c := range cs {
		var err error
		if c.ok[n], err = d.runCaller(c); err != nil {
			return err
		}
	}
	return nil
}

// verdict is `imdsv2 ready` on the demo's audit: it prints the report and returns it.
func (d *demo) verdict(live *agent.Agent) (*ready.Report, error) {
	live.Settle(d.ctx)
	summary, dur := live.Snapshot()
	client, err := imds.New(imds.Options{Endpoint: imds.EndpointIPv4, HTTPClient: d.bed.HTTPClient(testbed.Instance, 20*time.Second),
		Timeout: 20 * time.Second, DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	ident, probeErr := readIdentity(d.ctx, client)
	// The demo watched its own cgroup, so its verdict is about that cgroup; its callers use
	// IMDSv1, so the verdict is NOT READY whatever the coverage. Its programs run for
	// seconds, so a second of watching is its minimum (a real audit's default is 5 minutes).
	rep := ready.Evaluate(ready.Input{Identity: ident, ProbeErr: probeErr, Summary: summary, Source: "live",
		Duration: dur, Host: d.host, Scope: &ready.Scope{Cgroup: d.cg.Path(), ID: d.cg.ID()}, MinWatch: time.Second})
	var text bytes.Buffer
	if err := ready.WriteText(&text, rep); err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimRight(text.String(), "\n"), "\n") {
		d.say("   %s", line)
	}
	return rep, nil
}
