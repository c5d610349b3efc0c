package ready

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// DefaultMinWatch is the least time an audit must have watched for a verdict other than
// UNDECIDED: the default --duration of `imdsv2 ready`, so that a plain run can decide. For
// fleets, watch a day or more (hourly and daily jobs, a reboot).
const DefaultMinWatch = 5 * time.Minute

// MaxGap is the longest stretch without watching that still counts as continuous watching (an
// agent restarted, upgraded, or the host rebooted); the minimum watch time must be met since
// the last longer gap, and a state file whose agent stopped watching longer ago than this is
// stale: whatever started since is unseen.
const MaxGap = 15 * time.Minute

// decide applies the verdict invariant, and is the only place that sets Report.Verdict:
//
//   - NOT READY when anything would break under HttpTokens=required: a reason found by the
//     audit (any IMDSv1 request counted, itemised or not; token PUTs unanswered or refused)
//     or by the scan. NOT READY wins over every other outcome, coverage included.
//   - Otherwise UNDECIDED when anything leaves room for doubt (Report.Uncertain): no proof
//     of what was watched, less than the whole host (or than the scope asked for), less
//     than the minimum time, without exec tracing, with lost events, unclassified
//     requests, capture gaps or unpaired answers, or IMDS itself could not be asked.
//   - READY only when none of that holds: positive evidence that the whole instance (or the
//     named scope) was watched for long enough, completely, and that no tokenless request to
//     an AWS metadata path was counted anywhere.
func decide(r *Report, in Input) {
	if s := in.Summary; s != nil && s.Requests[audit.ClassIMDSv1] > 0 && !hasReason(r, codeIMDSv1Caller, codeIMDSv1Requests) {
		// A guard, not the rule: v1Reasons already reports every counted IMDSv1 request.
		r.Reasons = append(r.Reasons, Reason{Code: codeIMDSv1Requests, Subject: "IMDSv1 requests",
			Count:  s.Requests[audit.ClassIMDSv1],
			Detail: fmt.Sprintf("%d IMDSv1 request(s) were counted", s.Requests[audit.ClassIMDSv1]),
			Fix:    "audit with imdsv2 audit to name the callers, and fix each"})
	}
	r.Uncertain = uncertainties(in)
	switch {
	case len(r.Reasons) > 0:
		r.Verdict = NotReady
	case len(r.Uncertain) > 0:
		r.Verdict = Undecided
		r.UndecidedReason = r.Uncertain[0].Detail
		if n := len(r.Uncertain) - 1; n > 0 {
			r.UndecidedReason += fmt.Sprintf(" (and %d more: see uncertain)", n)
		}
	default:
		r.Verdict = Ready
	}
}

func hasReason(r *Report, codes ...string) bool {
	for _, rs := range r.Reasons {
		for _, c := range codes {
			if rs.Code == c {
				return true
			}
		}
	}
	return false
}

// Codes of Report.Uncertain entries; their values are stable.
const (
	codeIMDSUnreachable  = "imds-unreachable"
	codeIMDSDisabled     = "imds-disabled"
	codeProbeHopLimit    = "ready-behind-bridge"
	codeProbeFailed      = "identity-unknown"
	codeNoAudit          = "no-audit"
	codeCoverageUnknown  = "coverage-unknown"
	codeNotWholeHost     = "not-whole-host"
	codeAgentNamespaces  = "agent-not-in-host-namespaces"
	codeScopeNotCovered  = "scope-not-covered"
	codeExecTracingOff   = "exec-tracing-off"
	codeWatchedTooShort  = "watched-too-short"
	codeCoverageStale    = "coverage-stale"
	codeEventsLost       = "events-lost"
	codeUnclassified     = "unclassified-requests"
	codeCaptureGaps      = "capture-gaps"
	codeUnpairedAnswers  = "unpaired-answers"
	codeIMDSv1Caller     = "imdsv1-caller"
	codeIMDSv1Requests   = "imdsv1-requests"
	codeTokenUnanswered  = "token-unanswered"
	codeTokenRefused     = "token-refused"
	codeSlowTokenAnswers = "slow-token-answers"
)

// uncertainties lists every condition that keeps the verdict from READY, in the order an
// operator should look at them: whether IMDS itself could be asked, whether an audit ran, then
// the audit's doubts (auditDoubts).
func uncertainties(in Input) []Reason {
	u := []Reason{}
	if r := probeDoubt(in); r != nil {
		u = append(u, *r)
	}
	if in.Summary == nil {
		return append(u, noAuditDoubt(in.AuditErr))
	}
	for _, check := range auditDoubts {
		if r := check(in, in.Summary); r != nil {
			u = append(u, *r)
		}
	}
	return u
}

// auditDoubts are the doubts an audit's summary can leave, in the order they are listed. Each
// returns nil when its doubt does not hold.
var auditDoubts = []func(Input, *audit.Summary) *Reason{
	coverageDoubt,
	execTracingDoubt,
	watchTimeDoubt,
	staleDoubt,
	lostEventsDoubt,
	unclassifiedDoubt,
	captureGapsDoubt,
	unpairedAnswersDoubt,
}

func doubt(code, subject, detail, fix string) *Reason {
	return &Reason{Code: code, Subject: subject, Detail: detail, Fix: fix}
}

// probeDoubt is why ready's own read of the instance's identity failed, or that it made none.
func probeDoubt(in Input) *Reason {
	err := in.ProbeErr
	switch {
	case err == nil && in.Identity == nil:
		return doubt(codeProbeFailed, "IMDS", "ready did not ask IMDS for this instance's identity", "run ready on the instance")
	case err == nil:
		return nil
	case errors.Is(err, imds.ErrDisabled):
		return doubt(codeIMDSDisabled, "IMDS", "IMDS is disabled on this instance (HttpEndpoint=disabled, or "+
			"AWS_EC2_METADATA_DISABLED=true in ready's environment): nothing can read metadata, with a token or "+
			"without, so there is nothing to check",
			"if software here needs IMDS, enable it with "+
				imdsfacts.MetadataOptions{HTTPTokens: "required", HTTPEndpoint: "enabled"}.Command()+" and run ready again")
	case errors.Is(err, imds.ErrUnreachable):
		return doubt(codeIMDSUnreachable, "IMDS", "IMDS did not answer at 169.254.169.254: this does not look like an EC2 "+
			"instance, or IMDS is blocked from this network namespace (a firewall rule, a proxy). ("+err.Error()+")",
			"run ready on the instance, in its host network namespace")
	case errors.Is(err, imds.ErrHopLimit):
		return doubt(codeProbeHopLimit, "imdsv2 ready", "ready's own IMDSv2 token request got no answer: ready itself runs "+
			"behind a bridge (in a container)",
			"run it in the host's network namespace (docker --network host, hostNetwork: true)")
	}
	return doubt(codeProbeFailed, "IMDS", "ready could not read this instance's identity with IMDSv2: "+err.Error(),
		"run ready on the instance, as root")
}

// noAuditDoubt is the doubt of a verdict without an audit: the only one listed after the probe's.
func noAuditDoubt(auditErr error) Reason {
	why := "no audit of IMDS callers"
	if auditErr != nil {
		why = "the audit of IMDS callers could not run: " + auditErr.Error()
	}
	return *doubt(codeNoAudit, "auditor", why+". Without it ready cannot know which processes still use IMDSv1", noAuditFix(auditErr))
}

// watchedAnything reports whether the audit recorded any of what it watched.
func watchedAnything(cv audit.Coverage) bool { return len(cv.Spans) > 0 || cv.Earlier != nil }

// coverageDoubt: the audit proves no coverage, or not of the whole host, or not of the scope asked about.
func coverageDoubt(in Input, s *audit.Summary) *Reason {
	cv := s.Coverage
	switch {
	case !watchedAnything(cv):
		return doubt(codeCoverageUnknown, "auditor", "the audit recorded nothing of what it watched (a state file written by "+
			"an older agent, or a source that does not report it): it proves no coverage",
			"let the current agent (imdsv2 audit --state FILE) watch for at least --min-watch, then ask again")
	case in.Scope == nil:
		return wholeHostDoubt(cv)
	case !covers(cv, in.Scope):
		return doubt(codeScopeNotCovered, "auditor", fmt.Sprintf("the audit watched %s, which does not include the cgroup "+
			"asked about (%s)", orUnknown(cv.Scope), in.Scope.Cgroup),
			"audit that cgroup (or the whole host) and ask again")
	}
	return nil
}

func execTracingDoubt(_ Input, s *audit.Summary) *Reason {
	if !watchedAnything(s.Coverage) || s.Coverage.ExecTracing {
		return nil
	}
	return doubt(codeExecTracingOff, "auditor", "exec tracing was off for part of the audit: short-lived callers may "+
		"be missing their names, and the audit cannot show it saw every process",
		"run the agent where its exec programs load (see imdsv2 version --features)")
}

// watchTimeDoubt: the audit watched without a long gap for less than the minimum watch time.
func watchTimeDoubt(in Input, s *audit.Summary) *Reason {
	if !watchedAnything(s.Coverage) {
		return nil
	}
	minWatch := in.MinWatch
	if minWatch <= 0 {
		minWatch = DefaultMinWatch
	}
	watched := continuousWatch(s.Coverage)
	if watched >= minWatch {
		return nil
	}
	return doubt(codeWatchedTooShort, "auditor", fmt.Sprintf("the audit watched %s without a gap over %s, less than "+
		"the %s required (--min-watch): callers that run hourly, daily or at boot may not have been seen",
		watched.Round(100*time.Millisecond), MaxGap, minWatch),
		"let the agent watch longer (a day or more for fleets: --min-watch 24h), or lower --min-watch knowingly")
}

// staleDoubt: the agent whose state file is read stopped watching longer ago than MaxGap.
func staleDoubt(in Input, s *audit.Summary) *Reason {
	if !watchedAnything(s.Coverage) || in.Source != "state" {
		return nil
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	last := lastWatched(s.Coverage)
	if now.Sub(last) <= MaxGap {
		return nil
	}
	return doubt(codeCoverageStale, "auditor", fmt.Sprintf("the agent last watched at %s, %s ago: anything started "+
		"since is unseen", last.UTC().Format(time.RFC3339), now.Sub(last).Round(time.Second)),
		"make sure the agent runs (imdsv2 audit --state FILE, as a service), then ask again")
}

func lostEventsDoubt(_ Input, s *audit.Summary) *Reason {
	if s.LostEvents == 0 {
		return nil
	}
	return doubt(codeEventsLost, "auditor", fmt.Sprintf("%d kernel events were lost: any of them may have been an IMDSv1 "+
		"request", s.LostEvents), "audit again; if it recurs, report it with imdsv2 version --features")
}

func unclassifiedDoubt(_ Input, s *audit.Summary) *Reason {
	n := s.Requests[audit.ClassIncomplete]
	if n == 0 {
		return nil
	}
	return doubt(codeUnclassified, "auditor", fmt.Sprintf("%d request(s) could not be classified (their header block "+
		"was not fully captured): any of them may be IMDSv1", n), "see the audit's incomplete requests and "+
		"their callers; audit again")
}

func captureGapsDoubt(_ Input, s *audit.Summary) *Reason {
	g := s.Reassembly.Gaps + s.Reassembly.Evictions
	if g == 0 {
		return nil
	}
	return doubt(codeCaptureGaps, "auditor", fmt.Sprintf("%d capture gap(s) or evicted connection(s): requests on them "+
		"may have gone unseen", g), "audit again, on a quieter moment")
}

func unpairedAnswersDoubt(_ Input, s *audit.Summary) *Reason {
	if s.UnpairedAnswers == 0 {
		return nil
	}
	return doubt(codeUnpairedAnswers, "auditor", fmt.Sprintf("%d answer(s) from IMDS to requests the audit did not see",
		s.UnpairedAnswers), "audit again")
}

// noAuditFallback is what an operator has where the agent cannot run: the instance's own count
// of IMDSv1 calls, and the scan (which runs without the agent).
const noAuditFallback = "watch the instance's CloudWatch metric MetadataNoToken (AWS/EC2, per InstanceId: " +
	"IMDSv1 calls, no process named) for a day or more, and fix what the installed-software scan below names"

// noAuditFix is the fix of an audit that did not run: root or the agent's state file, unless
// the kernel is what stops it (then only the fallback, or another kernel).
func noAuditFix(auditErr error) string {
	if kernelUnsupported(auditErr) {
		return "the agent cannot run on this kernel: " + noAuditFallback + "; to audit, boot a kernel it runs on " +
			"(Linux 5.9 or later; on Amazon Linux 2: sudo amazon-linux-extras install kernel-5.10, then reboot)"
	}
	return "run ready as root, or point --state at the running agent's state file; where the agent cannot run " +
		"(a kernel older than 5.9, no cgroup v2, no BPF ring buffer: Amazon Linux 2's 4.14), " + noAuditFallback
}

// unsupportedKernel is the error of an agent that cannot run on this kernel at all
// (bpf.MissingError; ready does not import bpf for it).
type unsupportedKernel interface {
	error
	UnsupportedKernel() bool
}

// kernelUnsupported reports whether the audit did not run because the kernel cannot run the
// agent at all.
func kernelUnsupported(auditErr error) bool {
	var kernel unsupportedKernel
	return errors.As(auditErr, &kernel) && kernel.UnsupportedKernel()
}

// continuousWatch is the time watched since the last gap longer than MaxGap (the newest
// spans; folded ones do not count).
func continuousWatch(cv audit.Coverage) time.Duration {
	var d time.Duration
	for i := len(cv.Spans) - 1; i >= 0; i-- {
		sp := cv.Spans[i]
		d += sp.To.Sub(sp.From)
		if i > 0 && sp.From.Sub(cv.Spans[i-1].To) > MaxGap {
			break
		}
	}
	return d
}

// lastWatched is when the last span ended (or was last known to be watching).
func lastWatched(cv audit.Coverage) time.Time {
	if n := len(cv.Spans); n > 0 {
		return cv.Spans[n-1].To
	}
	if cv.Earlier != nil {
		return cv.Earlier.To
	}
	return time.Time{}
}

// wholeHostDoubt: the audit watched less than the whole host, or from a container's namespaces.
func wholeHostDoubt(cv audit.Coverage) *Reason {
	if cv.WholeHost {
		return nil
	}
	for _, sp := range cv.Spans {
		if sp.Agent != nil && !sp.Agent.SeesHost() {
			return doubt(codeAgentNamespaces, "auditor", "the agent ran in a container's "+
				"cgroup or pid namespace without --host-proc and --host-cgroup: it saw its own pod, not the host",
				"run it with hostPID: true and the host's /proc and /sys/fs/cgroup mounted, passed with "+
					"--host-proc and --host-cgroup (see the README's DaemonSet settings)")
		}
	}
	return doubt(codeNotWholeHost, "auditor",
		fmt.Sprintf("the audit watched %s, not the whole host (the root of the host's cgroup2 hierarchy, "+
			"from the host's namespaces, for its whole time): this is not the instance's verdict", orUnknown(cv.Scope)),
		"run the agent without --cgroup; for a verdict about that subtree only, ask with ready --cgroup")
}

// covers reports whether every span watched the scope's cgroup or the whole host. A span
// matches by path only when its agent saw the host's cgroup hierarchy (a path in a pod's own
// cgroup namespace names the pod's cgroup), and by id only with the same path where the path
// is known (ids come back after a reboot).
func covers(cv audit.Coverage, sc *Scope) bool {
	if cv.Earlier != nil && !cv.Earlier.WholeHost {
		return false
	}
	for _, sp := range cv.Spans {
		w := sp.Watch
		hostView := sp.Agent != nil && (sp.Agent.InitialCgroupNS || sp.Agent.HostCgroup)
		samePath := sc.Rel != "" && w.Path == sc.Rel && hostView
		sameID := sc.ID != 0 && w.CgroupID == sc.ID && (sc.Rel == "" || w.Path == sc.Rel)
		if !(w.HostRoot && hostView || samePath || sameID) {
			return false
		}
	}
	return len(cv.Spans) > 0 || cv.Earlier != nil
}

func orUnknown(s string) string {
	switch s {
	case "":
		return "nothing known"
	case "mixed":
		return "different cgroups at different times"
	}
	return "cgroup " + s
}

// Scope names the cgroup subtree a verdict is about, when it is not the whole instance.
type Scope struct {
	// Cgroup is the directory as the operator named it (--cgroup).
	Cgroup string
	// Rel is its path relative to the root of the cgroup2 hierarchy ("/a/b"), and ID its
	// cgroup id, when known: a span covers the scope when it watched the same id or path,
	// or the whole host.
	Rel string
	ID  uint64
}

// ScopeInfo says what a verdict is about, in the report.
type ScopeInfo struct {
	// Kind is "instance" (the whole host) or "cgroup" (a subtree the operator named).
	Kind   string `json:"kind"`
	Cgroup string `json:"cgroup,omitempty"`
}

func scopeInfo(in Input) ScopeInfo {
	if in.Scope == nil {
		return ScopeInfo{Kind: "instance"}
	}
	return ScopeInfo{Kind: "cgroup", Cgroup: in.Scope.Cgroup}
}

// CoverageInfo is the coverage block of the report: what the audit watched, and every
// figure that could make it incomplete.
type CoverageInfo struct {
	// Scope is the cgroup watched, relative to the cgroup2 root ("/" is the whole host).
	Scope     string `json:"scope"`
	WholeHost bool   `json:"whole_host"`
	// CgroupID and HostRoot describe the cgroup of the last span.
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	HostRoot bool   `json:"host_root"`
	// Agent is how the agent of the last span ran (namespaces, host paths).
	Agent           *audit.Agent `json:"agent,omitempty"`
	ExecTracing     bool         `json:"exec_tracing"`
	WatchedSeconds  float64      `json:"watched_seconds"`
	MinWatchSeconds float64      `json:"min_watch_seconds"`
	From            time.Time    `json:"from,omitzero"`
	To              time.Time    `json:"to,omitzero"`
	// Spans counts the stretches watched (agent starts, cgroup re-attachments); Gaps are
	// the stretches between them.
	Spans      int         `json:"spans"`
	Gaps       []audit.Gap `json:"gaps"`
	GapSeconds float64     `json:"gap_seconds"`

	LostEvents      uint64 `json:"lost_events"`
	Unclassified    uint64 `json:"unclassified_requests"`
	CaptureGaps     uint64 `json:"capture_gaps"`
	UnpairedAnswers uint64 `json:"unpaired_answers"`
	CallersDropped  uint64 `json:"callers_dropped"`
	DroppedRecords  uint64 `json:"dropped_records"`
}

func coverageInfo(in Input) *CoverageInfo {
	s := in.Summary
	if s == nil {
		return nil
	}
	cv := s.Coverage
	minWatch := in.MinWatch
	if minWatch <= 0 {
		minWatch = DefaultMinWatch
	}
	ci := &CoverageInfo{Scope: cv.Scope, WholeHost: cv.WholeHost, ExecTracing: cv.ExecTracing,
		WatchedSeconds: round1(cv.WatchedSeconds), MinWatchSeconds: minWatch.Seconds(), Gaps: cv.Gaps,
		GapSeconds: round1(cv.GapSeconds), Spans: len(cv.Spans),
		LostEvents: s.LostEvents, Unclassified: s.Requests[audit.ClassIncomplete],
		CaptureGaps: s.Reassembly.Gaps + s.Reassembly.Evictions, UnpairedAnswers: s.UnpairedAnswers,
		CallersDropped: s.CallersDropped, DroppedRecords: s.DroppedRecords}
	if ci.Gaps == nil {
		ci.Gaps = []audit.Gap{}
	}
	if e := cv.Earlier; e != nil {
		ci.Spans += e.Spans
		ci.From = e.From
	}
	if n := len(cv.Spans); n > 0 {
		last := cv.Spans[n-1]
		ci.CgroupID, ci.HostRoot, ci.Agent, ci.To = last.Watch.CgroupID, last.Watch.HostRoot, last.Agent, last.To
		if ci.From.IsZero() {
			ci.From = cv.Spans[0].From
		}
	}
	return ci
}

func round1(f float64) float64 { return float64(int64(f*10)) / 10 }

// coverageLines renders the coverage block for people.
func coverageLines(c *CoverageInfo) []string {
	if c == nil {
		return nil
	}
	if c.Spans == 0 {
		return []string{"nothing recorded (an older agent's state file, or a source that does not report coverage)"}
	}
	where := fmt.Sprintf("cgroup %s (id %d)", c.Scope, c.CgroupID)
	switch {
	case c.WholeHost:
		where = fmt.Sprintf("the whole host (cgroup %s, id %d, the root of the host's cgroup2 hierarchy)", c.Scope, c.CgroupID)
	case c.HostRoot:
		where = fmt.Sprintf("cgroup %s (id %d, the root of the host's cgroup2 hierarchy, but not the whole host's time or view)",
			c.Scope, c.CgroupID)
	}
	agent := "agent: how it ran is unknown"
	if a := c.Agent; a != nil {
		switch {
		case a.HostPaths() && a.SeesHost():
			agent = "agent: seeing the host through --host-proc/--host-cgroup"
		case a.InitialCgroupNS && a.InitialPIDNS:
			agent = "agent: in the host's cgroup and pid namespaces"
		default:
			agent = "agent: in a container's namespaces, without the host paths it needs"
		}
	}
	tracing := "exec tracing on"
	if !c.ExecTracing {
		tracing = "exec tracing OFF"
	}
	gaps := "no gaps"
	if len(c.Gaps) > 0 {
		gaps = fmt.Sprintf("%d gap(s), %s in all", len(c.Gaps), secs(c.GapSeconds))
	}
	lines := []string{
		where,
		agent + "; " + tracing,
		fmt.Sprintf("watched %s (at least %s required), %s to %s, %d span(s), %s", secs(c.WatchedSeconds),
			secs(c.MinWatchSeconds), c.From.UTC().Format(time.RFC3339), c.To.UTC().Format(time.RFC3339), c.Spans, gaps),
	}
	for _, g := range c.Gaps {
		lines = append(lines, fmt.Sprintf("  gap %s to %s: %s", g.From.UTC().Format(time.RFC3339),
			g.To.UTC().Format(time.RFC3339), g.Why))
	}
	lines = append(lines, fmt.Sprintf("lost events %d, unclassified requests %d, capture gaps %d, unpaired answers %d, "+
		"callers not itemised %d, records dropped %d", c.LostEvents, c.Unclassified, c.CaptureGaps, c.UnpairedAnswers,
		c.CallersDropped, c.DroppedRecords))
	return lines
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}

// joinCodes lists the codes of reasons, for tests and messages.
func joinCodes(rs []Reason) string {
	codes := make([]string, len(rs))
	for i, r := range rs {
		codes[i] = r.Code
	}
	return strings.Join(codes, ",")
}
