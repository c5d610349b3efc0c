package imds

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// A process can be frozen for a while: a paused or overcommitted VM, a container over its CPU
// quota, a stop-the-world pause. When it thaws, Go runs expired timers before it looks at the
// network, so a plain time-out fires although the connection or the answer had arrived during
// the freeze, and the client would report "unreachable" or "hop limit" for a healthy IMDS. The
// timers below notice that they fire late and then wait a short grace period, so that only time
// the process could observe counts against a time-out.

// stallSlack is how late a timer may fire before the process is taken to have been frozen.
const stallSlack = 25 * time.Millisecond

// maxStallGraces bounds the extensions. One is enough for I/O that completed during a freeze to
// be seen; more would multiply the delay on a host that is starved rather than frozen (timers
// measured there fired about a second late again and again).
const maxStallGraces = 1

// patientTimer calls f once its duration has passed in time the process could observe.
type patientTimer struct {
	mu      sync.Mutex
	t       *time.Timer
	d       time.Duration
	due     time.Time
	graces  int
	stopped bool
	hard    time.Time // when set, no grace reaches past it: the whole call's time budget
	f       func()
}

// afterPatient returns a started patientTimer. A zero or negative d fires at once.
func afterPatient(d time.Duration, f func()) *patientTimer {
	return afterPatientBy(d, time.Time{}, f)
}

// afterPatientBy is afterPatient for a timer that ends a call's time budget at hard, or an
// attempt capped by it: a grace may not reach past hard, so that a late timer costs the caller
// at most its lateness, not a grace on top of it.
func afterPatientBy(d time.Duration, hard time.Time, f func()) *patientTimer {
	p := &patientTimer{d: d, f: f, hard: hard}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.due = time.Now().Add(d)
	p.t = time.AfterFunc(d, p.fire)
	return p
}

// newStoppedPatient returns a timer that does nothing until Reset.
func newStoppedPatient(f func()) *patientTimer {
	p := &patientTimer{f: f, stopped: true}
	p.t = time.AfterFunc(time.Hour, p.fire)
	p.t.Stop()
	return p
}

func (p *patientTimer) fire() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	grace := min(max(p.d/4, 20*time.Millisecond), 100*time.Millisecond)
	if now.Sub(p.due) > stallSlack && p.graces < maxStallGraces && (p.hard.IsZero() || now.Add(grace).Before(p.hard)) {
		p.graces++
		p.due = now.Add(grace)
		p.t.Reset(grace)
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	p.f()
}

// Stop keeps f from being called, unless it already is.
func (p *patientTimer) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.t.Stop()
	p.mu.Unlock()
}

// Reset (re)starts the timer for d.
func (p *patientTimer) Reset(d time.Duration) {
	p.mu.Lock()
	p.stopped, p.d, p.graces = false, d, 0
	p.due = time.Now().Add(d)
	p.t.Reset(d)
	p.mu.Unlock()
}

// errAttemptTimeout is the cause of an attempt's context when its time-out fired.
var errAttemptTimeout = errors.New("attempt timed out")

// timeoutError is the net.Error of a dial that timed out on a patient timer.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// patientDialer bounds dials with a patient timer instead of the dialer's own deadline, which a
// frozen process would see expire before it sees the completed connection.
func patientDialer(timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		t := afterPatient(timeout, func() { cancel(errAttemptTimeout) })
		defer t.Stop()
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil && ctx.Err() == nil && context.Cause(dctx) == errAttemptTimeout {
			return nil, &net.OpError{Op: "dial", Net: network, Err: timeoutError{}}
		}
		return conn, err
	}
}
