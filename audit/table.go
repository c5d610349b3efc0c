package audit

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Column widths of the text table; longer values are cut with "…".
const (
	tableExeWidth     = 40
	tableCmdWidth     = 60
	tableSDKWidth     = 32
	tableAnswersWidth = 24
)

// WriteTable writes s as a text table for people: one line per caller, then
// the ready hints. Every string from a process or a request is escaped
// (EscapeText), so hostile names cannot move the cursor or hide text.
func WriteTable(w io.Writer, s Summary) error {
	ew := &errWriter{w: w}
	total := uint64(0)
	for _, n := range s.Requests {
		total += n
	}
	fmt.Fprintf(ew, "IMDS audit since %s, updated %s: %d requests", s.Since.Format(time.RFC3339), s.Updated.Format(time.RFC3339), total)
	for _, c := range []Class{ClassIMDSv1, ClassIMDSv2, ClassTokenPUT, ClassTokenPUTProxied, ClassProbe, ClassIncomplete, ClassOther} {
		if n := s.Requests[c]; n > 0 {
			fmt.Fprintf(ew, ", %s %d", c, n)
		}
	}
	fmt.Fprintf(ew, "\nlost events %d, reassembly evictions %d, unpaired answers %d\n",
		s.LostEvents, s.Reassembly.Evictions, s.UnpairedAnswers)
	fmt.Fprintf(ew, "%s\n\n", EscapeText(s.Coverage.Describe()))

	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tCOUNT\tLAST SEEN\tEXE\tCONTAINER\tUSER\tSDK\tANSWERS\tCOMMAND")
	for _, c := range s.Callers {
		exe := c.Process.Exe
		if exe == "" {
			exe = "[" + c.Process.Comm + "]"
		}
		container := "-"
		switch {
		case c.Process.ID != "":
			container = shortID(c.Process.ID)
		case c.Process.PodUID != "":
			container = "pod " + c.Process.PodUID
		}
		class := string(c.Class)
		if c.Cloud != "" {
			class += " (" + c.Cloud + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(class, tableSDKWidth), c.Count, c.LastSeen.Format(time.RFC3339),
			cell(exe, tableExeWidth), cell(container, 16), cell(orDash(c.Process.User), 16),
			cell(sdkLabel(c), tableSDKWidth), cell(c.Answers.Format(":", " "), tableAnswersWidth),
			cell(orDash(c.Process.Cmdline), tableCmdWidth))
	}
	tw.Flush()

	h := s.ReadyHints
	fmt.Fprintf(ew, "\nReady hints (complete: %v)\n", h.Complete)
	writeHints(ew, "IMDSv1 callers", h.IMDSv1Callers)
	writeHints(ew, "Unanswered token PUTs", h.UnansweredTokenPUTs)
	writeHints(ew, "Refused token PUTs", h.FailedTokenPUTs)
	fmt.Fprintf(ew, "Observed hop limits of token answers:")
	if len(h.ObservedHopLimits) == 0 {
		fmt.Fprintf(ew, " none")
	}
	for _, hl := range h.ObservedHopLimits {
		where := "host"
		if hl.InContainer {
			where = "container"
		}
		fmt.Fprintf(ew, " %d (%s, %d answers)", hl.HopLimit, where, hl.TokenAnswers)
	}
	fmt.Fprintln(ew)
	if h.IncompleteRequests > 0 || h.LostEvents > 0 {
		fmt.Fprintf(ew, "Not seen in full: %d incomplete requests, %d lost events\n", h.IncompleteRequests, h.LostEvents)
	}
	return ew.err
}

func writeHints(w io.Writer, title string, hints []Hint) {
	fmt.Fprintf(w, "%s: %d\n", title, len(hints))
	for _, h := range hints {
		who := h.Process.Exe
		if who == "" {
			who = "[" + h.Process.Comm + "]"
		}
		if h.Process.ID != "" {
			who += " in container " + shortID(h.Process.ID)
		}
		fmt.Fprintf(w, "  - %s (%d requests, user %s): %s\n", EscapeText(who), h.Count, EscapeText(orDash(h.Process.User)),
			EscapeText(h.Advice))
		if h.Process.Cmdline != "" {
			fmt.Fprintf(w, "    command: %s\n", cell(h.Process.Cmdline, 200))
		}
	}
}

func sdkLabel(c Caller) string {
	if c.SDK == nil {
		return "-"
	}
	s := c.SDK.Name
	if c.SDK.Version != "" {
		s += " " + c.SDK.Version
	}
	if c.SDK.BelowMin {
		s += " (< " + c.SDK.MinIMDSv2 + ")"
	}
	return s
}

// cell escapes s and cuts it to width runes. Tabs are escaped by EscapeText,
// so a value cannot break the table's columns.
func cell(s string, width int) string {
	s = EscapeText(s)
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter keeps the first write error so the table code can write freely.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
