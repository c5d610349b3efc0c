package audit

import (
	"bufio"
	"fmt"
	"io"
	"maps"
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
	for _, c := range slices.Sorted(maps.Keys(s.Requests)) {
		fmt.Fprintf(bw, "imdsv2_audit_requests_total{class=%s} %d\n", quoteLabel(string(c)), s.Requests[c])
	}
	metric("imdsv2_audit_lost_events_total", "counter", "Kernel records lost before they reached the auditor.")
	fmt.Fprintf(bw, "imdsv2_audit_lost_events_total %d\n", s.LostEvents)
	metric("imdsv2_audit_reassembly_evictions_total", "counter", "Sockets dropped from reassembly to stay within memory bounds.")
	fmt.Fprintf(bw, "imdsv2_audit_reassembly_evictions_total %d\n", s.Reassembly.Evictions)

	var unanswered uint64
	for _, c := range s.Callers {
		unanswered += c.Unanswered
	}
	metric("imdsv2_audit_unanswered_token_puts_total", "counter", "Token PUTs that got no answer (hop limit too low for the caller).")
	fmt.Fprintf(bw, "imdsv2_audit_unanswered_token_puts_total %d\n", unanswered)

	metric("imdsv2_audit_imdsv1_callers", "gauge", "Distinct callers (executable, command line, container) seen using IMDSv1.")
	fmt.Fprintf(bw, "imdsv2_audit_imdsv1_callers %d\n", len(s.ReadyHints.IMDSv1Callers))

	metric("imdsv2_audit_imdsv1_requests_total", "counter", "IMDSv1 requests by caller executable and container (bounded series; the rest under exe=\"_other\").")
	series := v1Series(s.Callers)
	var other uint64
	for i, v := range series {
		if i >= maxCallers {
			other += v.count
			continue
		}
		fmt.Fprintf(bw, "imdsv2_audit_imdsv1_requests_total{exe=\"%s\",container_id=\"%s\"} %d\n", v.exe, v.container, v.count)
	}
	if other > 0 {
		fmt.Fprintf(bw, "imdsv2_audit_imdsv1_requests_total{exe=%s,container_id=\"\"} %d\n", quoteLabel(otherLabel), other)
	}

	metric("imdsv2_audit_token_answers_by_hop_limit_total", "counter", "Token answers by the IP TTL they arrived with.")
	hops := map[uint8]uint64{}
	for _, h := range s.ReadyHints.ObservedHopLimits {
		hops[h.HopLimit] += h.TokenAnswers
	}
	for _, h := range slices.Sorted(maps.Keys(hops)) {
		fmt.Fprintf(bw, "imdsv2_audit_token_answers_by_hop_limit_total{hop_limit=\"%d\"} %d\n", h, hops[h])
	}
	return bw.Flush()
}

// v1SeriesKey is one IMDSv1 series' labels, as label text (labelValue): two names that escape
// or cut to the same text are one series, never two series with the same labels.
type v1SeriesKey struct{ exe, container string }

// v1Count is one IMDSv1 series: its labels, its count and its first caller's first request.
type v1Count struct {
	v1SeriesKey
	count     uint64
	firstSeen time.Time
}

// v1Series sums the IMDSv1 callers by series, in the order their series were first seen (then
// by labels).
func v1Series(callers []Caller) []v1Count {
	byKey := map[v1SeriesKey]*v1Count{}
	for _, c := range callers {
		if c.Class != ClassIMDSv1 {
			continue
		}
		exe := c.Process.Exe
		if exe == "" {
			exe = "[" + c.Process.Comm + "]"
		}
		k := v1SeriesKey{labelValue(exe), labelValue(c.Process.ID)}
		v := byKey[k]
		if v == nil {
			v = &v1Count{v1SeriesKey: k, firstSeen: c.FirstSeen}
			byKey[k] = v
		}
		v.count += c.Count
		if c.FirstSeen.Before(v.firstSeen) {
			v.firstSeen = c.FirstSeen
		}
	}
	series := make([]v1Count, 0, len(byKey))
	for _, v := range byKey {
		series = append(series, *v)
	}
	slices.SortFunc(series, func(a, b v1Count) int {
		if c := a.firstSeen.Compare(b.firstSeen); c != 0 {
			return c
		}
		if c := strings.Compare(a.exe, b.exe); c != 0 {
			return c
		}
		return strings.Compare(a.container, b.container)
	})
	return series
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
