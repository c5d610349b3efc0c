package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/agent"
	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/hostns"
	"github.com/imdsv2/imdsv2/ready"
	"github.com/imdsv2/imdsv2/scan"
)

const readyDoc = `
Usage: imdsv2 ready [flags]

Answers one question: can this instance require IMDSv2 (HttpTokens=required) now, and if
not, what exactly must change first? Once IMDSv2 is required, every program still using
IMDSv1 (metadata GETs without a session token) gets 401 and loses its metadata and its
instance-profile credentials.

It combines:
  - an audit of every request to IMDS, for --duration (the auditor's BPF programs attached
    to --cgroup; needs root), or the state file of an agent already running
    (imdsv2 audit --state FILE), read with --state: the processes still using IMDSv1,
    with the SDK behind them and the upgrade; token requests that got no answer (the
    hop-limit victims, usually containers behind a bridge); refused token requests;
  - the hop limit seen on token answers against the container networks of this host
    (bridges with ports, veths, CNI configurations, callers in other network namespaces);
  - IPv6 endpoint use;
  - a scan of installed software too old for IMDSv2 and of settings that allow the
    IMDSv1 fallback (--scan, on by default; --scan-path to choose where).

It prints READY or NOT READY with every reason, each naming the process or file and the
fix, then the next steps with this instance's id filled in (aws ec2
modify-instance-metadata-options, or the AWSSupport-ConfigureEC2Metadata runbook) and
what to watch afterwards. Live, ready reads the instance's identity itself, with IMDSv2 only,
so it adds nothing to MetadataNoToken; with --state it sends nothing to IMDS: the agent
recorded the identity when it started.

Ctrl-C ends the audit early and reports what was seen so far.

Exit status: 0 READY, 1 NOT READY, 2 could not decide (not on EC2, IMDS disabled, the
audit could not run; the output says why) or bad usage.

Examples:
  sudo imdsv2 ready                                # audit 5 minutes, scan, verdict
  sudo imdsv2 ready --duration 1h --output json > ready.json
  imdsv2 ready --state /var/lib/imdsv2/audit.json  # use the running agent's audit
  sudo imdsv2 ready --scan-path /opt,/srv --live   # show requests as they are seen
`

// probeClient returns an IMDSv2-only client whose time-outs grow with budget, so that a
// generous --timeout also covers a slow connect or a slow answer.
func probeClient(endpoint string, budget time.Duration) (*imds.Client, error) {
	return imds.New(imds.Options{Endpoint: endpoint, Timeout: budget,
		DialTimeout:    max(imds.DefaultDialTimeout, budget/4),
		RequestTimeout: max(imds.DefaultRequestTimeout, budget/4),
		TokenTimeout:   max(imds.DefaultTokenTimeout, budget/4)})
}

// readIdentity reads the instance's identity with IMDSv2; only the instance id is required.
func readIdentity(ctx context.Context, c *imds.Client) (*ready.Identity, error) {
	id, err := c.InstanceID(ctx)
	if err != nil {
		return nil, err
	}
	ident := &ready.Identity{InstanceID: id}
	ident.Region, _ = c.Region(ctx)
	ident.AvailabilityZone, _ = c.AvailabilityZone(ctx)
	ident.InstanceType, _ = c.InstanceType(ctx)
	return ident, nil
}

// identityFromState returns the instance's identity as the agent that wrote the state read
// it, or why it could not: the error of its read (as the imds sentinel it was), or that it
// recorded none (an older agent).
func identityFromState(s *audit.Summary) (*ready.Identity, error) {
	if s == nil {
		return nil, nil // the audit error says why
	}
	in := s.Instance
	switch {
	case in != nil && in.InstanceID != "" && in.Error == "":
		return in, nil
	case in == nil:
		return nil, errors.New("the agent that wrote the state recorded no instance identity (an older agent, " +
			"or it has not read it yet); run the current imdsv2 audit")
	}
	sentinel := map[string]error{"disabled": imds.ErrDisabled, "unreachable": imds.ErrUnreachable,
		"hop limit": imds.ErrHopLimit}[in.ErrorKind]
	if sentinel == nil {
		return nil, fmt.Errorf("the agent could not read this instance's identity: %s", in.Error)
	}
	return nil, fmt.Errorf("%w: the agent could not read this instance's identity: %s", sentinel, in.Error)
}

// readyConfig is the command line of `imdsv2 ready`.
type readyConfig struct {
	duration    time.Duration
	cgroup      string
	minWatch    time.Duration
	state       string
	scan        bool
	scanPaths   stringsFlag
	scanTimeout time.Duration
	timeout     time.Duration
	live        bool
	cniDir      string
	host        hostFlags
	output      *choiceFlag
}

func (c *readyConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.duration, "duration", 5*time.Minute, "how long to audit IMDS requests (ignored with --state)")
	fs.StringVar(&c.cgroup, "cgroup", "", "the verdict is about the cgroup v2 directory `DIR` and everything below it: audited live, or required of --state's coverage (default: the whole instance)")
	fs.DurationVar(&c.minWatch, "min-watch", ready.DefaultMinWatch, "least watched time for a verdict other than UNDECIDED (for fleets: 24h or more)")
	fs.StringVar(&c.state, "state", "", "read the audit from `FILE`, the state file of a running imdsv2 audit --state, instead of auditing")
	fs.BoolVar(&c.scan, "scan", true, "scan installed software and settings for what cannot use IMDSv2 (--scan=false: do not)")
	fs.Var(&c.scanPaths, "scan-path", "`DIR`s to scan, comma-separated or repeated (default: "+strings.Join(scan.DefaultRoots(), ",")+")")
	fs.DurationVar(&c.scanTimeout, "scan-timeout", scan.DefaultTimeout, "time bound of the scan")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "time budget for ready's own IMDSv2 requests (the instance's identity)")
	fs.BoolVar(&c.live, "live", false, "print each IMDS request to stderr as it is seen")
	fs.StringVar(&c.cniDir, "cni-dir", ready.DefaultCNIDir, "CNI network configurations in `DIR`")
	c.host.register(fs)
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text or json")
}

func (c *readyConfig) setArgs(args []string) error {
	if c.duration <= 0 || c.timeout <= 0 || c.minWatch < 0 {
		return usageErrorf("--duration and --timeout must be positive, --min-watch not negative")
	}
	return noArgs(args)
}

// run gathers the evidence, prints the report and exits with the verdict's status.
func (c *readyConfig) run(ctx context.Context, s streams) error {
	in, err := c.input(ctx, s.err)
	if err != nil {
		return err
	}
	rep := ready.Evaluate(in)
	if c.output.json() {
		err = ready.WriteJSON(s.out, rep)
	} else {
		err = ready.WriteText(s.out, rep)
	}
	if err != nil {
		fmt.Fprintf(s.err, "imdsv2 ready: %v\n", err)
	}
	return exitStatus(rep.ExitCode())
}

// input gathers what the verdict is made of: the identity, the host's networks, the scan and
// the audit (live, or from --state).
func (c *readyConfig) input(ctx context.Context, stderr io.Writer) (ready.Input, error) {
	in := ready.Input{Source: "live", MinWatch: c.minWatch}
	if c.minWatch == 0 {
		in.MinWatch = time.Nanosecond // no minimum asked for (0 in Input means the default)
	}
	if c.cgroup != "" {
		sc, err := scopeOf(c.cgroup, c.host.paths.Cgroup)
		if err != nil {
			return in, usageErrorf("--cgroup: %v", err)
		}
		in.Scope = sc
	}
	// With --state, everything comes from the agent's file, the instance's identity
	// included: ready sends no request to IMDS. Live, ready reads the identity itself first.
	if c.state == "" {
		client, err := probeClient("", c.timeout)
		if err != nil {
			return in, usageErrorf("%v", err)
		}
		in.Identity, in.ProbeErr = readIdentity(ctx, client)
	} else {
		in.Source = "state"
		in.Summary, in.AuditErr = ready.ReadState(c.state)
		in.Identity, in.ProbeErr = identityFromState(in.Summary)
	}
	if in.ProbeErr != nil && c.state == "" {
		return in, nil
	}
	var err error
	in.Host, err = ready.InspectHost("", c.cniDir)
	if err != nil {
		fmt.Fprintf(stderr, "imdsv2 ready: warning: %v\n", err)
	}
	var scanDone chan struct{}
	if c.scan {
		scanDone = make(chan struct{})
		go func() {
			defer close(scanDone)
			// Ctrl-C ends the scan too; a partial scan is reported as such.
			in.Scan, in.ScanErr = scan.Run(ctx, scan.Options{Roots: c.scanPaths, Timeout: c.scanTimeout})
		}()
	}
	if c.state == "" {
		in.Summary, in.Duration, in.AuditErr = liveAudit(ctx, c.cgroup, c.host.paths, c.duration, c.live, in.Host, stderr)
	}
	if scanDone != nil {
		<-scanDone
	}
	return in, nil
}

// scopeOf describes the cgroup directory dir for a scoped verdict: its path relative to the
// cgroup2 root (hostCgroup, the host's mount given with --host-cgroup, or the mount found
// here) and its id, which a coverage span of the same cgroup carries.
func scopeOf(dir, hostCgroup string) (*ready.Scope, error) {
	id, err := cgroup.ID(dir)
	if err != nil {
		return nil, err
	}
	sc := &ready.Scope{Cgroup: dir, ID: id}
	mp, err := hostCgroup, error(nil)
	if mp == "" {
		mp, err = cgroup.Mountpoint()
	}
	if err == nil {
		if rel, err := filepath.Rel(mp, dir); err == nil && !strings.HasPrefix(rel, "..") {
			sc.Rel = filepath.Clean("/" + rel)
		}
	}
	return sc, nil
}

// liveAudit runs the agent on cgroupPath for d, or until ctx is done, then waits for the
// answers of requests still pending.
func liveAudit(ctx context.Context, cgroupPath string, hostPaths hostns.Paths, d time.Duration, live bool,
	host *ready.Host, stderr io.Writer) (*audit.Summary, time.Duration, error) {
	opts := agent.Options{Cgroup: cgroupPath, Host: hostPaths, Stop: agent.Stop{After: d, Settle: true}}
	if host != nil {
		opts.Audit.HostAddrs = host.Addrs
	}
	if live {
		opts.Audit.OnRecord = func(r audit.Record) {
			fmt.Fprintf(stderr, "  %s\n", ready.FormatRecord(r))
		}
	}
	a, err := agent.Start(opts)
	if err != nil {
		return nil, 0, err
	}
	where := cgroupPath
	if where == "" {
		where = "the whole host"
	}
	fmt.Fprintf(stderr, "imdsv2 ready: auditing IMDS requests of %s for %s (Ctrl-C ends early)\n", where, d)
	return a.Wait(ctx)
}
