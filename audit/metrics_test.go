package audit_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

func TestMetricsHandler(t *testing.T) {
	h := newHarness(t, audit.Options{MaxMetricCallers: 2})
	r := replay.New(t0)
	for i := range 4 {
		p := replay.Proc{PID: uint32(9000 + i), PPID: 1, Comm: "x"}
		r.Exec(p, fmt.Sprintf("/opt/app%d \"quoted\"\nline", i), "x")
		c := r.Connect(p)
		for range i + 1 {
			c.Send(replay.GetV1("/", "curl/8"))
			c.Recv(replay.Answer(200, 1), 64)
		}
		r.Advance(1e9)
	}
	put := r.Connect(goProc)
	put.Send(replay.TokenPUT(60, goUA))
	put.Recv(replay.Answer(200, 56), 1)
	lost := r.Connect(goProc)
	lost.Send(replay.TokenPUT(60, goUA))
	lost.Close()
	r.Lost(5)
	h.feed(r)

	srv := httptest.NewServer(h.a.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != audit.MetricsContentType {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`imdsv2_audit_requests_total{class="imdsv1"} 10`,
		`imdsv2_audit_requests_total{class="token-put"} 2`,
		"imdsv2_audit_lost_events_total 5",
		"imdsv2_audit_unanswered_token_puts_total 1",
		"imdsv2_audit_imdsv1_callers 4",
		// The newline reaches the scraper as the two characters \n (EscapeText), not as a newline.
		`imdsv2_audit_imdsv1_requests_total{exe="/opt/app0 \"quoted\"\\nline",container_id=""} 1`,
		`imdsv2_audit_imdsv1_requests_total{exe="/opt/app1 \"quoted\"\\nline",container_id=""} 2`,
		`imdsv2_audit_imdsv1_requests_total{exe="_other",container_id=""} 7`,
		`imdsv2_audit_token_answers_by_hop_limit_total{hop_limit="1"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	if n := strings.Count(text, "imdsv2_audit_imdsv1_requests_total{"); n != 3 {
		t.Errorf("%d IMDSv1 caller series, want 2 + _other", n)
	}
	checkExposition(t, body)

	resp, err = http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

// checkExposition does the checks a Prometheus parser would on each line.
func checkExposition(t *testing.T, b []byte) {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		s := string(line)
		if strings.HasPrefix(s, "# HELP ") || strings.HasPrefix(s, "# TYPE ") {
			continue
		}
		name := s
		if i := strings.IndexAny(s, "{ "); i >= 0 {
			name = s[:i]
		}
		if !strings.HasPrefix(name, "imdsv2_audit_") || strings.ContainsAny(name, "-.") {
			t.Errorf("bad metric line %q", s)
		}
		if strings.Count(s, "{") != strings.Count(s, "}") {
			t.Errorf("unbalanced labels in %q", s)
		}
	}
}
