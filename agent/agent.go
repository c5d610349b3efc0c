// Package agent runs the auditor on this host: it loads the eBPF programs (package bpf),
// attaches them to a cgroup, feeds what they report to an audit.Auditor, and stops them when
// Options.Stop says so, after reading what the kernel had already reported.
//
// `imdsv2 audit`, `imdsv2 ready` and `imdsv2 demo` run it; each decides only what to print.
// The facts about how the agent sees the host (its namespaces, the host paths given) are
// decided here once and recorded in the audit's coverage.
//
//	a, err := agent.Start(agent.Options{Cgroup: dir, Stop: agent.Stop{After: time.Minute}})
//	if err != nil { ... }                // a *StartError: which step failed, and why
//	fmt.Print(a.Features())              // what was attached, and how
//	sum, watched, err := a.Wait(ctx)     // until a minute has passed or ctx is done
//
// Tests must attach to a cgroup of their own (see internal/cgroup), never to the root.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/internal/hostns"
)

// Options configure Start. The zero value watches the whole host, from this process's view
// of it, until the context given to Wait is done.
type Options struct {
	// Cgroup is the cgroup v2 directory whose processes are audited, with everything below
	// it; "" means the root of the hierarchy (every process and container of the host), and
	// then Start refuses to run where this process does not see the host (a container's own
	// cgroup or pid namespace without the host paths). Tests and the demo pass a cgroup of
	// their own.
	Cgroup string
	// Host are the host's /proc and cgroup2 mount as this process sees them, for an agent in
	// a container (the CLI's --host-proc and --host-cgroup); "" means this process's own.
	// They name callers (the default Audit.ProcessTable), set BPF.HostCgroup and, from the
	// host's pid 1, BPF.HostNetns (when those are ""), and are recorded, with this process's
	// namespaces, in the coverage (Audit.Agent).
	Host hostns.Paths
	// BPF configures the kernel side; the zero value audits the real IMDS addresses.
	BPF bpf.Options
	// Audit configures the auditor. Agent and ProcessTable are filled from Host when nil.
	Audit audit.Options
	// Stop says when Wait ends the audit.
	Stop Stop
	// Grace bounds how long Settle (and Wait with Stop.Settle) waits for requests still
	// waiting for their answers to be resolved (answered, their connection closed, or
	// reported unanswered). Default Audit.TokenAnswerTimeout plus one second; the wait ends
	// as soon as nothing is pending.
	Grace time.Duration
}

// Stop says when Wait ends the audit: at the first of the context given to Wait being done,
// After having passed, and Until returning true. The zero value waits for the context only.
type Stop struct {
	// After ends the audit this long after Start; 0: no time limit.
	After time.Duration
	// Until, if set, is asked every 50 ms (from Wait's goroutine) and ends the audit when it
	// returns true.
	Until func(*Agent) bool
	// Settle makes Wait, once told to stop, wait first (at most Options.Grace) for requests
	// still waiting for their answers, so that a token PUT is reported answered or
	// unanswered rather than cut off. An audit that stops on a signal does not want it.
	Settle bool
}

// Step names the step of Start that failed.
type Step string

// The steps of Start, in order.
const (
	StepHost   Step = "host"   // the host paths or this process's namespaces
	StepState  Step = "state"  // the auditor, reading Audit.StateFile
	StepLoad   Step = "load"   // privileges, kernel features, the verifier (bpf.Load)
	StepAttach Step = "attach" // attaching to Options.Cgroup
)

// StartError is the error of Start: the step that failed and why. It unwraps to the cause:
// a *bpf.MissingError (this process or this kernel cannot run the auditor), a *bpf.LoadError
// (the verifier's log), audit.ErrCorruptState, audit.ErrStateInUse, hostns.ErrNotHost, ...
type StartError struct {
	Step   Step
	Cgroup string // Options.Cgroup, for StepAttach
	Err    error
}

// Error says what failed; a missing privilege or kernel feature speaks for itself.
func (e *StartError) Error() string {
	var missing *bpf.MissingError
	switch {
	case errors.As(e.Err, &missing):
		return e.Err.Error()
	case e.Step == StepLoad:
		return "load the auditor's BPF programs: " + e.Err.Error()
	case e.Step == StepAttach:
		return fmt.Sprintf("attach the auditor to cgroup %q: %v", e.Cgroup, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// Agent is a running audit: the BPF programs attached to a cgroup, feeding an auditor.
type Agent struct {
	kernel *bpf.Agent
	aud    *audit.Auditor
	facts  hostns.Facts
	opts   Options
	start  time.Time

	stopReading context.CancelFunc // ends the reading: what was reported is drained first
	stopping    <-chan struct{}
	cancel      context.CancelFunc // ends the auditor at once
	done        chan error
	ended       sync.Once
	result      error
	closed      sync.Once
}

// Start checks how this process sees the host, creates the auditor (reading its state file
// before anything touches the kernel: a corrupt one stops here, renamed aside), loads the
// programs (checking privileges and kernel features first), attaches them to opts.Cgroup and
// starts reading. On error nothing stays loaded, and the error is a *StartError.
func Start(opts Options) (*Agent, error) {
	facts, err := hostFacts(opts.Host, opts.Cgroup == "")
	if err != nil {
		return nil, &StartError{Step: StepHost, Err: err}
	}
	if opts.Grace <= 0 {
		opts.Grace = opts.Audit.TokenAnswerTimeout
		if opts.Grace <= 0 {
			opts.Grace = audit.DefaultTokenAnswerTimeout
		}
		opts.Grace += time.Second
	}
	if opts.BPF.HostCgroup == "" {
		opts.BPF.HostCgroup = opts.Host.Cgroup
	}
	if opts.BPF.HostNetns == "" && opts.Host.Proc != "" {
		// Given the host's /proc, the agent may run in a network namespace of its own (a pod
		// without hostNetwork): the host's is the initial one, its pid 1's.
		opts.BPF.HostNetns = filepath.Join(opts.Host.Proc, "1", "ns", "net")
	}
	if opts.Audit.ProcessTable == nil {
		opts.Audit.ProcessTable = processTable(opts.Host)
	}
	if opts.Audit.Agent == nil {
		opts.Audit.Agent = &facts
	}
	aud, err := audit.New(opts.Audit)
	if err != nil {
		return nil, &StartError{Step: StepState, Err: err}
	}
	kernel, err := bpf.Load(opts.BPF)
	if err != nil {
		aud.Close()
		return nil, &StartError{Step: StepLoad, Err: err}
	}
	if err := kernel.Attach(opts.Cgroup); err != nil {
		kernel.Close()
		aud.Close()
		return nil, &StartError{Step: StepAttach, Cgroup: opts.Cgroup, Err: err}
	}
	// The auditor's own context is not the one that stops the reading: at the stop the
	// source drains what the kernel already reported, then ends, so that nothing seen is
	// dropped. Close cancels the auditor's context to stop at once.
	stopCtx, stopReading := context.WithCancel(context.Background())
	runCtx, cancel := context.WithCancel(context.Background())
	a := &Agent{kernel: kernel, aud: aud, facts: facts, opts: opts, start: time.Now(),
		stopReading: stopReading, stopping: stopCtx.Done(), cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- aud.Run(runCtx, &drainSource{src: kernel, stop: stopCtx}) }()
	return a, nil
}

// hostFacts checks the host paths and the namespaces this process runs in. For a watch of
// the whole host it refuses, with what to change, when the agent would not see the host.
func hostFacts(p hostns.Paths, wholeHost bool) (hostns.Facts, error) {
	if err := p.Check(); err != nil {
		return hostns.Facts{}, err
	}
	f, err := hostns.Detect("", p)
	if err != nil {
		return f, err
	}
	if wholeHost {
		return f, hostns.RequireHost(f)
	}
	return f, nil
}

// processTable returns the table that names callers from the host's /proc and cgroup2 mount,
// or nil (the auditor's default, this process's /proc) when no host path was given. Users are
// named from the host's /etc/passwd, read through the root of the host's pid 1, when it is
// readable.
func processTable(p hostns.Paths) audit.ProcessTable {
	if p == (hostns.Paths{}) {
		return nil
	}
	cfg := proc.Config{ProcRoot: p.Proc, CgroupRoot: p.Cgroup}
	if p.Proc != "" {
		root := filepath.Join(p.Proc, "1", "root")
		if _, err := os.Stat(filepath.Join(root, "etc", "passwd")); err == nil {
			cfg.Root = root
		}
	}
	return proc.New(cfg)
}

// Features says what was loaded and attached, and how.
func (a *Agent) Features() bpf.Features { return a.kernel.Features() }

// Facts says how this process sees the host, as the coverage records it.
func (a *Agent) Facts() hostns.Facts { return a.facts }

// Auditor is the auditor the programs feed, for its metrics and its instance record.
func (a *Agent) Auditor() *audit.Auditor { return a.aud }

// Pending returns how many requests are still waiting for their answers.
func (a *Agent) Pending() int { return a.aud.Pending() }

// Snapshot returns what was seen so far and for how long, while the audit goes on.
func (a *Agent) Snapshot() (*audit.Summary, time.Duration) {
	s := a.aud.Snapshot()
	return &s, time.Since(a.start)
}

// Stopping is closed when Wait has been told to stop and reads the last events.
func (a *Agent) Stopping() <-chan struct{} { return a.stopping }

// untilPoll is how often Wait asks Stop.Until.
const untilPoll = 50 * time.Millisecond

// Wait runs the audit until Options.Stop says to stop or ctx is done (or the audit fails: the
// ring buffer cannot be read, the state cannot be written), settles if Stop.Settle asks for
// it, reads what the kernel already reported, detaches the programs and returns what was seen,
// for how long, and the audit's error.
func (a *Agent) Wait(ctx context.Context) (*audit.Summary, time.Duration, error) {
	var timeUp <-chan time.Time
	if a.opts.Stop.After > 0 {
		t := time.NewTimer(a.opts.Stop.After - time.Since(a.start))
		defer t.Stop()
		timeUp = t.C
	}
	var poll <-chan time.Time
	if a.opts.Stop.Until != nil {
		t := time.NewTicker(untilPoll)
		defer t.Stop()
		poll = t.C
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-timeUp:
			break wait
		case <-poll:
			if a.opts.Stop.Until(a) {
				break wait
			}
		case err := <-a.done:
			a.done <- err // the audit ended on its own: end takes its error
			break wait
		}
	}
	if a.opts.Stop.Settle {
		a.Settle(context.Background())
	}
	a.stopReading()
	a.end()
	a.Close()
	s, d := a.Snapshot()
	return s, d, a.result
}

// end waits for the auditor to return and keeps its error.
func (a *Agent) end() {
	a.ended.Do(func() {
		err := <-a.done
		if err != nil && !errors.Is(err, context.Canceled) {
			a.result = err
		}
	})
}

// settleQuiet is how long Settle keeps reading after nothing is pending, for events the
// kernel reported just before (a connection's close behind its last request).
const settleQuiet = 300 * time.Millisecond

// Settle waits, while the audit goes on, until no request is waiting for its answer (and
// settleQuiet more), at most for Options.Grace or until ctx is done.
func (a *Agent) Settle(ctx context.Context) {
	deadline := time.NewTimer(a.opts.Grace)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	var quietSince time.Time
	for {
		select {
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case now := <-poll.C:
			if a.aud.Pending() > 0 {
				quietSince = time.Time{}
				continue
			}
			if quietSince.IsZero() {
				quietSince = now
			} else if now.Sub(quietSince) >= settleQuiet {
				return
			}
		}
	}
}

// Close stops the audit at once (without reading what is left) and detaches everything. It
// may be called more than once, and after Wait.
func (a *Agent) Close() {
	a.closed.Do(func() {
		a.stopReading()
		a.cancel()
		a.end()
		a.kernel.Close()
		a.aud.Close() // the state file is free for the next agent
	})
}
