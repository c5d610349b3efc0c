package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/agent"
	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/ready"
)

const auditDoc = `
Usage: imdsv2 audit [flags]

Watches every request that the processes and containers of this host make to the instance
metadata service (169.254.169.254 and fd00:ec2::254, port 80) and reports who still uses IMDSv1,
so that you know when it is safe to set HttpTokens=required and what would break if you did it
now. It needs root (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, plus CAP_SYS_RESOURCE before
Linux 5.11) and Linux 5.9 or later with cgroup v2; it never changes, delays or drops a packet.

eBPF programs attached to a cgroup v2 directory (default: the root of the hierarchy, which
covers every process and container) see each connection to IMDS, the request bytes and the
answer's status line and hop limit; short-lived processes keep their command line because argv
is read in the kernel at exec. Each request is classified (imdsv1, imdsv2, token_put,
token_put_proxied, probe of another cloud's metadata path, incomplete, other), attributed
(process, command line, parent chain, user, container, systemd unit, SDK from the User-Agent)
and counted per caller. Token values and bodies are never stored or printed.

At start it prints the kernel features found and how it attached. It runs for --duration, or
until SIGINT/SIGTERM with --duration 0; on a terminal a status line shows progress. At the end
it prints the summary: a table per caller with what to do (--output text; table, its older
name, is the same), or, with --output json, one JSON object per request as it happens
("type":"request", or "type":"lost" for kernel records lost) and a last line with
"type":"summary"; field names are stable and each line carries a "schema" version of the
layout of its type (fields may be added; the number changes when one changes meaning or goes
away). An output that fails (its reader exited, its file system is full) is reported on stderr
at once and every 10s while it fails; the records it could not take are counted in the
summary's "dropped_records", and auditing and --state go on.

--state keeps the counts across restarts: read at start, written atomically every
--state-interval and at exit, and within a second of anything that changes the verdict (a new
caller, the first request of a kind, lost events, a failed token PUT), so that a crash loses at
most counts of callers already recorded, never a caller. A state file that cannot be read is
renamed aside (FILE.corrupt-TIME), never overwritten, and the command stops with an error; the
next start begins afresh. A state file of a newer version is refused and left as it is.
--metrics-addr serves the counts in the Prometheus text format at /metrics.

Exit status: 0 when the audit ran to its end, 1 when it failed while running (the ring buffer
could not be read, the state could not be written), 2 when it could not start (flags,
privileges, kernel, cgroup, state file).

Examples:
  sudo imdsv2 audit --duration 10m
  sudo imdsv2 audit --duration 0 --output json --state /var/lib/imdsv2/audit.json
  sudo imdsv2 audit --duration 0 --metrics-addr 127.0.0.1:9478 --state /var/lib/imdsv2/audit.json
  sudo imdsv2 audit --cgroup /sys/fs/cgroup/system.slice/myapp.service --duration 1h
`

// auditFlags are the parsed flags of `imdsv2 audit`.
type auditFlags struct {
	duration      time.Duration
	cgroup        string
	output        string // "text" or "json"
	state         string
	stateInterval time.Duration
	metricsAddr   string
	host          hostFlags
}

// auditConfig is the command line of `imdsv2 audit`.
type auditConfig struct {
	auditFlags
	outputChoice *choiceFlag
}

func (c *auditConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.duration, "duration", time.Minute, "how long to watch; 0 runs until SIGINT or SIGTERM")
	fs.StringVar(&c.cgroup, "cgroup", "", "watch the cgroup v2 directory `DIR` and everything below it (default: the root of the cgroup2 hierarchy, i.e. the whole host)")
	c.outputChoice = newChoice("text", "text", "json")
	c.outputChoice.aliases = map[string]string{"table": "text"}
	fs.Var(c.outputChoice, "output", "text (the summary for people at the end; table is the same) or json (JSON lines: one per request as it happens, then the summary)")
	fs.StringVar(&c.state, "state", "", "`FILE` that keeps the counts across restarts (read at start, written atomically)")
	fs.DurationVar(&c.stateInterval, "state-interval", time.Minute, "time between writes of --state")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9478 (default: off)")
	c.host.register(fs)
}

func (c *auditConfig) setArgs(args []string) error {
	c.output = c.outputChoice.value
	switch {
	case c.duration < 0:
		return usageErrorf("--duration must be 0 (until a signal) or positive, not %v", c.duration)
	case c.stateInterval <= 0:
		return usageErrorf("--state-interval must be positive, not %v", c.stateInterval)
	}
	return noArgs(args)
}

// run starts the agent, runs it until the duration ends or ctx is done, and prints the
// summary. An agent that could not start is exit 2 (cannotRun), an audit that failed while
// running (the ring buffer, the state file, the output) exit 1.
func (c *auditConfig) run(ctx context.Context, s streams) error {
	stdout, stderr := s.out, s.err
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "imdsv2 audit: "+format+"\n", a...) }
	// A reader of the output that exits must not kill the agent (SIGPIPE on stdout): writes then
	// fail with EPIPE, reported and counted, and the audit goes on.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	var lines *audit.JSONLines
	var running *agent.Agent
	opts := c.agentOptions(logf)
	if c.output == "json" {
		lines = audit.NewJSONLinesWith(stdout, audit.JSONLinesOptions{
			Warn:      func(msg string) { logf("%s", msg) },
			OnDropped: func(n uint64) { running.Auditor().DropRecords(n) },
		})
		opts.Audit.OnRecord = lines.OnRecord
	}
	running, err := agent.Start(opts)
	if err != nil {
		return cannotRun(auditStartError(err, c.state))
	}
	defer running.Close()
	fmt.Fprintf(stderr, "imdsv2 audit: attached\n%s", indent(running.Features().String()+describeHost(running.Facts())))
	// The instance's identity goes into the state file, so that ready --state needs no IMDS
	// request of its own. Read in the background, from this process's network namespace: a
	// failed read (hop limit 1 in a pod, not on EC2) is recorded and never stops the audit.
	go recordInstance(ctx, running.Auditor())

	metrics, err := serveMetrics(c.metricsAddr, running.Auditor(), stderr)
	if err != nil {
		return cannotRun(err)
	}
	defer metrics.close()

	if c.duration > 0 {
		fmt.Fprintf(stderr, "imdsv2 audit: watching for %v\n", c.duration)
	} else {
		fmt.Fprintln(stderr, "imdsv2 audit: watching until SIGINT or SIGTERM")
	}
	endStatus := startStatusLine(stderr, running, c.duration)
	sum, _, runErr := running.Wait(ctx)
	endStatus()
	runErr = errors.Join(runErr, metrics.err())
	if c.output == "json" {
		runErr = errors.Join(runErr, droppedLines(lines), writeSummaryLine(stdout, *sum))
	} else {
		runErr = errors.Join(runErr, audit.WriteTable(stdout, *sum))
	}
	if sum.LostEvents > 0 {
		fmt.Fprintf(stderr, "imdsv2 audit: warning: %d kernel records were lost (ring buffer full); requests may be missing from the counts\n", sum.LostEvents)
	}
	return runErr
}

// agentOptions are the agent's options from the command line (all but the JSON output).
func (c *auditConfig) agentOptions(logf func(string, ...any)) agent.Options {
	opts := agent.Options{Cgroup: c.cgroup, Host: c.host.paths, Stop: agent.Stop{After: c.duration},
		Audit: audit.Options{StateFile: c.state, StateInterval: c.stateInterval, Logf: logf}}
	// The host network namespace's addresses tell callers in their own network namespaces
	// (containers on a bridge) apart; without them that is left undecided.
	if host, err := ready.InspectHost("", "/nonexistent"); err == nil {
		opts.Audit.HostAddrs = host.Addrs
	}
	return opts
}

// metricsServer serves --metrics-addr; the zero value is no server.
type metricsServer struct {
	srv  *http.Server
	errc chan error
}

// serveMetrics serves the auditor's metrics at http://addr/metrics, or nothing when addr is "".
func serveMetrics(addr string, a *audit.Auditor, stderr io.Writer) (metricsServer, error) {
	if addr == "" {
		return metricsServer{}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return metricsServer{}, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.MetricsHandler())
	m := metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, errc: make(chan error, 1)}
	go func() { m.errc <- m.srv.Serve(ln) }()
	fmt.Fprintf(stderr, "imdsv2 audit: metrics at http://%s/metrics\n", ln.Addr())
	return m, nil
}

// err is why the server stopped serving, if it did.
func (m metricsServer) err() error {
	if m.srv == nil {
		return nil
	}
	select {
	case err := <-m.errc:
		return fmt.Errorf("metrics server: %w", err)
	default:
		return nil
	}
}

func (m metricsServer) close() {
	if m.srv != nil {
		m.srv.Close()
	}
}

// startStatusLine shows the status line (statusLine) when stderr is a terminal; the function
// it returns clears it and waits for it to end.
func startStatusLine(stderr io.Writer, running *agent.Agent, duration time.Duration) (end func()) {
	term, ok := stderr.(*os.File)
	if !ok || !isTerminal(term) {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		statusLine(term, running, time.Now(), duration, done)
	}()
	return func() { close(done); <-finished }
}

// auditStartError says why the agent could not start, in the words of the command line:
// the flag at fault, and what to do.
func auditStartError(err error, state string) error {
	var se *agent.StartError
	if !errors.As(err, &se) {
		return err
	}
	var missing *bpf.MissingError
	switch {
	case errors.As(err, &missing):
		return missing
	case se.Step == agent.StepState && errors.Is(err, audit.ErrCorruptState):
		return fmt.Errorf("%w\nThe file was kept (renamed, see above); start again to begin with fresh counts, or restore it.", se.Err)
	case se.Step == agent.StepState:
		return fmt.Errorf("--state %s: %w", state, se.Err)
	case se.Step == agent.StepLoad:
		// A LoadError carries the verifier's log.
		return fmt.Errorf("loading the eBPF programs: %w", se.Err)
	case se.Step == agent.StepAttach:
		return fmt.Errorf("attaching to the cgroup: %w\n(--cgroup takes a directory of the cgroup v2 hierarchy; without it the agent watches the hierarchy's root)", se.Err)
	}
	return se.Err
}

// writeSummaryLine writes the last JSON line of --output json.
func writeSummaryLine(w io.Writer, sum audit.Summary) error {
	b, err := json.Marshal(summaryLine{Type: "summary", Summary: sum})
	if err == nil {
		_, err = fmt.Fprintf(w, "%s\n", audit.EscapeJSON(b))
	}
	if err != nil {
		return fmt.Errorf("writing the summary line: %w", err)
	}
	return nil
}

// droppedLines says how many request lines of --output json could not be written, if any.
func droppedLines(lines *audit.JSONLines) error {
	if err := lines.Err(); err != nil {
		return fmt.Errorf("%d JSON records could not be written (counted in dropped_records; first error: %w)", lines.Dropped(), err)
	}
	return nil
}

// summaryLine is the last JSON line of --output json: the Summary with "type":"summary", so a
// consumer of the stream tells it from the request records by the same field.
type summaryLine struct {
	Type string `json:"type"`
	audit.Summary
}

// statusLine redraws one line on the terminal every second until done is closed: elapsed and
// remaining time, callers, IMDSv1 requests and lost events so far.
func statusLine(w io.Writer, a *agent.Agent, start time.Time, duration time.Duration, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer fmt.Fprint(w, "\r\x1b[K")
	for {
		select {
		case <-done:
			return
		case <-a.Stopping():
			fmt.Fprint(w, "\r\x1b[Kimdsv2 audit: stopping, reading the last events")
			<-done
			return
		case <-tick.C:
		}
		s, _ := a.Snapshot()
		elapsed := time.Since(start).Truncate(time.Second)
		left := "until stopped"
		if duration > 0 {
			left = (duration - elapsed).Truncate(time.Second).String() + " left"
		}
		v1 := 0
		for _, c := range s.Callers {
			if c.Class == audit.ClassIMDSv1 {
				v1++
			}
		}
		fmt.Fprintf(w, "\r\x1b[K%s elapsed, %s: %d callers, %d using IMDSv1 (%d requests), %d lost",
			elapsed, left, len(s.Callers), v1, s.Requests[audit.ClassIMDSv1], s.LostEvents)
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// indent puts two spaces before every line of s.
func indent(s string) string {
	out := make([]byte, 0, len(s)+32)
	bol := true
	for i := 0; i < len(s); i++ {
		if bol {
			out = append(out, "  "...)
		}
		out = append(out, s[i])
		bol = s[i] == '\n'
	}
	if !bol {
		out = append(out, '\n')
	}
	return string(out)
}
