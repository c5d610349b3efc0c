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
)

// LiveOptions configure a live audit.
type LiveOptions struct {
	// Cgroup is the cgroup v2 directory whose processes are audited, with everything below
	// it; "" means the root of the hierarchy (every process and container of the host).
	// Tests and the demo pass a cgroup of their own.
	Cgroup string
	// HostAddrs are the host namespace's addresses (Host.Addrs), to tell callers in other
	// network namespaces apart.
	HostAddrs []netip.Addr
	// BPF configures the kernel side; the zero value audits the real IMDS addresses.
	BPF bpf.Options
	// Audit configures the auditor.
	Audit audit.Options
	// OnRecord, if set, is called with every record as it is made, from the auditor's
	// goroutine, with the Observer (to ask whether its caller is in another namespace).
	OnRecord func(audit.Record, *Observer)
	// Grace is how long Stop keeps reading after it is called, so that token requests still
	// waiting for an answer are resolved (answered, or reported unanswered). Default
	// Audit.TokenAnswerTimeout (2s) plus one second.
	Grace time.Duration
}

// Live is a running audit: the BPF agent attached to a cgroup, feeding an auditor through
// an Observer.
type Live struct {
	agent   *bpf.Agent
	aud     *audit.Auditor
	obs     *Observer
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
			opts.Grace = 2 * time.Second
		}
		opts.Grace += time.Second
	}
	var obs *Observer // set before the auditor's goroutine starts, the only caller of OnRecord
	if opts.OnRecord != nil {
		next := opts.Audit.OnRecord
		opts.Audit.OnRecord = func(r audit.Record) {
			if next != nil {
				next(r)
			}
			opts.OnRecord(r, obs)
		}
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
	obs = NewObserver(agent, opts.HostAddrs)
	l := &Live{agent: agent, aud: aud, obs: obs, grace: opts.Grace,
		start: time.Now(), cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- aud.Run(ctx, l.obs) }()
	return l, nil
}

// Observer returns the observer that sees every event, for live questions such as
// "is this pid in another network namespace?".
func (l *Live) Observer() *Observer { return l.obs }

// Features says what the agent attached, and how.
func (l *Live) Features() bpf.Features { return l.agent.Features() }

// Settle waits for the grace period (or until ctx is done), so that requests still in
// flight are resolved, while the audit goes on.
func (l *Live) Settle(ctx context.Context) {
	t := time.NewTimer(l.grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Snapshot returns what was seen so far and for how long, while the audit goes on.
func (l *Live) Snapshot() (*audit.Summary, *Observations, time.Duration) {
	s := l.aud.Snapshot()
	return &s, l.obs.Observations(), time.Since(l.start)
}

// Stop keeps reading for the grace period (or until ctx is done), then stops the audit,
// detaches the programs and returns what was seen and for how long.
func (l *Live) Stop(ctx context.Context) (*audit.Summary, *Observations, time.Duration, error) {
	l.Settle(ctx)
	l.Close()
	s := l.aud.Snapshot()
	return &s, l.obs.Observations(), time.Since(l.start), l.result
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
