package ready

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/scan"
)

// Input is everything a verdict is made of. Evaluate fills the gaps: a nil field means
// "not looked at".
type Input struct {
	// Identity is what IMDS answered to ready's own IMDSv2 requests; ProbeErr why it did
	// not (imds errors: ErrUnreachable, ErrDisabled, ErrHopLimit, ...).
	Identity *Identity
	ProbeErr error
	// Summary is the audit's aggregate; AuditErr why there is none.
	Summary  *audit.Summary
	AuditErr error
	// Source is "live" or "state"; Duration how long the live audit watched.
	Source   string
	Duration time.Duration
	// Observations come from the Observer of a live audit.
	Observations *Observations
	Host         *Host
	Scan         *scan.Report
	ScanErr      error
}

// Evaluate turns what was seen and found into a verdict with reasons and next steps.
func Evaluate(in Input) *Report {
	r := &Report{Schema: Schema, Instance: in.Identity, Reasons: []Reason{}, Warnings: []Reason{},
		Host: in.Host, Observations: in.Observations, NextSteps: []Step{}, WatchAfter: []string{}}
	r.Audit = auditInfo(in)
	if why := undecided(in); why != "" {
		r.Verdict, r.UndecidedReason = Undecided, why
		return r
	}
	s := in.Summary
	victims := unansweredReasons(r, in)
	v1Reasons(r, in)
	for _, h := range s.ReadyHints.FailedTokenPUTs {
		rs := processReason("token-refused", h.Process, in.Observations)
		rs.Count = h.Count
		rs.Detail = fmt.Sprintf("its IMDSv2 token requests were refused (answers %s); it cannot get a token, so it "+
			"falls back to IMDSv1 or fails", answers(h.Answers))
		rs.Fix = h.Advice
		r.Reasons = append(r.Reasons, rs)
	}
	r.HopLimit = hopAdvice(in, victims)
	hopWarnings(r, in, victims)
	scanReasons(r, in)
	auditWarnings(r, in)
	if len(r.Reasons) > 0 {
		r.Verdict = NotReady
	} else {
		r.Verdict = Ready
	}
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
	a.DurationSeconds = float64(int64(a.DurationSeconds*10)) / 10
	return a
}

func undecided(in Input) string {
	if err := in.ProbeErr; err != nil {
		switch {
		case errors.Is(err, imds.ErrDisabled):
			return "IMDS is disabled on this instance (HttpEndpoint=disabled, or AWS_EC2_METADATA_DISABLED=true " +
				"in ready's environment): nothing can read metadata, with a token or without, so there is nothing " +
				"to check. If software here needs IMDS, enable it with --http-endpoint enabled --http-tokens required " +
				"and run ready again"
		case errors.Is(err, imds.ErrUnreachable):
			return "IMDS did not answer at 169.254.169.254: this does not look like an EC2 instance, or IMDS is " +
				"blocked from this network namespace (a firewall rule, a proxy). Run ready on the instance, in its " +
				"host network namespace. (" + err.Error() + ")"
		case errors.Is(err, imds.ErrHopLimit):
			return "ready's own IMDSv2 token request got no answer: ready itself runs behind a bridge (in a " +
				"container). Run it in the host's network namespace (docker --network host, hostNetwork: true)"
		}
		return "ready could not read this instance's identity with IMDSv2: " + err.Error()
	}
	if in.Identity == nil {
		return "ready did not ask IMDS for this instance's identity"
	}
	if in.Summary == nil {
		why := "no audit of IMDS callers"
		if in.AuditErr != nil {
			why = "the audit of IMDS callers could not run: " + in.AuditErr.Error()
		}
		return why + ". Without it ready cannot know which processes still use IMDSv1"
	}
	return ""
}

// where says where a process runs: in a container (by cgroup), in another network
// namespace (by its socket's address), or on the host.
func where(p audit.Process, obs *Observations) string {
	if t, ok := obs.IsForeign(p.PID); ok {
		if p.Container.ID != "" {
			return fmt.Sprintf("container %s (%s), address %s", short(p.Container.ID), p.Container.Runtime, t.Addr)
		}
		return "network namespace of its own (address " + t.Addr + "), behind a bridge: a container"
	}
	if p.InContainer() {
		if p.Container.ID != "" {
			return fmt.Sprintf("container %s (%s)", short(p.Container.ID), p.Container.Runtime)
		}
		return "container (" + p.Container.Runtime + ")"
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

func processReason(code string, p audit.Process, obs *Observations) Reason {
	subject := fmt.Sprintf("%s (pid %d", processName(p), p.PID)
	if p.User != "" {
		subject += ", user " + p.User
	}
	subject += ")"
	if p.Container.Unit != "" {
		subject += " in " + p.Container.Unit
	}
	return Reason{Code: code, Subject: audit.EscapeText(subject), PID: p.PID, Exe: p.Exe, Cmdline: p.Cmdline,
		Where: where(p, obs)}
}

func answers(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// findCaller returns the aggregate entry behind a hint, for its paths.
func findCaller(s *audit.Summary, h audit.Hint) *audit.Caller {
	for i := range s.Callers {
		c := &s.Callers[i]
		if c.Class == h.Class && c.Process.Exe == h.Process.Exe && c.Process.Cmdline == h.Process.Cmdline &&
			c.Process.PID == h.Process.PID {
			return c
		}
	}
	return nil
}

func v1Reasons(r *Report, in Input) {
	s := in.Summary
	for _, h := range s.ReadyHints.IMDSv1Callers {
		rs := processReason("imdsv1-caller", h.Process, in.Observations)
		rs.Count = h.Count
		paths := ""
		if c := findCaller(s, h); c != nil && len(c.Paths) > 0 {
			ps := make([]string, 0, 3)
			for _, p := range c.Paths[:min(3, len(c.Paths))] {
				ps = append(ps, p.Path)
			}
			paths = " for " + strings.Join(ps, ", ")
			if len(c.Paths) > 3 {
				paths += ", ..."
			}
		}
		sender := ""
		if h.SDK != nil && h.SDK.Name != "" {
			sender = " (" + h.SDK.Name
			if h.SDK.Version != "" {
				sender += " " + h.SDK.Version
			}
			sender += ")"
		}
		rs.Detail = fmt.Sprintf("%d IMDSv1 request(s), GET without a session token%s%s; answers %s. "+
			"Under HttpTokens=required these get 401 and the program loses its metadata and credentials",
			h.Count, sender, audit.EscapeText(paths), answers(h.Answers))
		rs.Fix = h.Advice
		if h.SDK != nil && h.SDK.DisableV1 != "" && !strings.Contains(rs.Fix, h.SDK.DisableV1) {
			rs.Fix += "; then set " + h.SDK.DisableV1 + " so it never falls back again"
		}
		r.Reasons = append(r.Reasons, rs)
	}
}

// unansweredReasons adds the hop-limit victims and returns how many there are.
func unansweredReasons(r *Report, in Input) int {
	hints := in.Summary.ReadyHints.UnansweredTokenPUTs
	for _, h := range hints {
		rs := processReason("token-unanswered", h.Process, in.Observations)
		rs.Count = h.Count
		rs.Detail = "its IMDSv2 token requests (PUT /latest/api/token) got no answer: IMDS sends that answer " +
			"with IP TTL = HttpPutResponseHopLimit, every bridge on the way takes one off, and the answer " +
			"died before it reached this process"
		if h.FellBack {
			rs.Detail += "; the program then fell back to IMDSv1, which stops working under HttpTokens=required"
		} else {
			rs.Detail += "; its metadata reads fail already"
		}
		rs.Fix = "raise the instance's HttpPutResponseHopLimit to 2 (one more hop than the host needs; see next " +
			"steps) so that the token answer reaches the container"
		r.Reasons = append(r.Reasons, rs)
	}
	return len(hints)
}
