package scan

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Severity says how much a finding matters for enforcing IMDSv2. Its values
// are stable: scripts compare against them.
type Severity string

const (
	// SeverityBlocker: the software cannot use IMDSv2 at all, so it breaks
	// (loses its instance-profile credentials) when HttpTokens=required.
	SeverityBlocker Severity = "blocker"
	// SeverityWarning: the software is configured to fall back to IMDSv1, or
	// not to use IMDS; review it before enforcing.
	SeverityWarning Severity = "warning"
	// SeverityInfo: good news, reported so the operator sees it was checked
	// (for example IMDSv1 fallback switched off).
	SeverityInfo Severity = "info"
)

// rank orders severities, worst first.
func (s Severity) rank() int {
	switch s {
	case SeverityBlocker:
		return 0
	case SeverityWarning:
		return 1
	}
	return 2
}

// Kind says what a finding is about. Its values are stable.
type Kind string

const (
	// KindOldSDK: an AWS SDK or CLI older than the first version with IMDSv2.
	KindOldSDK Kind = "old-sdk"
	// KindCurrentSDK: an AWS SDK, CLI or cloud-init release that can use
	// IMDSv2 (informational: where the software the auditor names is
	// installed, and how to keep it from falling back to IMDSv1).
	KindCurrentSDK Kind = "current-sdk"
	// KindTokenlessAPI: an application calls an SDK API that never sends a
	// token, whatever the SDK's release (aws-sdk v2 MetadataService.request).
	KindTokenlessAPI Kind = "tokenless-api"
	// KindV1FallbackAllowed: a setting explicitly lets SDKs fall back to IMDSv1
	// (AWS_EC2_METADATA_V1_DISABLED=false, ec2_metadata_v1_disabled = false),
	// or gives that setting a value SDKs do not read as true.
	KindV1FallbackAllowed Kind = "v1-fallback-allowed"
	// KindIMDSDisabled: AWS_EC2_METADATA_DISABLED=true turns IMDS off for SDKs.
	KindIMDSDisabled Kind = "imds-disabled"
	// KindV1FallbackDisabled: a setting forbids the IMDSv1 fallback (informational).
	KindV1FallbackDisabled Kind = "v1-fallback-disabled"
)

// Finding is one piece of installed software or configuration that matters
// for IMDSv2. Strings read from scanned files (Version, Evidence, Setting) are
// sanitized: control characters and invalid UTF-8 are replaced and their
// length is bounded. Path is exact, so JSON consumers can act on it (except
// that encoding/json replaces invalid UTF-8 with U+FFFD); text output
// escapes it.
type Finding struct {
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// Path is the file or directory the finding comes from, as an absolute
	// path inside the scanned root (Options.Root or Options.FS).
	Path string `json:"path"`
	// Product is a human name such as "botocore" or "AWS SDK for Go v1".
	Product string `json:"product"`
	// Package identifies the package as a Package URL without version, such as
	// "pkg:pypi/botocore" or "pkg:golang/github.com/aws/aws-sdk-go"; empty for
	// configuration findings.
	Package string `json:"package,omitempty"`
	// SDK is the product's identifier in internal/imdsfacts, the one the
	// auditor reports as a caller's product ("botocore", "aws-sdk-js-v3");
	// empty for configuration findings.
	SDK string `json:"sdk,omitempty"`
	// Version is the version found; MinVersion the first version that can
	// use IMDSv2, or "any" when every release can. Both empty for
	// configuration findings; MinVersion empty for KindTokenlessAPI, whose API
	// no release fixes.
	Version    string `json:"version,omitempty"`
	MinVersion string `json:"min_version,omitempty"`
	// Evidence says where the version or setting was read, such as
	// "METADATA Version", "file name", "META-INF/maven/.../pom.properties" or
	// "systemd unit Environment=".
	Evidence string `json:"evidence"`
	// Setting is the setting of a configuration finding as the SDKs read it
	// (KEY=value, never any other text of the line); Line is its 1-based line
	// number, or that of the call of a KindTokenlessAPI finding.
	Setting string `json:"setting,omitempty"`
	Line    int    `json:"line,omitempty"`
	// Why explains the consequence for IMDSv2; Fix says what to do.
	Why string `json:"why"`
	Fix string `json:"fix"`
}

// Summary says in one line what was found and why it matters, each fact once,
// for reports that show a finding as one line (ready's reasons):
//
//	botocore 1.12.0 is older than 1.13.25, the first version that can use IMDSv2 (METADATA Version): Its ...
//	botocore 1.29.27 can use IMDSv2 (since 1.13.25; PKG-INFO Version): It asks ...
//	AWS_EC2_METADATA_V1_DISABLED=false: This explicitly allows ...
//
// Fix and Path are not in it.
func (f *Finding) Summary() string {
	switch {
	case f.Kind == KindCurrentSDK:
		return fmt.Sprintf("%s %s can use IMDSv2 (%s; %s): %s", f.Product, f.Version, canUse(f.MinVersion), f.Evidence, f.Why)
	case f.Kind == KindTokenlessAPI:
		return fmt.Sprintf("%s %s, %s: %s", f.Product, f.Version, f.Evidence, f.Why)
	case f.Version != "":
		return fmt.Sprintf("%s %s is older than %s, the first version that can use IMDSv2 (%s): %s",
			f.Product, f.Version, f.MinVersion, f.Evidence, f.Why)
	case f.Setting != "":
		return f.Setting + ": " + f.Why
	}
	return f.Product + ": " + f.Why
}

// Values of Report.TruncatedBy. They are stable.
const (
	TruncatedByMaxFiles = "max_files"
	TruncatedByMaxBytes = "max_bytes"
	TruncatedByTimeout  = "timeout"
	TruncatedByCanceled = "canceled"
)

// SkippedDir is a directory the scan did not enter on purpose.
type SkippedDir struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// maxSkippedDirs bounds Report.SkippedDirs; SkippedDirCount has the total.
const maxSkippedDirs = 100

// Report is the result of Run. Findings are sorted by severity (blockers
// first), then path.
type Report struct {
	// Roots are the directories (after glob expansion) that were walked.
	Roots    []string  `json:"roots"`
	Findings []Finding `json:"findings"`
	// FilesScanned counts regular files the walk looked at (by name, and by
	// content when their name made them relevant); MaxFiles bounds it.
	FilesScanned int `json:"files_scanned"`
	// FilesRead counts files whose content was read; BytesRead their bytes
	// (MaxBytes bounds it).
	FilesRead int   `json:"files_read"`
	BytesRead int64 `json:"bytes_read"`
	// FilesSkipped counts relevant-looking files that were not examined
	// because of a per-file size limit or because they were not regular files.
	FilesSkipped int `json:"files_skipped"`
	// Unreadable counts files and directories that could not be opened, read
	// or listed, and archives that were malformed.
	Unreadable  int `json:"unreadable"`
	DirsScanned int `json:"dirs_scanned"`
	// SkippedDirs lists directories not entered on purpose: pseudo, network
	// and FUSE file systems, /proc, /sys, /dev (at most 100 entries;
	// SkippedDirCount has the total).
	SkippedDirs     []SkippedDir `json:"skipped_dirs,omitempty"`
	SkippedDirCount int          `json:"skipped_dir_count"`
	// Truncated is true when the walk stopped early; the findings are then
	// incomplete. TruncatedBy says why (one of the TruncatedBy constants).
	Truncated   bool   `json:"truncated"`
	TruncatedBy string `json:"truncated_by,omitempty"`
	// Duration is how long the scan took, in nanoseconds in JSON.
	Duration time.Duration `json:"duration_ns"`
}

// Count returns the number of findings with severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Blockers reports whether any finding is a blocker, meaning that software on
// this host would break if the instance required IMDSv2 now.
func (r *Report) Blockers() bool { return r.Count(SeverityBlocker) > 0 }

// sortFindings orders findings for stable output.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Severity.rank(), b.Severity.rank()),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Package, b.Package),
			cmp.Compare(a.Version, b.Version),
		)
	})
}
