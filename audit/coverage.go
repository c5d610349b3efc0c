package audit

import (
	"fmt"
	"slices"
	"time"

	"github.com/imdsv2/imdsv2/internal/hostns"
)

// Agent describes how the agent that ran an audit saw the host (namespaces,
// host paths), as far as coverage is concerned; hostns decides it.
type Agent = hostns.Facts

// Span is one stretch of time during which a source watched one cgroup
// without interruption.
type Span struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"` // the last time the agent was known to be watching
	Watch Watch     `json:"watch"`
	// Agent is nil when the agent did not say how it runs.
	Agent *Agent `json:"agent,omitempty"`
	// Open says the span had not ended when the summary was made; a state
	// file read later keeps To as the last time it was written.
	Open bool `json:"open,omitempty"`
}

// Gap is a stretch of time between two spans: nothing was watched.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Why says what ended the span before the gap: "agent stopped" (or
	// crashed: the state file keeps the last time it was written), or the
	// source's reason for detaching ("cgroup removed").
	Why string `json:"why"`
}

// Coverage says what an audit watched, so that a verdict read later (from a
// state file, days after) is judged on what was actually seen. It is derived
// from the spans; Summary.Coverage carries it.
type Coverage struct {
	// Spans are the stretches watched, oldest first; at most maxSpans are kept,
	// older ones are folded into Earlier.
	Spans []Span `json:"spans"`
	// Earlier sums the spans folded away.
	Earlier *Folded `json:"earlier,omitempty"`
	// Gaps are the stretches between spans, oldest first.
	Gaps []Gap `json:"gaps"`
	// WatchedSeconds is the time watched in all, gaps excluded.
	WatchedSeconds float64 `json:"watched_seconds"`
	// GapSeconds is the time between the first span's start and the last
	// span's end that was not watched.
	GapSeconds float64 `json:"gap_seconds"`
	// WholeHost says every span watched the root of the host's cgroup2
	// hierarchy, from an agent that saw the host as the host.
	WholeHost bool `json:"whole_host"`
	// ExecTracing says every span traced exec and exit.
	ExecTracing bool `json:"exec_tracing"`
	// Scope is the cgroup path the spans watched ("/" for the whole host);
	// "mixed" when spans watched different paths, "" when nothing was watched.
	Scope string `json:"scope"`
}

// Folded sums spans too old to keep one by one.
type Folded struct {
	Spans          int       `json:"spans"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	WatchedSeconds float64   `json:"watched_seconds"`
	GapSeconds     float64   `json:"gap_seconds"`
	WholeHost      bool      `json:"whole_host"`
	ExecTracing    bool      `json:"exec_tracing"`
	Scope          string    `json:"scope"`
}

// maxSpans bounds the spans a state file keeps one by one (restarts, cgroup
// re-creations); older ones are summed.
const maxSpans = 64

// Reasons for gaps that the auditor itself knows.
const (
	gapAgentStopped = "agent not running (stopped, restarted or crashed)"
)

// coverage is the aggregate's record of spans.
type coverage struct {
	spans   []Span
	earlier *Folded
	agent   *Agent
	// restored is how many of spans came from the state file (this run's follow).
	restored int
}

// attached opens a span at t; an open span is closed first.
func (c *coverage) attached(w Watch, t time.Time) {
	c.detached(t, "")
	w.Reason = ""
	c.spans = append(c.spans, Span{From: t, To: t, Watch: w, Agent: c.agent, Open: true})
	c.fold()
}

// detached closes the open span, if any, at t; why says what ended it.
func (c *coverage) detached(t time.Time, why string) {
	if n := len(c.spans); n > 0 && c.spans[n-1].Open {
		s := &c.spans[n-1]
		if t.After(s.To) {
			s.To = t
		}
		s.Open = false
		s.Watch.Reason = why
	}
}

// touch moves the open span's end to t: the agent was watching until then.
func (c *coverage) touch(t time.Time) {
	if n := len(c.spans); n > 0 && c.spans[n-1].Open && t.After(c.spans[n-1].To) {
		c.spans[n-1].To = t
	}
}

// load takes the spans of a state file as they are, with what is derived from them
// checked: times in order, folded sums within their own time.
func (c *coverage) load(cv *Coverage) {
	if cv == nil {
		return
	}
	c.spans = slices.Clone(cv.Spans)
	for i := range c.spans {
		if c.spans[i].To.Before(c.spans[i].From) {
			c.spans[i].To = c.spans[i].From
		}
	}
	c.restored = len(c.spans)
	c.earlier = nil
	if e := cv.Earlier; e != nil {
		f := *e
		span := max(f.To.Sub(f.From).Seconds(), 0)
		f.WatchedSeconds = clampSeconds(f.WatchedSeconds, span)
		f.GapSeconds = clampSeconds(f.GapSeconds, span-f.WatchedSeconds)
		c.earlier = &f
	}
}

// clampSeconds bounds v to [0, limit]; NaN counts as 0.
func clampSeconds(v, limit float64) float64 {
	if !(v > 0) { // NaN too
		return 0
	}
	return min(v, limit)
}

// restore takes the spans of a state file for the agent that resumes it; an open span
// there ended when that file was last written (the agent that wrote it is gone).
func (c *coverage) restore(cv *Coverage) {
	c.load(cv)
	if n := len(c.spans); n > 0 && c.spans[n-1].Open {
		c.spans[n-1].Open = false
		c.spans[n-1].Watch.Reason = gapAgentStopped
	}
}

// dropRestored forgets the spans a state file brought: they watched another instance.
func (c *coverage) dropRestored() {
	c.spans = slices.Clone(c.spans[c.restored:])
	c.earlier, c.restored = nil, 0
}

// Recheck recomputes what a state file's own records prove, so that a hand-edited or
// damaged file cannot claim more than it holds: the coverage from its spans (whole host,
// exec tracing, watched time, gaps), IMDSv1 and unanswered token PUTs at least what its
// callers counted, and the hints from its callers. ReadState applies it.
func (s *Summary) Recheck() {
	var c coverage
	c.load(&s.Coverage)
	s.Coverage = c.summary()
	// Totals at least what the callers counted (schema 1 kept no totals at all).
	var v1, unanswered, refused, fallbacks uint64
	for i := range s.Callers {
		c := &s.Callers[i]
		if c.Class == ClassIMDSv1 {
			v1 += c.Count
		}
		if isTokenPUTClass(c.Class) {
			refused += c.Answers.Refused()
		}
		unanswered += c.Unanswered
		fallbacks += c.AfterUnansweredPUT
	}
	if s.Requests == nil {
		s.Requests = make(map[Class]uint64)
	}
	s.Requests[ClassIMDSv1] = max(s.Requests[ClassIMDSv1], v1)
	s.TokenPUTs.Unanswered = max(s.TokenPUTs.Unanswered, unanswered)
	s.TokenPUTs.Refused = max(s.TokenPUTs.Refused, refused)
	s.Fallbacks = max(s.Fallbacks, fallbacks)
	s.ReadyHints = readyHints(s)
}

func (c *coverage) fold() {
	for len(c.spans) > maxSpans {
		s := c.spans[0]
		next := c.spans[1]
		f := c.earlier
		if f == nil {
			f = &Folded{From: s.From, WholeHost: true, ExecTracing: true, Scope: s.Watch.Path}
			c.earlier = f
		}
		f.Spans++
		f.To = s.To
		f.WatchedSeconds += s.To.Sub(s.From).Seconds()
		if next.From.After(s.To) {
			f.GapSeconds += next.From.Sub(s.To).Seconds()
		}
		f.WholeHost = f.WholeHost && spanWholeHost(s)
		f.ExecTracing = f.ExecTracing && s.Watch.ExecTracing
		if f.Scope != s.Watch.Path {
			f.Scope = "mixed"
		}
		c.spans = c.spans[1:]
	}
}

func spanWholeHost(s Span) bool {
	return s.Watch.HostRoot && s.Agent != nil && s.Agent.SeesHost()
}

// summary derives the Coverage record.
func (c *coverage) summary() Coverage {
	cv := Coverage{Spans: slices.Clone(c.spans), Gaps: []Gap{}, WholeHost: len(c.spans) > 0 || c.earlier != nil,
		ExecTracing: len(c.spans) > 0 || c.earlier != nil}
	if cv.Spans == nil {
		cv.Spans = []Span{}
	}
	if e := c.earlier; e != nil {
		cp := *e
		cv.Earlier = &cp
		cv.WatchedSeconds, cv.GapSeconds = e.WatchedSeconds, e.GapSeconds
		cv.WholeHost, cv.ExecTracing, cv.Scope = e.WholeHost, e.ExecTracing, e.Scope
		if len(c.spans) > 0 && c.spans[0].From.After(e.To) {
			// Its seconds are in e.GapSeconds already (fold counts the gap after each span).
			cv.Gaps = append(cv.Gaps, Gap{From: e.To, To: c.spans[0].From, Why: "between earlier spans and these"})
		}
	}
	for i, s := range c.spans {
		cv.WatchedSeconds += s.To.Sub(s.From).Seconds()
		cv.WholeHost = cv.WholeHost && spanWholeHost(s)
		cv.ExecTracing = cv.ExecTracing && s.Watch.ExecTracing
		switch {
		case cv.Scope == "":
			cv.Scope = s.Watch.Path
		case cv.Scope != s.Watch.Path:
			cv.Scope = "mixed"
		}
		if i+1 < len(c.spans) {
			next := c.spans[i+1].From
			if next.After(s.To) {
				why := s.Watch.Reason
				if why == "" {
					why = gapAgentStopped
				}
				cv.Gaps = append(cv.Gaps, Gap{From: s.To, To: next, Why: why})
				cv.GapSeconds += next.Sub(s.To).Seconds()
			}
		}
	}
	return cv
}

// Describe says in one line what was watched, for people: the scope, whole host or not,
// exec tracing, time watched and gaps.
func (cv Coverage) Describe() string {
	if len(cv.Spans) == 0 && cv.Earlier == nil {
		return "coverage: nothing recorded"
	}
	scope := "cgroup " + cv.Scope
	if cv.WholeHost {
		scope = "the whole host"
	}
	tracing := "exec tracing on"
	if !cv.ExecTracing {
		tracing = "exec tracing OFF"
	}
	watched := time.Duration(cv.WatchedSeconds * float64(time.Second)).Round(time.Second)
	gaps := time.Duration(cv.GapSeconds * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("coverage: %s, %s, watched %s, %d gap(s) of %s in all", scope, tracing, watched, len(cv.Gaps), gaps)
}
