package audit

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit/httpreq"
	"github.com/imdsv2/imdsv2/audit/sdk"
)

// SummarySchema is the version of the Summary JSON layout (and of the state
// file). It changes when a field changes meaning or goes away, or when a
// field is added that a reader must not silently miss. A program reads every
// schema up to its own (older state files keep their counts; what they did
// not record, such as coverage before schema 2, reads as unknown) and refuses
// newer ones, leaving the file in place.
//
// Schema 2 added coverage, request totals (TokenPUTs, Fallbacks) and caller
// eviction that never drops an IMDSv1 caller for another.
const SummarySchema = 2

// Summary is the aggregate of everything seen, as JSON with stable field
// names and a deterministic order (callers sorted, maps sorted by key).
type Summary struct {
	Schema  int       `json:"schema"`
	Since   time.Time `json:"since"`   // when counting began (kept across restarts)
	Updated time.Time `json:"updated"` // when this summary was made
	// Resumed counts the restarts that resumed from a state file.
	Resumed uint64 `json:"resumed"`
	// Events counts the input events by kind ("send", "recv", ...).
	Events map[string]uint64 `json:"events"`
	// Requests counts requests by class; every class is present.
	Requests map[Class]uint64 `json:"requests"`
	// Pending counts, by class, requests seen but still waiting for their
	// answers when the summary was made (not in Requests yet).
	Pending map[Class]uint64 `json:"pending,omitempty"`
	// LostEvents is the sum of EventLost reports: kernel records that never
	// arrived, so requests may be missing from this summary.
	LostEvents uint64 `json:"lost_events"`
	// UnpairedAnswers counts answers seen with no request to pair them with.
	UnpairedAnswers uint64 `json:"unpaired_answers"`
	// DroppedRecords counts live records dropped: Options.Records was full, or an
	// output could not take them (Auditor.DropRecords: a reader gone, a full disk).
	DroppedRecords uint64 `json:"dropped_records"`
	// CallersDropped counts requests of callers beyond Options.MaxCallers:
	// counted in Requests, not itemised in Callers.
	CallersDropped uint64 `json:"callers_dropped"`
	// TokenPUTs counts what became of token PUTs, over every caller,
	// itemised or not.
	TokenPUTs TokenPUTCounts `json:"token_puts"`
	// Fallbacks counts IMDSv1 requests sent while the same process's token
	// PUT had no answer yet or had gone unanswered (an SDK falling back).
	Fallbacks  uint64          `json:"imdsv1_fallbacks"`
	Reassembly ReassemblyStats `json:"reassembly"`
	// Coverage says what was watched, when, and from where; absent (zero)
	// in state files of schema 1.
	Coverage Coverage `json:"coverage"`
	// Instance is the instance's identity as the agent read it; nil when it
	// did not (older agents, sources that are not an agent).
	Instance   *Instance  `json:"instance,omitempty"`
	Callers    []Caller   `json:"callers"`
	ReadyHints ReadyHints `json:"ready_hints"`
}

// TokenPUTCounts counts token PUTs by outcome.
type TokenPUTCounts struct {
	// Unanswered got no answer: the connection ended without one, or none
	// came within Options.TokenAnswerTimeout (the hop-limit symptom).
	Unanswered uint64 `json:"unanswered"`
	// Refused were answered with a status of 300 or more.
	Refused uint64 `json:"refused"`
	// Slow were answered, later than Options.SlowTokenAnswer.
	Slow uint64 `json:"slow"`
}

// ReassemblyStats reports how reassembly coped with what it was given.
type ReassemblyStats struct {
	Evictions  uint64 `json:"evictions"`  // sockets dropped to stay within memory bounds
	Gaps       uint64 `json:"gaps"`       // byte ranges never seen
	Duplicates uint64 `json:"duplicates"` // retransmitted segments
	TooLarge   uint64 `json:"too_large"`  // header blocks over the size bound
}

// Caller aggregates the requests of one (executable, command line,
// container, class).
type Caller struct {
	Class   Class   `json:"class"`
	Cloud   string  `json:"cloud,omitempty"`
	Process Process `json:"process"` // as last seen
	Count   uint64  `json:"count"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`

	Paths      []PathCount `json:"paths"`                 // bounded, most used first
	PathsOther uint64      `json:"paths_other,omitempty"` // requests for paths beyond the bound
	// Answers counts answer status codes; NoAnswer counts requests that got
	// no answer.
	Answers Answers `json:"answers"`
	// HopLimits counts token answers by the TTL they arrived with.
	HopLimits map[uint8]uint64 `json:"hop_limits,omitempty"`
	// Unanswered counts token PUTs that got no answer.
	Unanswered uint64 `json:"unanswered,omitempty"`
	// AfterUnansweredPUT counts IMDSv1 requests made after the same
	// process's token PUT went unanswered (SDK fallback).
	AfterUnansweredPUT uint64 `json:"after_unanswered_token_put,omitempty"`
	// Incomplete counts requests whose header block was not fully captured.
	Incomplete uint64 `json:"incomplete,omitempty"`
	// SlowAnswers counts token answers that came later than
	// Options.SlowTokenAnswer; MaxAnswerDelayMillis is the longest wait seen
	// for a token answer that came.
	SlowAnswers          uint64 `json:"slow_answers,omitempty"`
	MaxAnswerDelayMillis int64  `json:"max_token_answer_delay_ms,omitempty"`
	// IPv6 says the caller used the IPv6 endpoint.
	IPv6 bool `json:"ipv6,omitempty"`
	// Aggregated says the caller stands for several command lines of one
	// executable (and container): the caller table was full, so callers
	// whose command lines differ were merged. Process is the last one seen.
	Aggregated bool `json:"aggregated,omitempty"`

	UserAgent string    `json:"user_agent,omitempty"` // as last seen
	SDK       *sdk.Info `json:"sdk,omitempty"`
}

// PathCount is one requested path and how often.
type PathCount struct {
	Path  string `json:"path"`
	Count uint64 `json:"count"`
}

type callerKey struct {
	exe, cmdline, comm, container string
	class                         Class
}

func keyOf(class Class, p *Process) callerKey {
	k := callerKey{exe: p.Exe, cmdline: p.Cmdline, container: p.ID, class: class}
	if k.exe == "" && k.cmdline == "" {
		k.comm = p.Comm // only the kernel's name is known
	}
	return k
}

// broadKey is the key of callers merged by executable and container when
// the table is full (command lines that vary without end).
func broadKey(class Class, p *Process) callerKey {
	k := keyOf(class, p)
	if k.exe != "" {
		k.cmdline = ""
	}
	return k
}

// aggregate is the Auditor's counting state; it is what the state file keeps.
type aggregate struct {
	maxCallers, maxPaths int

	since          time.Time
	resumed        uint64
	events         map[string]uint64
	requests       map[Class]uint64
	tokenPUTs      TokenPUTCounts
	fallbacks      uint64
	lost           uint64
	unpaired       uint64
	callersDropped uint64
	reasmBase      ReassemblyStats // counts of earlier runs
	droppedBase    uint64
	callers        map[callerKey]*Caller
	cov            coverage
	instance       *Instance
}

func newAggregate(maxCallers, maxPaths int, now time.Time) *aggregate {
	return &aggregate{maxCallers: maxCallers, maxPaths: maxPaths, since: now,
		events: make(map[string]uint64), requests: make(map[Class]uint64), callers: make(map[callerKey]*Caller)}
}

func (g *aggregate) countEvent(k EventKind) { g.events[k.String()]++ }

// add counts a finished request: in the totals, which the verdict reads, and
// under its caller.
func (g *aggregate) add(r *Record) {
	g.requests[r.Class]++
	switch {
	case r.Unanswered:
		g.tokenPUTs.Unanswered++
	case isTokenPUT(r) && r.Status >= 300:
		g.tokenPUTs.Refused++
	}
	if r.Slow {
		g.tokenPUTs.Slow++
	}
	if r.AfterUnansweredPUT {
		g.fallbacks++
	}
	c := g.callerFor(r)
	if c == nil {
		g.callersDropped++
		return
	}
	c.Count++
	c.Cloud = r.Cloud
	c.Process = r.Process
	if r.Time.Before(c.FirstSeen) {
		c.FirstSeen = r.Time
	}
	if r.Time.After(c.LastSeen) {
		c.LastSeen = r.Time
	}
	if sdk.MoreSpecific(r.SDK, c.SDK) {
		c.UserAgent, c.SDK = r.UserAgent, r.SDK
	}
	g.addPath(c, r.Path)
	c.Answers[r.Status]++ // 0 is NoAnswer
	if r.HopLimit != 0 {
		if c.HopLimits == nil {
			c.HopLimits = make(map[uint8]uint64)
		}
		c.HopLimits[r.HopLimit]++
	}
	if r.Unanswered {
		c.Unanswered++
	}
	if r.AfterUnansweredPUT {
		c.AfterUnansweredPUT++
	}
	if r.Incomplete {
		c.Incomplete++
	}
	if r.Slow {
		c.SlowAnswers++
	}
	if isTokenPUT(r) && r.Status != 0 && !r.AnsweredAt.IsZero() {
		c.MaxAnswerDelayMillis = max(c.MaxAnswerDelayMillis, r.AnsweredAt.Sub(r.Time).Milliseconds())
	}
	if r.IPv6() {
		c.IPv6 = true
	}
}

// callerFor returns the caller entry r is counted under, making room for it
// when the table is full: callers that matter to the verdict (IMDSv1, token
// PUTs that failed) are never dropped in favour of those that do not. It
// returns nil when r's caller cannot be itemised (it is then counted in the
// totals only).
func (g *aggregate) callerFor(r *Record) *Caller {
	k := keyOf(r.Class, &r.Process)
	if c := g.callers[k]; c != nil {
		return c
	}
	newCaller := func(k callerKey, aggregated bool) *Caller {
		c := &Caller{Class: r.Class, FirstSeen: r.Time, LastSeen: r.Time, Answers: make(Answers),
			Aggregated: aggregated}
		g.callers[k] = c
		return c
	}
	if len(g.callers) < g.maxCallers {
		return newCaller(k, false)
	}
	// Full. Command lines that vary without end (a job with a timestamp or a
	// request id in its arguments) are merged by executable and container.
	bk := broadKey(r.Class, &r.Process)
	if c := g.callers[bk]; c != nil {
		return c
	}
	if bk != k {
		for ok, c := range g.callers {
			if broadKey(c.Class, &c.Process) == bk {
				// The first time: the entry of another command line of the same
				// executable becomes the aggregated one.
				delete(g.callers, ok)
				c.Aggregated = true
				g.callers[bk] = c
				return c
			}
		}
	}
	rank := callerRank(r.Class, r)
	victim, vk := g.evictable(rank)
	if victim == nil {
		return nil
	}
	// The evicted entry's requests stay in the totals; they are no longer itemised.
	g.callersDropped += victim.Count
	delete(g.callers, vk)
	return newCaller(bk, bk != k)
}

// callerRank orders callers by how much the verdict needs them itemised:
// higher ranks are evicted last.
func callerRank(class Class, r *Record) int {
	switch class {
	case ClassIMDSv1:
		return 3
	case ClassIncomplete:
		return 2
	case ClassTokenPUT, ClassTokenPUTProxied:
		if r == nil || r.Unanswered || r.Status >= 300 || r.Slow {
			return 2
		}
		return 1
	}
	return 0
}

// evictable returns the entry to evict for a newcomer of rank: the lowest
// ranked, least recently seen entry ranked below the newcomer. An IMDSv1
// entry is never evicted; nil means nothing may make room.
func (g *aggregate) evictable(rank int) (*Caller, callerKey) {
	var victim *Caller
	var vk callerKey
	vrank := rank
	for k, c := range g.callers {
		cr := callerRank(c.Class, nil)
		if (c.Class == ClassTokenPUT || c.Class == ClassTokenPUTProxied) && c.Unanswered == 0 &&
			c.SlowAnswers == 0 && failedStatus(c) == 0 {
			cr = 1
		}
		if cr >= rank {
			continue
		}
		if victim == nil || cr < vrank || (cr == vrank && c.LastSeen.Before(victim.LastSeen)) {
			victim, vk, vrank = c, k, cr
		}
	}
	return victim, vk
}

func (g *aggregate) addPath(c *Caller, path string) {
	for i := range c.Paths {
		if c.Paths[i].Path == path {
			c.Paths[i].Count++
			return
		}
	}
	if len(c.Paths) < g.maxPaths {
		c.Paths = append(c.Paths, PathCount{Path: path, Count: 1})
		return
	}
	c.PathsOther++
}

// summary copies the aggregate into a Summary.
func (g *aggregate) summary(now time.Time, st ReassemblyStats, dropped uint64) Summary {
	s := Summary{
		Schema: SummarySchema, Since: g.since, Updated: now, Resumed: g.resumed,
		Events: maps.Clone(g.events), Requests: make(map[Class]uint64),
		LostEvents: g.lost, UnpairedAnswers: g.unpaired, DroppedRecords: g.droppedBase + dropped,
		CallersDropped: g.callersDropped, TokenPUTs: g.tokenPUTs, Fallbacks: g.fallbacks,
		Reassembly: ReassemblyStats{
			Evictions: g.reasmBase.Evictions + st.Evictions, Gaps: g.reasmBase.Gaps + st.Gaps,
			Duplicates: g.reasmBase.Duplicates + st.Duplicates, TooLarge: g.reasmBase.TooLarge + st.TooLarge,
		},
		Callers: make([]Caller, 0, len(g.callers)),
	}
	for _, c := range httpreq.Classes {
		s.Requests[c] = g.requests[c]
	}
	for _, c := range g.callers {
		cp := *c
		cp.Paths = slices.Clone(c.Paths)
		slices.SortStableFunc(cp.Paths, func(a, b PathCount) int {
			if a.Count != b.Count {
				return cmpDesc(a.Count, b.Count)
			}
			return strings.Compare(a.Path, b.Path)
		})
		cp.Answers = maps.Clone(c.Answers)
		cp.HopLimits = maps.Clone(c.HopLimits)
		s.Callers = append(s.Callers, cp)
	}
	slices.SortFunc(s.Callers, compareCallers)
	identifyProcesses(s.Callers)
	g.cov.touch(now)
	s.Coverage = g.cov.summary()
	if g.instance != nil {
		in := *g.instance
		s.Instance = &in
	}
	s.ReadyHints = readyHints(&s)
	return s
}

// restore resumes from a saved summary.
func (g *aggregate) restore(s *Summary) {
	g.since = s.Since
	g.resumed = s.Resumed + 1
	for k, v := range s.Events {
		g.events[k] += v
	}
	for k, v := range s.Requests {
		g.requests[k] += v
	}
	g.lost += s.LostEvents
	g.unpaired += s.UnpairedAnswers
	g.callersDropped += s.CallersDropped
	g.tokenPUTs.Unanswered += s.TokenPUTs.Unanswered
	g.tokenPUTs.Refused += s.TokenPUTs.Refused
	g.tokenPUTs.Slow += s.TokenPUTs.Slow
	g.fallbacks += s.Fallbacks
	g.cov.restore(&s.Coverage)
	if s.Instance != nil {
		in := *s.Instance
		g.instance = &in
	}
	g.reasmBase = s.Reassembly
	g.droppedBase = s.DroppedRecords
	for i := range s.Callers {
		c := s.Callers[i]
		if c.Answers == nil {
			c.Answers = make(Answers)
		}
		k := keyOf(c.Class, &c.Process)
		if c.Aggregated {
			k = broadKey(c.Class, &c.Process)
		}
		g.callers[k] = &c
	}
}

func classRank(c Class) int {
	if i := slices.Index(httpreq.Classes, c); i >= 0 {
		return i
	}
	return len(httpreq.Classes)
}

func compareCallers(a, b Caller) int {
	if r := classRank(a.Class) - classRank(b.Class); r != 0 {
		return r
	}
	if a.Count != b.Count {
		return cmpDesc(a.Count, b.Count)
	}
	for _, p := range [][2]string{{a.Process.Exe, b.Process.Exe}, {a.Process.Cmdline, b.Process.Cmdline},
		{a.Process.ID, b.Process.ID}, {a.Process.Comm, b.Process.Comm}, {string(a.Class), string(b.Class)}} {
		if r := strings.Compare(p[0], p[1]); r != 0 {
			return r
		}
	}
	return 0
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
