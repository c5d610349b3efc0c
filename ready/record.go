package ready

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/imdsv2/imdsv2/audit"
)

// FormatRecord renders one live audit record as a line for people, e.g.
//
//	curl (pid 4242, host): GET /latest/meta-data/instance-id without a token (IMDSv1) -> 200
//
// Strings from the process and the request are escaped.
func FormatRecord(r audit.Record) string {
	if r.Type == audit.RecordLost {
		return fmt.Sprintf("auditor: %d kernel records lost", r.Lost)
	}
	name := r.Process.Comm
	if r.Process.Exe != "" {
		name = filepath.Base(r.Process.Exe)
	}
	at := "host"
	switch {
	case r.Process.OtherNetwork:
		at = "container " + r.Process.LocalAddr
	case r.Process.InContainer():
		at = "container"
	}
	what := map[audit.Class]string{
		audit.ClassIMDSv1:          "without a token (IMDSv1)",
		audit.ClassIMDSv2:          "with a token (IMDSv2)",
		audit.ClassTokenPUT:        "asks for a session token (IMDSv2)",
		audit.ClassTokenPUTProxied: "asks for a session token through a proxy",
		audit.ClassProbe:           "probe for another cloud (" + r.Cloud + ")",
		audit.ClassIncomplete:      "(request only partly captured)",
	}[r.Class]
	answer := fmt.Sprint(r.Status)
	switch {
	case r.Unanswered:
		answer = "NO ANSWER (the token answer was lost on the way: hop limit)"
	case r.Slow:
		answer = fmt.Sprintf("%d, SLOW: after %s", r.Status, r.AnsweredAt.Sub(r.Time).Round(time.Millisecond))
	case r.Status == 0:
		answer = "no answer seen"
	case r.Status == 401:
		answer = "401 Unauthorized (refused: a token is required)"
	case r.Status == 200:
		answer = "200 OK"
	}
	line := fmt.Sprintf("%s (pid %d, %s): %s %s %s -> %s", name, r.Process.PID, at, r.Method, r.Path, what, answer)
	if r.HopLimit > 0 && r.Class == audit.ClassTokenPUT {
		line += fmt.Sprintf(", arrived with TTL %d", r.HopLimit)
	}
	if r.AfterUnansweredPUT {
		line += ", an IMDSv1 fallback"
	}
	return audit.EscapeText(line)
}
