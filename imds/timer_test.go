package imds

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPatientTimerGraceAfterFreeze simulates a timer that fires long after it was due, as after a
// frozen process: the callback must wait for a grace period instead of running at once.
func TestPatientTimerGraceAfterFreeze(t *testing.T) {
	called := make(chan struct{})
	p := newStoppedPatient(func() { close(called) })
	p.mu.Lock()
	p.stopped, p.d, p.due = false, time.Second, time.Now().Add(-time.Second) // "fired" 1 s late
	p.mu.Unlock()

	p.fire()
	select {
	case <-called:
		t.Fatal("fired at once after a freeze")
	default:
	}
	p.mu.Lock()
	assert.Equal(t, 1, p.graces)
	p.mu.Unlock()
	select {
	case <-called: // after the grace period
	case <-time.After(30 * time.Second):
		t.Fatal("never fired")
	}
}

func TestPatientTimerBoundedGraces(t *testing.T) {
	var n atomic.Int32
	p := newStoppedPatient(func() { n.Add(1) })
	p.mu.Lock()
	p.stopped, p.d = false, time.Second
	p.mu.Unlock()
	for range maxStallGraces + 1 {
		p.mu.Lock()
		p.due = time.Now().Add(-time.Second)
		p.mu.Unlock()
		p.fire()
	}
	p.Stop()
	require.Equal(t, int32(1), n.Load(), "a host that keeps freezing still gets its time-out")
}

func TestPatientTimerStop(t *testing.T) {
	fired := make(chan struct{}, 1)
	p := afterPatient(time.Hour, func() { fired <- struct{}{} })
	p.Stop()
	p.fire() // a fire racing with Stop must not call f
	assert.Empty(t, fired)
}

// TestPatientTimerNoGracePastBudget: a late timer capped by the call's budget fires at once
// rather than waiting a grace that would end after the budget; one with room left still waits.
func TestPatientTimerNoGracePastBudget(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hardAfter time.Duration // budget end, from now
		wantGrace bool
	}{
		{"budget ends within the grace", 10 * time.Millisecond, false},
		{"budget already over", -time.Second, false},
		{"room for the grace", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			p := afterPatientBy(time.Hour, time.Now().Add(tc.hardAfter), func() { n.Add(1) })
			defer p.Stop()
			p.mu.Lock()
			p.d, p.due = 400*time.Millisecond, time.Now().Add(-time.Second) // "fired" 1 s late
			p.mu.Unlock()
			p.fire()
			p.mu.Lock()
			graces := p.graces
			p.mu.Unlock()
			if tc.wantGrace {
				assert.Equal(t, int32(0), n.Load(), "fired at once although the budget had room")
				assert.Equal(t, 1, graces)
			} else {
				assert.Equal(t, int32(1), n.Load(), "waited a grace past the budget")
				assert.Equal(t, 0, graces)
			}
		})
	}
}
