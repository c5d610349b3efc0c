package audit

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MetricsContentType is the Content-Type of the Prometheus text format.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// otherLabel collects the IMDSv1 callers beyond the series bound.
const otherLabel = "_other"

// WriteMetrics writes s in the Prometheus text exposition format. IMDSv1
// callers get at most maxCallers series, labelled by executable and
// container; the series go to the callers seen first (so each series stays a
// monotonic counter), the others are summed under exe="_other".
func WriteMetrics(w io.Writer, s Summary, maxCallers int) error {
	bw := bufio.NewWriter(w)
	metric := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}

	metric("imdsv2_audit_requests_total", "counter", "IMDS requests seen, by class.")
	for _, c := range sortedClasses(s.Requests) {
		fmt.Fprintf(bw, "imdsv2_audit_requests_total{class=%s} %d\n", quoteLabel(string(c)), s.Requests[c])
	}
	metric("imdsv2_audit_lost_events_total", "counter", "Kernel records lost before they reached the auditor.")
	fmt.Fprintf(bw, "imdsv2_audit_lost_events_total %d\n", s.LostEvents)
	metric("imdsv2_audit_reassembly_evictions_total", "counter", "Sockets dropped from reassembly to stay within memory bounds.")
	fmt.Fprintf(bw, "imdsv2_audit_reassembly_evictions_total %d\n", s.Reassembly.Evictions)

	var unanswered uint64
	hops := map[uint8]uint64{}
	type v1key struct{ exe, container string }
	v1 := map[v1key]uint64{}
	firstSeen := map[v1key]time.Time{}
	for _, c := range s.Callers {
		unanswered += c.Unanswered
		if c.Class != ClassIMDSv1 {
			continue
		}
		exe := c.Process.Exe
		if exe == "" {
			exe = "[" + c.Process.Comm + "]"
		}
		// Keyed by the label text: two names that escape or cut to the same text are one series,
		// never two series with the same labels.
		k := v1key{labelValue(exe), labelValue(c.Process.ID)}
		v1[k] += c.Count
		if t, ok := firstSeen[k]; !ok || c.FirstSeen.Before(t) {
			firstSeen[k] = c.FirstSeen
		}
	}
	for _, h := range s.ReadyHints.ObservedHopLimits {
		hops[h.HopLimit] += h.TokenAnswers
	}
	metric("imdsv2_audit_unanswered_token_puts_total", "counter", "Token PUTs that got no answer (hop limit too low for the caller).")
	fmt.Fprintf(bw, "imdsv2_audit_unanswered_token_puts_total %d\n", unanswered)

	metric("imdsv2_audit_imdsv1_callers", "gauge", "Distinct callers (executable, command line, container) seen using IMDSv1.")
	fmt.Fprintf(bw, "imdsv2_audit_imdsv1_callers %d\n", len(s.ReadyHints.IMDSv1Callers))

	keys := make([]v1key, 0, len(v1))
	for k := range v1 {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b v1key) int {
		if c := firstSeen[a].Compare(firstSeen[b]); c != 0 {
			return c
		}
		if c := strings.Compare(a.exe, b.exe); c != 0 {
			return c
		}
		return strings.Compare(a.container, b.container)
	})
	metric("imdsv2_audit_imdsv1_requests_total", "counter", "IMDSv1 requests by caller executable and container (bounded series; the rest under exe=\"_other\").")
	var other uint64
	for i, k := range keys {
		if i >= maxCallers {
			other += v1[k]
			continue
		}
		fmt.Fprintf(bw, "imdsv2_audit_imdsv1_requests_total{exe=\"%s\",container_id=\"%s\"} %d\n", k.exe, k.container, v1[k])
	}
	if other > 0 {
		fmt.Fprintf(bw, "imdsv2_audit_imdsv1_requests_total{exe=%s,container_id=\"\"} %d\n", quoteLabel(otherLabel), other)
	}

	metric("imdsv2_audit_token_answers_by_hop_limit_total", "counter", "Token answers by the IP TTL they arrived with.")
	hl := make([]uint8, 0, len(hops))
	for h := range hops {
		hl = append(hl, h)
	}
	slices.Sort(hl)
	for _, h := range hl {
		fmt.Fprintf(bw, "imdsv2_audit_token_answers_by_hop_limit_total{hop_limit=\"%d\"} %d\n", h, hops[h])
	}
	return bw.Flush()
}

func sortedClasses(m map[Class]uint64) []Class {
	cs := make([]Class, 0, len(m))
	for c := range m {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b Class) int { return strings.Compare(string(a), string(b)) })
	return cs
}

// quoteLabel quotes a label value (labelValue) in double quotes.
func quoteLabel(v string) string { return `"` + labelValue(v) + `"` }

// labelEscaper applies the text format's own escapes: backslash, double quote, newline.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// labelValue makes v a label value of the text format, without the quotes: cut to a bound,
// control characters and invisible runes turned into visible escapes (EscapeText, so that a
// process or cgroup name like "machine-\x1b[2J.scope" reaches neither a scraper nor the terminal
// of whoever reads the metrics raw), then the format's own escapes. A scraper thus reads the
// value as the table shows it, "\x1b" as four characters.
func labelValue(v string) string {
	return labelEscaper.Replace(EscapeText(clean(v, maxPathBytes)))
}

// MetricsHandler serves the auditor's metrics in the Prometheus text format.
func (a *Auditor) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", MetricsContentType)
		if r.Method == http.MethodHead {
			return
		}
		_ = WriteMetrics(w, a.Snapshot(), a.opts.MaxMetricCallers)
	})
}
