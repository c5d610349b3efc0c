package ready

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/internal/hostns"
)

// LiveOptions configure a live audit.
type LiveOptions struct {
	// Cgroup is the cgroup v2 directory whose processes are audited, with everything below
	// it; "" means the root of the hierarchy (every process and container of the host).
	// Tests and the demo pass a cgroup of their own.
	Cgroup string
	// HostAddrs are the host namespace's addresses (Host.Addrs), to tell callers in other
	// network namespaces apart (audit.Options.HostAddrs).
	HostAddrs []netip.Addr
	// BPF configures the kernel side; the zero value audits the real IMDS addresses.
	BPF bpf.Options
	// Audit configures the auditor.
	Audit audit.Options
	// OnRecord, if set, is called with every record as it is made, from the auditor's
	// goroutine.
	OnRecord func(audit.Record)
	// Grace bounds how long Settle and Stop wait for requests still waiting for an answer
	// to be resolved (answered, their connection closed, or reported unanswered). Default
	// Audit.TokenAnswerTimeout plus one second; they return as soon as nothing is pending.
	Grace time.Duration
}

// Live is a running audit: the BPF agent attached to a cgroup, feeding an auditor.
type Live struct {
	agent   *bpf.Agent
	aud     *audit.Auditor
	grace   time.Duration
	start   time.Time
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
	result  error
}

// StartLive loads the auditor's programs, attaches them to opts.Cgroup and starts reading.
// Stop ends it; on error nothing stays loaded.
func StartLive(opts LiveOptions) (*Live, error) {
	if opts.Grace <= 0 {
		opts.Grace = opts.Audit.TokenAnswerTimeout
		if opts.Grace <= 0 {
			opts.Grace = audit.DefaultTokenAnswerTimeout
		}
		opts.Grace += time.Second
	}
	if opts.OnRecord != nil {
		next := opts.Audit.OnRecord
		opts.Audit.OnRecord = func(r audit.Record) {
			if next != nil {
				next(r)
			}
			opts.OnRecord(r)
		}
	}
	if len(opts.Audit.HostAddrs) == 0 {
		opts.Audit.HostAddrs = opts.HostAddrs
	}
	if opts.Audit.Agent == nil {
		// How this process sees the host, for the coverage record; a namespace that cannot
		// be read counts as not the host's.
		facts, _ := hostns.Detect("", hostns.Paths{Cgroup: opts.BPF.HostCgroup})
		opts.Audit.Agent = &facts
	}
	aud, err := audit.New(opts.Audit)
	if err != nil {
		return nil, err
	}
	agent, err := bpf.Load(opts.BPF)
	if err != nil {
		return nil, fmt.Errorf("load the auditor's BPF programs: %w", err)
	}
	if err := agent.Attach(opts.Cgroup); err != nil {
		agent.Close()
		return nil, fmt.Errorf("attach the auditor to cgroup %q: %w", opts.Cgroup, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Live{agent: agent, aud: aud, grace: opts.Grace,
		start: time.Now(), cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- aud.Run(ctx, agent) }()
	return l, nil
}

// settleQuiet is how long Settle keeps reading after nothing is pending, for events the
// kernel reported just before (a connection's close behind its last request).
const settleQuiet = 300 * time.Millisecond

// Settle waits, while the audit goes on, until no request is waiting for its answer (and
// settleQuiet more), at most for the grace period or until ctx is done.
func (l *Live) Settle(ctx context.Context) {
	deadline := time.NewTimer(l.grace)
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
			if l.aud.Pending() > 0 {
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

// Pending returns how many requests are still waiting for their answers.
func (l *Live) Pending() int { return l.aud.Pending() }

// Snapshot returns what was seen so far and for how long, while the audit goes on.
func (l *Live) Snapshot() (*audit.Summary, time.Duration) {
	s := l.aud.Snapshot()
	return &s, time.Since(l.start)
}

// Stop waits as Settle does, then stops the audit, detaches the programs and returns
// what was seen and for how long.
func (l *Live) Stop(ctx context.Context) (*audit.Summary, time.Duration, error) {
	l.Settle(ctx)
	l.Close()
	s := l.aud.Snapshot()
	return &s, time.Since(l.start), l.result
}

// Close stops the audit at once and detaches everything. It may be called more than once.
func (l *Live) Close() {
	l.stopped.Do(func() {
		l.cancel()
		err := <-l.done
		if err != nil && !errors.Is(err, context.Canceled) {
			l.result = err
		}
		l.agent.Close()
	})
}
