package ready

import (
	"time"

	"github.com/imdsv2/imdsv2/audit"
)

// Schema is the version of the Report JSON layout. It changes when a field changes
// meaning or goes away; new fields may appear without a change. Schema 2: the verdict
// follows the invariant (decide), with scope, coverage and uncertain; observations are
// gone (their facts are in the audit's callers).
const Schema = 2

// Verdict is the answer to "can this instance require IMDSv2 now?".
type Verdict string

// The verdicts. Their values are stable: scripts compare against them.
const (
	// Ready: the whole instance (or the scope named) was watched for long enough,
	// completely, and nothing seen or found would break under HttpTokens=required.
	Ready Verdict = "READY"
	// NotReady: at least one reason (a process or a file) would break. It wins over
	// everything else.
	NotReady Verdict = "NOT READY"
	// Undecided: nothing was seen that breaks, but ready cannot prove it saw everything
	// (Report.Uncertain says what is missing), or could not look at all.
	Undecided Verdict = "UNDECIDED"
)

// Exit statuses of `imdsv2 ready`, one per verdict.
const (
	ExitReady     = 0
	ExitNotReady  = 1
	ExitUndecided = 2
)

// Report is the outcome of a readiness check. Its JSON field names are stable.
type Report struct {
	Schema  int     `json:"schema"`
	Verdict Verdict `json:"verdict"`
	// Scope says what the verdict is about: the instance, or a cgroup subtree only.
	Scope ScopeInfo `json:"scope"`
	// UndecidedReason says why no verdict could be reached (Verdict Undecided): the first
	// of Uncertain.
	UndecidedReason string `json:"undecided_reason,omitempty"`
	// Instance is this instance's identity as IMDS tells it; nil when IMDS did not answer.
	Instance *Identity `json:"instance,omitempty"`
	// Coverage is what the audit watched; nil without an audit.
	Coverage *CoverageInfo `json:"coverage,omitempty"`
	Audit    AuditInfo     `json:"audit"`
	// Reasons are what breaks once IMDSv2 is required: each names the process or file
	// and the fix. Any reason makes the verdict NOT READY.
	Reasons []Reason `json:"reasons"`
	// Uncertain lists every condition that keeps the verdict from READY when no reason
	// makes it NOT READY: gaps in coverage, losses, unclassified requests, IMDS not
	// reachable. Listed whatever the verdict.
	Uncertain []Reason `json:"uncertain"`
	// Warnings deserve a look but do not block: settings, gaps in the audit, the
	// hop limit against container networks nobody used yet.
	Warnings []Reason       `json:"warnings"`
	HopLimit HopLimitAdvice `json:"hop_limit"`
	// Host is the container networking found in the host's network namespace.
	Host *Host     `json:"host_networks,omitempty"`
	Scan *ScanInfo `json:"scan,omitempty"`
	// NextSteps are the commands to run, this instance's id filled in.
	NextSteps []Step `json:"next_steps"`
	// WatchAfter says what to watch once IMDSv2 is required.
	WatchAfter []string `json:"watch_after"`
}

// ExitCode returns the exit status `imdsv2 ready` ends with for this report.
func (r *Report) ExitCode() int {
	switch r.Verdict {
	case Ready:
		return ExitReady
	case NotReady:
		return ExitNotReady
	}
	return ExitUndecided
}

// Summarised reports whether the report rests on an audit (and so has hop-limit advice).
func (r *Report) Summarised() bool { return r.Coverage != nil }

// Identity is what IMDS says about the instance: read by ready itself (live), or by the
// agent that wrote the state file (audit.Instance).
type Identity = audit.Instance

// AuditInfo says what the verdict's audit covered.
type AuditInfo struct {
	// Source is "live" (ready ran the auditor itself), "state" (read from a running
	// agent's state file) or "none".
	Source string `json:"source"`
	// Since is when counting began.
	Since time.Time `json:"since,omitzero"`
	// DurationSeconds is how long requests were watched.
	DurationSeconds float64 `json:"duration_seconds"`
	// Requests counts requests by class ("imdsv1", "imdsv2", "token-put", ...).
	Requests map[string]uint64 `json:"requests"`
	Callers  int               `json:"callers"`
	// Complete is false when requests may have been missed (lost events, partial capture,
	// capture gaps, unpaired answers); Coverage has the figures.
	Complete   bool   `json:"complete"`
	LostEvents uint64 `json:"lost_events"`
	Error      string `json:"error,omitempty"`
}

// ScanInfo summarises the installed-software scan; its findings become reasons and
// warnings.
type ScanInfo struct {
	Roots        []string `json:"roots"`
	FilesScanned int      `json:"files_scanned"`
	Unreadable   int      `json:"unreadable"`
	Findings     int      `json:"findings"`
	Truncated    bool     `json:"truncated"`
	TruncatedBy  string   `json:"truncated_by,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// HopLimitAdvice compares the hop limit seen on token answers with what the callers and
// networks on this host need.
type HopLimitAdvice struct {
	// Observed is the TTL token answers arrived with on the host, which is the instance's
	// HttpPutResponseHopLimit; 0 when no token answer reached the host.
	Observed int `json:"observed"`
	// Recommended is the value the next steps set.
	Recommended int    `json:"recommended"`
	Why         string `json:"why"`
}

// Reason is one thing that breaks (or deserves a look) once IMDSv2 is required.
type Reason struct {
	// Code classifies the reason; its values are stable: "imdsv1-caller",
	// "token-unanswered", "token-refused", "old-sdk", "tokenless-api", "imdsv1-fallback-setting",
	// "imds-disabled-setting", "hop-limit-containers", "ipv6-endpoint",
	// "audit-incomplete", "no-imds-traffic", "scan-incomplete".
	Code string `json:"code"`
	// Subject names the process or file, for people.
	Subject string `json:"subject"`
	// The process, when the reason is one.
	PID     uint32 `json:"pid,omitempty"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Where says where the process runs: "host", "container <id>" or
	// "network namespace <address>".
	Where string `json:"where,omitempty"`
	// File is the file, when the reason is one.
	File  string `json:"file,omitempty"`
	Count uint64 `json:"count,omitempty"`
	// Detail says what was seen; Fix what to do.
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

// Step is one next step: what it does, and the command.
type Step struct {
	Title   string `json:"title"`
	Command string `json:"command,omitempty"`
}
