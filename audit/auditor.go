package audit

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imdsv2/imdsv2/audit/reasm"
)

// Auditor turns kernel events into classified, attributed, paired requests,
// an aggregate per caller and live records. Create it with New; feed it with
// Run (or Handle and Tick); read it with Snapshot. Snapshot and the sinks are
// safe to call from other goroutines while Run works.
type Auditor struct {
	opts  Options
	clock Clock
	table ProcessTable

	mu    sync.Mutex
	asm   *reasm.Assembler
	conns map[uint64]*conn
	execs *execCache
	// unansweredAt remembers, per pid, the last token PUT that went
	// unanswered, to recognise the IMDSv1 fallback that follows.
	unansweredAt map[uint32]time.Time
	agg          *aggregate
	out          []Record  // produced under mu, delivered after it is released
	nextSave     time.Time // when Tick writes the state file next
	lastEvent    time.Time // latest event time handled

	hostAddrs map[netip.Addr]bool
	known     *knownTokens // token values seen on the wire, for redaction

	emitMu         sync.Mutex // keeps deliveries in order
	droppedRecords atomic.Uint64

	lock      *os.File // the state file's lock, held from New to Close
	closeLock sync.Once

	durable
}

// New returns an Auditor. With Options.StateFile set it resumes the counts
// saved there; a state file that cannot be read or decoded is an error (the
// file is renamed aside, see LoadState) so that it is never overwritten, and a
// state file another Auditor holds (in this process or another) is refused
// with ErrStateInUse until that one is closed.
func New(opts Options) (*Auditor, error) {
	var err error
	opts = opts.withDefaults()
	a := &Auditor{
		opts:  opts,
		clock: opts.Clock,
		table: opts.ProcessTable,
		conns: make(map[uint64]*conn),
		execs: newExecCache(opts.MaxProcesses),

		unansweredAt: make(map[uint32]time.Time),
		hostAddrs:    make(map[netip.Addr]bool),
		known:        newKnownTokens(),
	}
	for _, ip := range opts.HostAddrs {
		a.hostAddrs[ip.Unmap()] = true
	}
	// The reassembler parses each head once; token values seen on the way are
	// remembered (keyed hashes) to scrub them wherever they reappear.
	cfg := opts.Reassembly
	cfg.OnToken = a.known.learn
	a.asm = reasm.New(cfg)
	now := a.clock.Now().UTC()
	a.agg = newAggregate(opts.MaxCallers, opts.MaxPathsPerCaller, now)
	if opts.StateFile != "" {
		// One agent per state file: the lock is taken before the file is read, and held
		// until Close (or the process ends).
		if a.lock, err = lockState(opts.StateFile); err != nil {
			return nil, err
		}
		s, err := LoadState(opts.StateFile)
		if err != nil {
			a.Close()
			return nil, err
		}
		if s != nil {
			a.agg.restore(s)
		}
	}
	a.agg.cov.agent = opts.Agent
	a.nextSave = now.Add(opts.StateInterval)
	a.savedMark = a.verdictMarkLocked() // what the file holds
	a.nextWrite = now
	return a, nil
}

// Run reads src until it returns io.EOF (Run then returns nil) or another
// error (returned), or until ctx is done (ctx.Err() is returned). Time-outs
// are checked every Options.TickInterval. With a state file, the state is
// written periodically and once more before Run returns. src.Next must
// return when ctx is done.
func (a *Auditor) Run(ctx context.Context, src Source) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, errc := readEvents(ctx, src)
	tick := time.NewTicker(a.opts.TickInterval)
	defer tick.Stop()
	var prompt promptTimer
	var err error
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				err = <-errc
				break loop
			}
			a.Handle(ev)
		case <-prompt.c:
			prompt.c = nil
			a.savePromptlyIfDue()
		case <-tick.C:
			a.tickRun(len(events) > 0)
		case <-ctx.Done():
			cancel()
			// What the reader already read was seen: count it, never drop it silently.
			for ev := range events {
				a.Handle(ev)
			}
			err = ctx.Err()
			break loop
		}
		prompt.arm(a)
	}
	return a.stop(err)
}

// readEvents reads src on its own goroutine until it fails or ctx ends; the channel of events
// is closed after the error is sent.
func readEvents(ctx context.Context, src Source) (<-chan Event, <-chan error) {
	events := make(chan Event, 256)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		for {
			ev, err := src.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return events, errc
}

// promptTimer fires when a change of the verdict is due in the state file (see
// promptSaveGap), not at the next tick.
type promptTimer struct{ c <-chan time.Time }

// arm starts the timer unless it runs already or no prompt save is pending.
func (p *promptTimer) arm(a *Auditor) {
	if p.c == nil {
		if d, ok := a.promptSaveIn(); ok {
			p.c = time.After(d)
		}
	}
}

// savePromptlyIfDue writes the state file when a prompt save is due now.
func (a *Auditor) savePromptlyIfDue() {
	a.mu.Lock()
	due := a.promptSaveDueLocked(a.clock.Now())
	a.mu.Unlock()
	if due {
		a.promptSave()
	}
}

// tickRun is Run's periodic tick. With a backlog, answers may still be waiting behind the
// token PUTs they answer, so token time-outs are judged by the last event handled, not by the
// wall clock.
func (a *Auditor) tickRun(backlog bool) {
	if backlog {
		a.tick(a.lastEventTime())
		return
	}
	a.Tick()
}

// stop ends a Run: a last tick, the coverage span closed, the state file written.
func (a *Auditor) stop(err error) error {
	if errors.Is(err, io.EOF) {
		err = nil
	}
	a.Tick()
	a.mu.Lock()
	a.agg.cov.detached(a.clock.Now().UTC(), gapAgentStopped)
	a.mu.Unlock()
	if a.opts.StateFile != "" {
		err = errors.Join(err, a.SaveState())
	}
	return err
}

// Handle processes one event. Run calls it; call it directly only when not
// using Run (tests, other loops), from one goroutine.
func (a *Auditor) Handle(ev Event) {
	a.mu.Lock()
	t := ev.Time
	if t.IsZero() {
		t = a.clock.Now()
	}
	t = t.UTC()
	if t.After(a.lastEvent) {
		a.lastEvent = t
	}
	a.agg.countEvent(ev.Kind)
	switch ev.Kind {
	case EventConnect:
		a.connect(ev, t)
	case EventSend, EventRecv:
		a.payload(ev, t)
	case EventExec:
		a.onExec(ev, t)
	case EventExit:
		if ev.TID == 0 || ev.TID == ev.PID {
			a.processExit(ev.PID, t)
		}
	case EventClose:
		a.closeConn(ev.Cookie, t)
	case EventAttached:
		if ev.Watch != nil {
			a.agg.cov.attached(*ev.Watch, t)
		}
	case EventDetached:
		reason := "detached"
		if ev.Watch != nil && ev.Watch.Reason != "" {
			reason = ev.Watch.Reason
		}
		a.agg.cov.detached(t, reason)
	case EventLost:
		if ev.Lost > 0 {
			a.agg.lost += ev.Lost
			a.out = append(a.out, Record{Type: RecordLost, Time: t, Lost: ev.Lost})
		}
	}
	a.noteVerdictChangeLocked(a.clock.Now())
	a.flushLocked()
}

// Tick resolves what time decides: token PUTs unanswered for longer than
// Options.TokenAnswerTimeout, idle connections, old exec records, and the
// periodic state write. Run calls it; call it directly only when not using
// Run.
func (a *Auditor) Tick() {
	a.tick(time.Time{})
}

// tick is Tick with token PUTs judged unanswered only if they are older than
// TokenAnswerTimeout at seenUpTo (a zero seenUpTo means now): the time up to
// which every event has been handled.
func (a *Auditor) tick(seenUpTo time.Time) {
	a.mu.Lock()
	now := a.clock.Now().UTC()
	if seenUpTo.IsZero() || seenUpTo.After(now) {
		seenUpTo = now
	}
	a.expire(now, seenUpTo.UTC())
	a.noteVerdictChangeLocked(now)
	save := a.opts.StateFile != "" && !now.Before(a.nextSave)
	if save {
		a.nextSave = now.Add(a.opts.StateInterval)
	}
	prompt := !save && a.promptSaveDueLocked(now)
	a.flushLocked()
	switch {
	case save:
		if err := a.SaveState(); err != nil {
			a.opts.Logf("audit: writing state: %v", err)
		}
	case prompt:
		a.promptSave()
	}
}

// lastEventTime returns the latest event time handled so far.
func (a *Auditor) lastEventTime() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastEvent
}

// flushLocked releases mu and delivers the records produced while it was held.
func (a *Auditor) flushLocked() {
	out := a.out
	a.out = nil
	a.emitMu.Lock()
	a.mu.Unlock()
	defer a.emitMu.Unlock()
	for _, r := range out {
		if a.opts.OnRecord != nil {
			a.opts.OnRecord(r)
		}
		if a.opts.Records != nil {
			select {
			case a.opts.Records <- r:
			default:
				a.droppedRecords.Add(1)
			}
		}
	}
}

// Snapshot returns the aggregate so far, with its ReadyHints.
func (a *Auditor) Snapshot() Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snapshotLocked()
}

func (a *Auditor) snapshotLocked() Summary {
	st := a.asm.Stats()
	s := a.agg.summary(a.clock.Now().UTC(), ReassemblyStats{
		Evictions: st.Evictions, Gaps: st.Gaps, Duplicates: st.Duplicates, TooLarge: st.TooLarge,
	}, a.droppedRecords.Load())
	for _, c := range a.conns {
		for _, r := range c.queue {
			if s.Pending == nil {
				s.Pending = make(map[Class]uint64)
			}
			s.Pending[r.Class]++
		}
	}
	a.scrubSummary(&s)
	return s
}

// Pending returns how many requests are waiting for their answers (token PUTs
// among them): a caller that wants every request resolved before it reads a
// Snapshot waits for 0, within a bound of its own.
func (a *Auditor) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.conns {
		n += len(c.queue)
	}
	return n
}

// Close releases the state file for another Auditor; Run and SaveState must not
// be used after it. It may be called more than once.
func (a *Auditor) Close() error {
	var err error
	a.closeLock.Do(func() {
		if a.lock != nil {
			err = a.lock.Close() // closing the file releases its flock
		}
	})
	return err
}

// SaveState writes the current aggregate to Options.StateFile (atomically).
func (a *Auditor) SaveState() error {
	if a.opts.StateFile == "" {
		return errors.New("audit: no state file configured")
	}
	start := time.Now() // the cost of a write, on the wall clock whatever Options.Clock says
	a.mu.Lock()
	mark := a.verdictMarkLocked()
	s := a.snapshotLocked()
	a.mu.Unlock()
	err := SaveState(a.opts.StateFile, s)
	a.mu.Lock()
	a.savedLocked(mark, a.clock.Now(), time.Since(start), err)
	a.mu.Unlock()
	return err
}

// DropRecords counts n live records that an output could not take (a JSON
// output whose reader went away, a full file system): Summary.DroppedRecords
// adds them, so that a consumer of the output learns what it missed.
func (a *Auditor) DropRecords(n uint64) { a.droppedRecords.Add(n) }
