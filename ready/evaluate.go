package ready

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/scan"
)

// Input is everything a verdict is made of. Evaluate fills the gaps: a nil field means
// "not looked at".
type Input struct {
	// Identity is what IMDS answered to ready's own IMDSv2 requests; ProbeErr why it did
	// not (imds errors: ErrUnreachable, ErrDisabled, ErrHopLimit, ...).
	Identity *Identity
	ProbeErr error
	// Summary is the audit's aggregate, with its coverage record; AuditErr why there is none.
	Summary  *audit.Summary
	AuditErr error
	// Source is "live" or "state"; Duration how long the live audit ran.
	Source   string
	Duration time.Duration
	// Scope, when set, makes the verdict about that cgroup subtree only (the operator
	// named it with --cgroup); nil means the whole instance.
	Scope *Scope
	// MinWatch is the least watched time, without a gap over MaxGap, for a verdict other
	// than UNDECIDED; 0 means DefaultMinWatch.
	MinWatch time.Duration
	// Now is the time the verdict is made at (a state file older than MaxGap is stale);
	// zero means the clock's.
	Now     time.Time
	Host    *Host
	Scan    *scan.Report
	ScanErr error
}

// Evaluate turns what was seen and found into a verdict with reasons, doubts and next
// steps. The verdict itself is decided in one place (decide, see there for the invariant).
func Evaluate(in Input) *Report {
	r := &Report{Schema: Schema, Scope: scopeInfo(in), Instance: in.Identity, Reasons: []Reason{},
		Uncertain: []Reason{}, Warnings: []Reason{}, Host: in.Host, NextSteps: []Step{}, WatchAfter: []string{}}
	r.Audit = auditInfo(in)
	r.Coverage = coverageInfo(in)
	if s := in.Summary; s != nil {
		victims := unansweredReasons(r, in)
		v1Reasons(r, in)
		refusedReasons(r, in)
		r.HopLimit = hopAdvice(in, victims)
		hopWarnings(r, in, victims)
		auditWarnings(r, in)
	}
	scanReasons(r, in)
	decide(r, in)
	nextSteps(r, in)
	return r
}

func auditInfo(in Input) AuditInfo {
	a := AuditInfo{Source: in.Source, Requests: map[string]uint64{}}
	if a.Source == "" {
		a.Source = "none"
	}
	if in.AuditErr != nil {
		a.Error = in.AuditErr.Error()
	}
	if s := in.Summary; s != nil {
		a.Since, a.Callers, a.Complete, a.LostEvents = s.Since, len(s.Callers), s.ReadyHints.Complete, s.LostEvents
		for k, v := range s.Requests {
			a.Requests[string(k)] = v
		}
		a.DurationSeconds = in.Duration.Seconds()
		if in.Source == "state" && !s.Since.IsZero() {
			a.DurationSeconds = s.Updated.Sub(s.Since).Seconds()
		}
	}
	a.DurationSeconds = round1(a.DurationSeconds)
	return a
}

// where says where a process runs: in a network namespace of its own (a container on a
// bridge, a pod), in a container by its cgroup, or on the host.
func where(p audit.Process) string {
	ctr := ""
	if p.Container.ID != "" {
		ctr = fmt.Sprintf("container %s (%s)", short(p.Container.ID), p.Container.Runtime)
	} else if p.InContainer() {
		ctr = "container (" + p.Container.Runtime + ")"
	}
	switch {
	case p.HostNetwork && ctr != "":
		return ctr + ", in the host's network namespace"
	case p.OtherNetwork && ctr != "":
		return ctr + ", address " + p.LocalAddr
	case p.OtherNetwork:
		return "network namespace of its own (address " + p.LocalAddr + "), behind a bridge: a container"
	case ctr != "":
		return ctr
	}
	return "host"
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func processName(p audit.Process) string {
	name := p.Comm
	if p.Exe != "" {
		name = filepath.Base(p.Exe)
	}
	if name == "" {
		name = "unknown process"
	}
	return name
}

func processReason(code string, p audit.Process) Reason {
	subject := fmt.Sprintf("%s (pid %d", processName(p), p.PID)
	if p.User != "" {
		subject += ", user " + p.User
	}
	subject += ")"
	if p.Container.Unit != "" {
		subject += " in " + p.Container.Unit
	}
	return Reason{Code: code, Subject: audit.EscapeText(subject), PID: p.PID, Exe: p.Exe, Cmdline: p.Cmdline,
		Where: audit.EscapeText(where(p))}
}

func answers(a audit.Answers) string {
	if len(a) == 0 {
		return "none"
	}
	return a.Format(" x", ", ")
}

// v1Reasons names every IMDSv1 caller, and the IMDSv1 requests of callers the aggregate
// could not itemise: the verdict follows the counts, not only the callers.
func v1Reasons(r *Report, in Input) {
	s := in.Summary
	var itemised uint64
	for _, h := range s.ReadyHints.IMDSv1Callers {
		itemised += h.Count
		rs := processReason(codeIMDSv1Caller, h.Process)
		rs.Count = h.Count
		paths := ""
		if len(h.Paths) > 0 {
			paths = " for " + strings.Join(h.Paths, ", ")
		}
		sender := ""
		if h.SDK != nil && h.SDK.Name != "" {
			sender = " (" + h.SDK.Name
			if h.SDK.Version != "" {
				sender += " " + h.SDK.Version
			}
			sender += ")"
		}
		many := ""
		if h.Aggregated {
			many = " by several command lines of this program"
		}
		rs.Detail = fmt.Sprintf("%d IMDSv1 request(s)%s, GET without a session token%s%s; answers %s. "+
			"Under HttpTokens=required these get 401 and the program loses its metadata and credentials",
			h.Count, many, sender, audit.EscapeText(paths), answers(h.Answers))
		rs.Fix = h.Advice
		if h.SDK != nil && h.SDK.DisableV1 != "" && !strings.Contains(rs.Fix, h.SDK.DisableV1) {
			rs.Fix += "; then set " + h.SDK.DisableV1 + " so it never falls back again"
		}
		r.Reasons = append(r.Reasons, rs)
	}
	if total := s.Requests[audit.ClassIMDSv1]; total > itemised {
		r.Reasons = append(r.Reasons, Reason{Code: codeIMDSv1Requests, Subject: "callers not itemised",
			Count: total - itemised,
			Detail: fmt.Sprintf("%d IMDSv1 request(s) were counted whose callers the audit could not itemise "+
				"(its caller table was full: %d requests not itemised)", total-itemised, s.CallersDropped),
			Fix: "audit again for a shorter time, or with fewer distinct programs calling IMDS, to name them"})
	}
}

// refusedReasons names the callers whose token PUTs were refused, and counts the rest.
func refusedReasons(r *Report, in Input) {
	s := in.Summary
	var itemised uint64
	for _, h := range s.ReadyHints.FailedTokenPUTs {
		rs := processReason(codeTokenRefused, h.Process)
		itemised += h.Answers.Refused()
		rs.Count = h.Count
		rs.Detail = fmt.Sprintf("its IMDSv2 token requests were refused (answers %s); it cannot get a token, so it "+
			"falls back to IMDSv1 or fails", answers(h.Answers))
		rs.Fix = h.Advice
		r.Reasons = append(r.Reasons, rs)
	}
	if n := s.TokenPUTs.Refused; n > itemised {
		r.Reasons = append(r.Reasons, Reason{Code: codeTokenRefused, Subject: "callers not itemised", Count: n - itemised,
			Detail: fmt.Sprintf("%d token PUT(s) of callers the audit could not itemise were refused", n-itemised),
			Fix:    "audit again to name them"})
	}
}

// unansweredReasons adds the hop-limit victims and returns how many there are.
func unansweredReasons(r *Report, in Input) int {
	s := in.Summary
	hints := s.ReadyHints.UnansweredTokenPUTs
	var itemised uint64
	for _, h := range hints {
		rs := processReason(codeTokenUnanswered, h.Process)
		rs.Count = h.Count
		itemised += h.Unanswered
		rs.Detail = "its IMDSv2 token requests (PUT /latest/api/token) got no answer: IMDS sends that answer " +
			"with IP TTL = HttpPutResponseHopLimit, every bridge on the way takes one off, and the answer " +
			"died before it reached this process"
		if h.FellBack {
			rs.Detail += "; the program then fell back to IMDSv1, which stops working under HttpTokens=required"
		} else {
			rs.Detail += "; its metadata reads fail already"
		}
		rs.Fix = "raise the instance's HttpPutResponseHopLimit to 2 (one more hop than the host needs; the " +
			"enforcement command in the instance's next steps sets it) so that the token answer reaches the container"
		r.Reasons = append(r.Reasons, rs)
	}
	if n := s.TokenPUTs.Unanswered; n > itemised {
		r.Reasons = append(r.Reasons, Reason{Code: codeTokenUnanswered, Subject: "callers not itemised",
			Count:  n - itemised,
			Detail: fmt.Sprintf("%d token PUT(s) of callers the audit could not itemise got no answer", n-itemised),
			Fix:    "raise the instance's HttpPutResponseHopLimit to 2 (see next steps)"})
		return len(hints) + 1
	}
	return len(hints)
}
