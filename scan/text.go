package scan

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteText writes the report for a person to read: a summary line, then one
// block per finding. Path names are written as Go-quoted strings whenever they
// contain anything but printable, non-space characters, so a hostile file name
// cannot inject lines or terminal escape sequences.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "IMDSv2 software scan: %d blocker(s), %d warning(s), %d info; %d files scanned, %d read, %d skipped, %d unreadable in %s\n",
		r.Count(SeverityBlocker), r.Count(SeverityWarning), r.Count(SeverityInfo),
		r.FilesScanned, r.FilesRead, r.FilesSkipped, r.Unreadable, r.Duration.Round(time.Millisecond))
	if r.Truncated {
		fmt.Fprintf(bw, "INCOMPLETE: the scan stopped early (%s); software not reached is not listed\n", r.TruncatedBy)
	}
	var current []Finding
	for _, f := range r.Findings {
		if f.Kind == KindCurrentSDK {
			current = append(current, f)
			continue
		}
		bw.WriteString("\n")
		label := strings.ToUpper(string(f.Severity))
		switch {
		case f.Kind == KindTokenlessAPI:
			fmt.Fprintf(bw, "%-8s %s %s (no release of this API uses IMDSv2)\n", label, f.Product, f.Version)
		case f.Version != "":
			fmt.Fprintf(bw, "%-8s %s %s (IMDSv2 since %s)\n", label, f.Product, f.Version, f.MinVersion)
		case f.Setting != "":
			fmt.Fprintf(bw, "%-8s %s: %s\n", label, f.Product, f.Setting)
		default:
			fmt.Fprintf(bw, "%-8s %s\n", label, f.Product)
		}
		fmt.Fprintf(bw, "         at:  %s (%s)\n", location(f), f.Evidence)
		fmt.Fprintf(bw, "         why: %s\n", f.Why)
		fmt.Fprintf(bw, "         fix: %s\n", f.Fix)
	}
	writeCurrent(bw, current)
	if len(r.SkippedDirs) > 0 {
		fmt.Fprintf(bw, "\nnot entered (%d):\n", r.SkippedDirCount)
		for _, d := range r.SkippedDirs {
			fmt.Fprintf(bw, "  %s: %s\n", quotePath(d.Path), d.Reason)
		}
	}
	return bw.Flush()
}

// writeCurrent lists the releases that can use IMDSv2 one line each, after
// the findings that need action, and says what they have in common once per
// group of the same why and fix, not once per copy.
func writeCurrent(bw *bufio.Writer, fs []Finding) {
	type group struct {
		why, fix string
		members  []Finding
	}
	var groups []*group
	byText := map[[2]string]*group{}
	for _, f := range fs {
		g := byText[[2]string{f.Why, f.Fix}]
		if g == nil {
			g = &group{why: f.Why, fix: f.Fix}
			byText[[2]string{f.Why, f.Fix}] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, f)
	}
	for _, g := range groups {
		fmt.Fprintf(bw, "\n%-8s can use IMDSv2 (%d):\n", strings.ToUpper(string(SeverityInfo)), len(g.members))
		for _, f := range g.members {
			fmt.Fprintf(bw, "         %s %s (%s) at %s (%s)\n", f.Product, f.Version, canUse(f.MinVersion), location(f), f.Evidence)
		}
		fmt.Fprintf(bw, "         why: %s\n", g.why)
		fmt.Fprintf(bw, "         fix: %s\n", g.fix)
	}
}

// location is a finding's path, escaped, with its line when it has one.
func location(f Finding) string {
	loc := quotePath(f.Path)
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	return loc
}

// quotePath returns p as is when it is plain printable text without spaces,
// and Go-quoted otherwise.
func quotePath(p string) string {
	if p != "" && utf8.ValidString(p) && !strings.ContainsFunc(p, func(r rune) bool {
		return r == ' ' || r == '"' || r == '\\' || !strconv.IsPrint(r)
	}) {
		return p
	}
	return strconv.Quote(p)
}

// sanitize makes a string read from a scanned file safe to show and store:
// invalid UTF-8 and non-printable runes become '?', and it is cut to max
// bytes (on a rune boundary) with "..." appended.
func sanitize(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				b.WriteByte('?')
				continue
			}
		}
		if !strconv.IsPrint(r) {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
