package ready

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit"
)

// WriteJSON writes the report as indented JSON (field names as in Report). Characters that
// encoding/json leaves raw but a terminal acts on (C1 controls, bidirectional controls) are
// escaped (audit.EscapeJSON); the data is the same.
func WriteJSON(w io.Writer, r *Report) error {
	return audit.WriteIndentedJSON(w, r)
}

// WriteText writes the report for people: the verdict (and what it is about) first, the
// coverage block, then every reason with its fix, the uncertain points, the warnings, and
// the next steps. Strings from processes and files are escaped, so hostile names cannot
// move the cursor or hide text.
func WriteText(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	// Every line is escaped at this one edge: names, paths, errors and identifiers from
	// processes, files and IMDS cannot move the cursor or hide text.
	p := func(format string, a ...any) { fmt.Fprintln(b, audit.EscapeText(fmt.Sprintf(format, a...))) }
	p("%s", verdictLine(r))
	writeFacts(p, r)
	writeReasons(p, "Reasons (each breaks under HttpTokens=required)", r.Reasons)
	writeReasons(p, "Uncertain (each keeps the verdict from READY)", r.Uncertain)
	writeReasons(p, "Warnings", r.Warnings)
	writeNextSteps(p, r)
	return b.Flush()
}

// verdictLine is the report's first line: the verdict, what it is about and why in short.
func verdictLine(r *Report) string {
	about := "this instance"
	if r.Scope.Kind == "cgroup" {
		about = "cgroup " + r.Scope.Cgroup + " only (not the whole instance)"
	}
	switch {
	case r.Verdict == Ready && r.Scope.Kind == "cgroup":
		return fmt.Sprintf("READY for %s: nothing seen or found in it would break under HttpTokens=required.", about)
	case r.Verdict == Ready:
		return "READY: nothing seen or found on this instance would break if it required IMDSv2."
	case r.Verdict == NotReady && r.Scope.Kind == "cgroup":
		return fmt.Sprintf("NOT READY (%s): %d reason(s) below would break under HttpTokens=required.", about, len(r.Reasons))
	case r.Verdict == NotReady:
		return fmt.Sprintf("NOT READY: %d reason(s) below would break if this instance required IMDSv2 now.", len(r.Reasons))
	}
	return fmt.Sprintf("UNDECIDED about %s: %s", about, r.UndecidedReason)
}

// writeFacts writes the block under the verdict: the instance, coverage, audit, hop limit and
// scan, each on labelled lines.
func writeFacts(p func(string, ...any), r *Report) {
	if i := r.Instance; i != nil {
		p("Instance:  %s (%s)", i.InstanceID, strings.Join(nonEmpty(i.Region, i.AvailabilityZone, i.InstanceType), ", "))
	}
	for i, l := range coverageLines(r.Coverage) {
		label := "Coverage: "
		if i > 0 {
			label = "          "
		}
		p("%s %s", label, l)
	}
	a := r.Audit
	if a.Error != "" && a.Source != "none" && a.Since.IsZero() && a.Callers == 0 {
		p("Audit:     %s not read: %s", a.Source, a.Error) // nothing was watched: no figures to show
	} else if a.Source != "none" {
		p("Audit:     %s, %s watched, %d caller(s); requests: %s%s", a.Source,
			time.Duration(a.DurationSeconds*float64(time.Second)).Round(100*time.Millisecond),
			a.Callers, counts(a.Requests), map[bool]string{true: "", false: " (INCOMPLETE)"}[a.Complete])
	} else if a.Error != "" {
		p("Audit:     not run: %s", a.Error)
	}
	if r.Summarised() {
		p("Hop limit: seen %s, recommended %d: %s", observed(r.HopLimit.Observed), r.HopLimit.Recommended, r.HopLimit.Why)
	}
	if s := r.Scan; s != nil {
		p("Scan:      %d file(s) in %s, %d finding(s)", s.FilesScanned, strings.Join(s.Roots, " "), s.Findings)
	}
}

// writeNextSteps writes the numbered next steps, with their commands, and what to watch after.
func writeNextSteps(p func(string, ...any), r *Report) {
	if len(r.NextSteps) > 0 {
		p("")
		p("Next steps:")
		for i, s := range r.NextSteps {
			p("  %d. %s", i+1, s.Title)
			if s.Command != "" {
				p("     $ %s", s.Command)
			}
		}
	}
	if len(r.WatchAfter) > 0 {
		p("")
		p("Watch afterwards:")
		for _, s := range r.WatchAfter {
			p("  - %s", s)
		}
	}
}

func writeReasons(p func(string, ...any), title string, rs []Reason) {
	if len(rs) == 0 {
		return
	}
	p("")
	p("%s:", title)
	for i, r := range rs {
		p("  %d. %s  [%s]", i+1, r.Subject, r.Code)
		if r.Where != "" {
			p("     where:   %s", r.Where)
		}
		if r.Cmdline != "" {
			p("     command: %s", r.Cmdline)
		}
		p("     seen:    %s", r.Detail)
		p("     fix:     %s", r.Fix)
	}
}

func observed(n int) string {
	if n == 0 {
		return "unknown (no token answer reached the host)"
	}
	return fmt.Sprint(n)
}

func counts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}
