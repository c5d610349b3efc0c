package audit

import (
	"time"

	"github.com/imdsv2/imdsv2/audit/httpreq"
)

// What a crash may lose. The state file is written every StateInterval (a
// minute by default): a crash (kill -9, OOM kill, power loss) loses the counts
// since then. That is acceptable for the counts of callers already known, not
// for a caller: an IMDSv1 caller that calls once a day and is lost makes a
// false READY the next day. So a change of what the verdict reads (a new caller
// entry, the first request of a class, lost events, unclassified or incomplete
// requests, token PUTs that failed, SDK fallbacks, coverage spans opening or
// closing, the instance's identity read or failing) makes the state file be written promptly: within promptSaveGap of the
// change, and never twice within promptSaveGap, nor sooner after a write than
// promptSaveCostFactor times what that write took (a state of MaxCallers
// callers is about 10 MB and takes a few hundred milliseconds to write: then
// the agent spends at most a fifth of its time writing, and a new caller is
// durable within a second and a half).
//
// Why a prompt atomic write rather than an append-only log of observations
// next to the state file: the state file stays the one record (one format, one
// schema, one reader: `imdsv2 ready --state` reads it as it is, with nothing to
// replay), SaveState's temporary file, fsync and rename already make each write
// all-or-nothing, and the state is bounded (MaxCallers), so that a write costs
// a few milliseconds. The rate bound keeps a storm of new callers (command
// lines with a request id in them) to two writes a second; a log would write
// less per change but need its own format, compaction and a reader in every
// program that reads the state.

// promptSaveGap bounds the delay of a prompt state write after a change of the
// verdict, and the rate of such writes (at most one per promptSaveGap).
const promptSaveGap = 500 * time.Millisecond

// promptSaveRetry is the delay before a failed prompt write is tried again.
const promptSaveRetry = 5 * time.Second

// promptSaveCostFactor bounds the time spent on prompt writes: after a write
// that took d, the next prompt write waits at least promptSaveCostFactor*d.
const promptSaveCostFactor = 4

// durable is the Auditor's record of what the state file holds; guarded by
// Auditor.mu.
type durable struct {
	savedMark verdictMark // of the last state written
	changedAt time.Time   // first change of the verdict not yet written; zero: none
	nextWrite time.Time   // no prompt write before this
}

// verdictMark sums what the verdict reads, so that a change of it is seen by
// comparing two marks. Counts of requests of callers already itemised are not
// in it: losing those is what a crash may do.
type verdictMark struct {
	callers              int
	callersDropped, lost uint64
	classes              uint32 // bit i: httpreq.Classes[i] seen
	incomplete, other    uint64
	tokenPUTs            TokenPUTCounts
	fallbacks            uint64
	unpaired, gaps       uint64 // answers without a request; reassembly gaps and evictions
	spans                int
	open                 bool
	instanceID, instErr  string
}

func (a *Auditor) verdictMarkLocked() verdictMark {
	g := a.agg
	m := verdictMark{callers: len(g.callers), callersDropped: g.callersDropped, lost: g.lost,
		incomplete: g.requests[ClassIncomplete], other: g.requests[ClassOther],
		tokenPUTs: g.tokenPUTs, fallbacks: g.fallbacks, unpaired: g.unpaired, spans: len(g.cov.spans)}
	st := a.asm.Stats()
	m.gaps = st.Gaps + st.Evictions
	for i, c := range httpreq.Classes {
		if g.requests[c] > 0 && i < 32 {
			m.classes |= 1 << i
		}
	}
	if g.cov.earlier != nil {
		m.spans += g.cov.earlier.Spans
	}
	if n := len(g.cov.spans); n > 0 {
		m.open = g.cov.spans[n-1].Open
	}
	if g.instance != nil {
		m.instanceID, m.instErr = g.instance.InstanceID, g.instance.ErrorKind
	}
	return m
}

// noteVerdictChangeLocked remembers the first change of the verdict since the
// last state write.
func (a *Auditor) noteVerdictChangeLocked(now time.Time) {
	if a.opts.StateFile == "" || !a.changedAt.IsZero() {
		return
	}
	if a.verdictMarkLocked() != a.savedMark {
		a.changedAt = now
	}
}

// promptSaveIn says whether a prompt write is wanted, and in how long.
func (a *Auditor) promptSaveIn() (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changedAt.IsZero() {
		return 0, false
	}
	return max(a.nextWrite.Sub(a.clock.Now()), 0), true
}

func (a *Auditor) promptSaveDueLocked(now time.Time) bool {
	return !a.changedAt.IsZero() && !now.Before(a.nextWrite)
}

// promptSave writes the state now, reporting a failure (tried again after
// promptSaveRetry).
func (a *Auditor) promptSave() {
	if err := a.SaveState(); err != nil {
		a.opts.Logf("audit: writing state promptly after a change of the verdict failed (tried again in %v): %v", promptSaveRetry, err)
	}
}

// savedLocked records a state write of mark that ended at now, took took, and
// failed with err.
func (a *Auditor) savedLocked(mark verdictMark, now time.Time, took time.Duration, err error) {
	if err != nil {
		a.nextWrite = now.Add(promptSaveRetry)
		return
	}
	a.nextWrite = now.Add(max(promptSaveGap, promptSaveCostFactor*took))
	a.savedMark = mark
	a.changedAt = time.Time{}
	a.noteVerdictChangeLocked(now) // what changed while the file was written
}
