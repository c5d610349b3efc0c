package ready

import (
	"fmt"
	"strings"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
	"github.com/imdsv2/imdsv2/scan"
)

// hostTTL returns the highest TTL token answers reached the host's network namespace with
// (the instance's hop limit), and whether anything in another network namespace talked to
// IMDS: one the kernel saw there (its namespace cookie), or, where the kernel could not tell,
// a caller with another address or in a container by its cgroup. A container the kernel saw
// in the host's network namespace (host networking) is as far from IMDS as the host.
func hostTTL(in Input) (observed int, containerTalkers bool) {
	for _, h := range in.Summary.ReadyHints.ObservedHopLimits {
		if h.OtherNetwork || (h.InContainer && !h.HostNetwork) {
			containerTalkers = true
		}
		if !h.OtherNetwork {
			observed = max(observed, int(h.HopLimit))
		}
	}
	return observed, containerTalkers
}

func hopAdvice(in Input, victims int) HopLimitAdvice {
	observed, talkers := hostTTL(in)
	a := HopLimitAdvice{Observed: observed}
	networks := in.Host.ContainerNetworks()
	switch {
	case victims > 0:
		a.Recommended = max(2, observed+1)
		a.Why = "token answers did not reach callers behind a bridge: each bridge or pod network is one more hop"
	case talkers || networks:
		a.Recommended = max(2, observed)
		a.Why = "this host runs containers on their own networks (one hop more than the host); " +
			"2 lets them get tokens, as AWS recommends for container hosts"
	case observed > 0:
		a.Recommended = observed
		a.Why = fmt.Sprintf("no container networks here: keeping %d keeps IMDS tokens out of reach of anything "+
			"further away", observed)
	default:
		a.Recommended = 2
		a.Why = "no token answer was seen, so the current value is unknown; 2 is AWS's default for AMIs " +
			"with imds-support v2.0 and works for containers on a bridge"
	}
	return a
}

func hopWarnings(r *Report, in Input, victims int) {
	if victims > 0 || r.HopLimit.Observed != 1 || !in.Host.ContainerNetworks() {
		return
	}
	var names []string
	for _, b := range in.Host.Bridges {
		if b.Ports > 0 {
			names = append(names, fmt.Sprintf("%s (%d ports)", b.Name, b.Ports))
		}
	}
	names = append(names, in.Host.CNIConfigs...)
	r.Warnings = append(r.Warnings, Reason{Code: "hop-limit-containers", Subject: strings.Join(names, ", "),
		Detail: "the hop limit is 1 and this host has container networks; no container asked IMDS for a token " +
			"during the audit, but one that does will get no answer",
		Fix: fmt.Sprintf("set HttpPutResponseHopLimit to %d with the next steps", r.HopLimit.Recommended)})
}

func scanReasons(r *Report, in Input) {
	if in.ScanErr != nil && in.Scan == nil {
		r.Warnings = append(r.Warnings, Reason{Code: "scan-incomplete", Subject: "installed software scan",
			Detail: "the scan failed: " + in.ScanErr.Error(), Fix: "run it again with --scan-path set to readable directories"})
		return
	}
	rep := in.Scan
	if rep == nil {
		return
	}
	r.Scan = &ScanInfo{Roots: rep.Roots, FilesScanned: rep.FilesScanned, Unreadable: rep.Unreadable,
		Findings: len(rep.Findings), Truncated: rep.Truncated, TruncatedBy: rep.TruncatedBy}
	if r.Scan.Roots == nil {
		r.Scan.Roots = []string{}
	}
	if in.ScanErr != nil {
		r.Scan.Error = in.ScanErr.Error()
	}
	for _, f := range rep.Findings {
		rs := Reason{Subject: f.Path, File: f.Path, Detail: f.Summary(), Fix: f.Fix}
		switch f.Severity {
		case scan.SeverityBlocker:
			rs.Code = "old-sdk"
			if f.Kind == scan.KindTokenlessAPI {
				rs.Code = "tokenless-api"
				rs.Subject = fmt.Sprintf("%s:%d", f.Path, f.Line)
			}
			r.Reasons = append(r.Reasons, rs)
		case scan.SeverityWarning:
			rs.Code = "imdsv1-fallback-setting"
			if f.Kind == scan.KindIMDSDisabled {
				rs.Code = "imds-disabled-setting"
			}
			if f.Line > 0 {
				rs.Subject = fmt.Sprintf("%s:%d", f.Path, f.Line)
			}
			r.Warnings = append(r.Warnings, rs)
		}
	}
	if rep.Truncated || rep.Unreadable > 0 {
		r.Warnings = append(r.Warnings, Reason{Code: "scan-incomplete", Subject: strings.Join(rep.Roots, " "),
			Detail: fmt.Sprintf("the scan stopped early (%s) or could not read %d files: it may have missed old software",
				orDash(rep.TruncatedBy), rep.Unreadable),
			Fix: "narrow --scan-path to where applications live, or run as root"})
	}
}

func orDash(s string) string {
	if s == "" {
		return "no"
	}
	return s
}

func auditWarnings(r *Report, in Input) {
	s := in.Summary
	if v6 := s.ReadyHints.IPv6Callers; len(v6) > 0 {
		var names []string
		for _, h := range v6 {
			names = append(names, fmt.Sprintf("%s (pid %d)", processName(h.Process), h.Process.PID))
		}
		r.Warnings = append(r.Warnings, Reason{Code: "ipv6-endpoint", Subject: audit.EscapeText(strings.Join(names, ", ")),
			Detail: "these callers use the IPv6 endpoint [fd00:ec2::254]",
			Fix:    "keep HttpProtocolIpv6=enabled (the next steps do)"})
	}
	for _, h := range s.ReadyHints.SlowTokenAnswers {
		rs := processReason(codeSlowTokenAnswers, h.Process)
		rs.Count = h.Count
		rs.Detail = fmt.Sprintf("token answers came late (the longest after %d ms)", h.MaxAnswerDelayMillis)
		rs.Fix = h.Advice
		r.Warnings = append(r.Warnings, rs)
	}
	var total uint64
	for _, n := range s.Requests {
		total += n
	}
	if total == 0 {
		r.Warnings = append(r.Warnings, Reason{Code: "no-imds-traffic", Subject: "auditor",
			Detail: fmt.Sprintf("no process called IMDS during the audit (%s): jobs that run hourly, daily or at boot "+
				"were probably not seen", fmtSeconds(s.Coverage.WatchedSeconds)),
			Fix: "run the agent (imdsv2 audit) for a day or more, then imdsv2 ready --state FILE"})
	}
}

func fmtSeconds(s float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", s), ".0") + "s"
}

func nextSteps(r *Report, in Input) {
	if r.Verdict == NotReady {
		r.NextSteps = append(r.NextSteps, Step{Title: fmt.Sprintf("Fix the %d reason(s) above first, then check again",
			len(r.Reasons)), Command: "imdsv2 ready"})
	}
	if r.Verdict == Undecided && kernelUnsupported(in.AuditErr) {
		// Checking again changes nothing on this kernel: say what the decision rests on instead.
		var region, id string
		if in.Identity != nil {
			region, id = in.Identity.Region, in.Identity.InstanceID
		}
		day := imdsfacts.MetricQuery{Region: region, InstanceID: id, Metric: imdsfacts.MetricNoToken, PeriodSeconds: 3600,
			Start: "$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:%SZ)", End: "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
		r.NextSteps = append(r.NextSteps, Step{Title: "Ready cannot answer READY on this kernel, the decision is " +
			"yours: IMDSv1 calls of the last day, per hour (all 0, and a scan that names nothing, before you enforce)",
			Command: day.Command()})
	} else if r.Verdict == Undecided {
		r.NextSteps = append(r.NextSteps, Step{Title: fmt.Sprintf("Resolve the %d uncertain point(s) above, then "+
			"check again", len(r.Uncertain)), Command: "imdsv2 ready"})
	}
	if r.Scope.Kind == "cgroup" && r.Verdict == NotReady {
		return // enforcement is about the instance: never from a subtree's verdict
	}
	if r.Verdict == Ready && r.Scope.Kind == "cgroup" {
		r.NextSteps = append(r.NextSteps, Step{Title: "This verdict covers cgroup " + r.Scope.Cgroup + " only: audit the " +
			"whole host (the agent without --cgroup, for at least --min-watch) and ask again without --cgroup before " +
			"enforcing", Command: "imdsv2 ready --state /var/lib/imdsv2/audit.json"})
		return
	}
	if in.Identity == nil || in.Summary == nil || r.Verdict == Undecided {
		// Enforcement commands only where the verdict is about the instance: READY, or NOT
		// READY (what to run once the reasons are fixed).
		return
	}
	id := in.Identity.InstanceID
	hop := r.HopLimit.Recommended
	ipv6 := ""
	if len(in.Summary.ReadyHints.IPv6Callers) > 0 {
		ipv6 = "enabled"
	}
	enforce := imdsfacts.Enforce(imdsfacts.MetadataOptions{Region: in.Identity.Region, InstanceID: id, HopLimit: hop, IPv6: ipv6})
	r.NextSteps = append(r.NextSteps,
		Step{Title: fmt.Sprintf("Require IMDSv2 on %s with the AWS CLI (hop limit %d: %s)", id, hop, r.HopLimit.Why),
			Command: enforce.CLI},
		Step{Title: "Or with the Systems Manager runbook AWSSupport-ConfigureEC2Metadata (needs " +
			"ec2:ModifyInstanceMetadataOptions and ec2:DescribeInstances)",
			Command: enforce.Runbook},
		Step{Title: "If something breaks, allow IMDSv1 again while you fix it",
			Command: enforce.Rollback},
		Step{Title: "For new instances in this region, make IMDSv2 the account default",
			Command: enforce.AccountDefault},
	)
	rejected := imdsfacts.MetricQuery{Region: in.Identity.Region, InstanceID: id, Metric: imdsfacts.MetricNoTokenRejected,
		PeriodSeconds: 300, Start: "<when you enforced>", End: "<now>"}
	r.WatchAfter = []string{
		fmt.Sprintf("CloudWatch metric AWS/EC2 MetadataNoTokenRejected for InstanceId=%s: anything above 0 is a "+
			"caller still sending IMDSv1 and now refused (%s)", id, rejected.Command()),
		"imdsv2 audit on the instance: every IMDSv1 request it reports answered 401 names a process that broke",
		fmt.Sprintf("MetadataNoToken for InstanceId=%s should stay at 0", id),
	}
}
