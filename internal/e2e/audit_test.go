package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// As root the test runs in a private network namespace with only loopback.
func TestMain(m *testing.M) { netguard.TestMain(m) }

const (
	imdsV4 = "169.254.169.254:80"
	imdsV6 = "[fd00:ec2::254]:80"
	base   = "http://169.254.169.254"
)

// want is what a request record must say.
type want struct {
	class  audit.Class
	method string
	path   string
	status int    // 0: not checked
	remote string // default imdsV4
	exe    string // base name of the executable
	cmd    string // contained in the command line
	parent int    // pid of the first ancestor
}

func check(t *testing.T, r audit.Record, pid int, w want) {
	t.Helper()
	if w.remote == "" {
		w.remote = imdsV4
	}
	p := r.Process
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if r.Class != w.class || r.Method != w.method || r.Path != w.path || r.Remote != w.remote {
		add("request %s %s %s to %s, want %s %s %s to %s", r.Class, r.Method, r.Path, r.Remote, w.class, w.method, w.path, w.remote)
	}
	if w.status != 0 && r.Status != w.status {
		add("status %d, want %d", r.Status, w.status)
	}
	if p.PID != uint32(pid) || p.PPID != uint32(w.parent) {
		add("pid %d ppid %d, want %d %d", p.PID, p.PPID, pid, w.parent)
	}
	if filepath.Base(p.Exe) != w.exe && !strings.HasPrefix(filepath.Base(p.Exe), w.exe) {
		add("exe %q, want %s", p.Exe, w.exe)
	}
	if !strings.Contains(p.Cmdline, w.cmd) {
		add("command line %q lacks %q", p.Cmdline, w.cmd)
	}
	if len(p.Parents) < 1 || p.Parents[0].PID != uint32(w.parent) || p.Parents[0].Cmdline == "" {
		add("parents %+v, want first %d with its command line", p.Parents, w.parent)
	}
	if p.Source != audit.SourceExec && p.Source != audit.SourceProc {
		add("attribution source %q, want exec or proc", p.Source)
	}
	if p.Preexisting || r.Incomplete {
		add("preexisting=%v incomplete=%v", p.Preexisting, r.Incomplete)
	}
	if len(errs) > 0 {
		t.Errorf("record %s:\n  %s", describe([]audit.Record{r}), strings.Join(errs, "\n  "))
	}
}

// TestAuditEndToEnd runs every caller of issue 3's list against the emulator, one after the
// other, and checks what the auditor made of each request.
func TestAuditEndToEnd(t *testing.T) {
	h := newHarness(t, "imdsv2", "caller")
	self := os.Getpid()

	t.Run("curl IMDSv1", func(t *testing.T) {
		cmd, _ := h.run(t, testbed.Instance, true, "curl", "-sS", "-m", "60", base+"/latest/meta-data/instance-id")
		rs := h.byPID(t, cmd.Process.Pid, 1)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassIMDSv1, method: "GET", path: "/latest/meta-data/instance-id",
			status: 200, exe: "curl", cmd: base + "/latest/meta-data/instance-id", parent: self})
		if !strings.HasPrefix(rs[0].UserAgent, "curl/") {
			t.Errorf("user agent %q", rs[0].UserAgent)
		}
	})

	t.Run("curl IMDSv2", func(t *testing.T) {
		script := `T=$(curl -sS -m 60 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" ` + base + `/latest/api/token) &&
curl -sS -m 60 -H "X-aws-ec2-metadata-token: $T" ` + base + `/latest/meta-data/placement/region; rc=$?; exit $rc`
		cmd, _ := h.run(t, testbed.Instance, true, "sh", "-c", script)
		sh := cmd.Process.Pid
		rs := h.waitFor(t, "the PUT and the GET of curl under sh", func(rs []audit.Record) ([]audit.Record, bool) {
			got := filter(rs, func(r audit.Record) bool { return r.Process.PPID == uint32(sh) })
			return got, len(got) >= 2
		})
		slices.SortFunc(rs, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
		check(t, rs[0], int(rs[0].Process.PID), want{class: audit.ClassTokenPUT, method: "PUT", path: "/latest/api/token",
			status: 200, exe: "curl", cmd: "X-aws-ec2-metadata-token-ttl-seconds: 60", parent: sh})
		check(t, rs[1], int(rs[1].Process.PID), want{class: audit.ClassIMDSv2, method: "GET", path: "/latest/meta-data/placement/region",
			status: 200, exe: "curl", cmd: "/latest/meta-data/placement/region", parent: sh})
		if rs[0].HopLimit != 1 || rs[0].TokenTTL != 60 {
			t.Errorf("token PUT: hop limit %d, TTL %d; want 1 (the emulator's, one hop away) and 60", rs[0].HopLimit, rs[0].TokenTTL)
		}
		if len(rs[1].Process.Parents) < 2 || rs[1].Process.Parents[1].PID != uint32(self) {
			t.Errorf("parent chain %+v, want sh then the test", rs[1].Process.Parents)
		}
	})

	t.Run("python3 urllib IMDSv1", func(t *testing.T) {
		code := `import urllib.request as u; print(u.urlopen("` + base + `/latest/meta-data/ami-id", timeout=60).read().decode())`
		cmd, _ := h.run(t, testbed.Instance, true, "python3", "-c", code)
		rs := h.byPID(t, cmd.Process.Pid, 1)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassIMDSv1, method: "GET", path: "/latest/meta-data/ami-id",
			status: 200, exe: "python", cmd: "urllib.request", parent: self})
		if !strings.HasPrefix(rs[0].UserAgent, "Python-urllib/") {
			t.Errorf("user agent %q", rs[0].UserAgent)
		}
	})

	t.Run("imdsv2 get", func(t *testing.T) {
		cmd, out := h.run(t, testbed.Instance, true, "imdsv2", "get", "--timeout=1m", "meta-data/instance-type")
		if strings.TrimSpace(out) != "t3.micro" {
			t.Errorf("imdsv2 get printed %q", out)
		}
		rs := h.byPID(t, cmd.Process.Pid, 2)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassTokenPUT, method: "PUT", path: "/latest/api/token",
			status: 200, exe: "imdsv2", cmd: "get --timeout=1m meta-data/instance-type", parent: self})
		check(t, rs[1], cmd.Process.Pid, want{class: audit.ClassIMDSv2, method: "GET", path: "/latest/meta-data/instance-type",
			status: 200, exe: "imdsv2", cmd: "get --timeout=1m meta-data/instance-type", parent: self})
	})

	t.Run("aws-sdk-go-v2 falls back to IMDSv1", func(t *testing.T) {
		h.srv.InjectFault(imdstest.Fault{Method: "PUT", PathPrefix: "/latest/api/token", Kind: imdstest.FaultStatus, Status: 403})
		defer h.srv.ClearFaults()
		cmd, _ := h.run(t, testbed.Instance, true, "caller", "sdk-fallback", "instance-id")
		pid := cmd.Process.Pid
		// The SDK may send its PUT twice (its 500 ms answer time-out runs out on a slow machine,
		// a VM without KVM): every PUT is refused, then comes the IMDSv1 GET.
		rs := h.waitFor(t, fmt.Sprintf("the token PUT and the IMDSv1 GET of pid %d", pid), func(rs []audit.Record) ([]audit.Record, bool) {
			got := filter(rs, func(r audit.Record) bool { return r.Type == audit.RecordRequest && r.Process.PID == uint32(pid) })
			return got, slices.ContainsFunc(got, func(r audit.Record) bool { return r.Class == audit.ClassIMDSv1 })
		})
		slices.SortFunc(rs, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
		get := rs[len(rs)-1]
		for _, put := range rs[:len(rs)-1] {
			check(t, put, pid, want{class: audit.ClassTokenPUT, method: "PUT", path: "/latest/api/token",
				status: 403, exe: "caller", cmd: "sdk-fallback instance-id", parent: self})
		}
		if len(rs) < 2 {
			t.Errorf("no token PUT before the IMDSv1 GET: %s", describe(rs))
		}
		check(t, get, pid, want{class: audit.ClassIMDSv1, method: "GET", path: "/latest/meta-data/instance-id",
			status: 200, exe: "caller", cmd: "sdk-fallback instance-id", parent: self})
		if !strings.Contains(get.UserAgent, "aws-sdk-go-v2") || get.SDK == nil {
			t.Errorf("user agent %q, SDK %+v; want aws-sdk-go-v2 recognised", get.UserAgent, get.SDK)
		}
	})

	t.Run("curl IMDSv1 over IPv6", func(t *testing.T) {
		url := "http://[fd00:ec2::254]/latest/meta-data/local-ipv4"
		cmd, _ := h.run(t, testbed.Instance, true, "curl", "-g", "-sS", "-m", "60", url)
		rs := h.byPID(t, cmd.Process.Pid, 1)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassIMDSv1, method: "GET", path: "/latest/meta-data/local-ipv4",
			status: 200, remote: imdsV6, exe: "curl", cmd: url, parent: self})
	})

	t.Run("token header in a second write", func(t *testing.T) {
		cmd, _ := h.run(t, testbed.Instance, true, "caller", "split", "/latest/meta-data/hostname")
		rs := h.byPID(t, cmd.Process.Pid, 2)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassTokenPUT, method: "PUT", path: "/latest/api/token",
			status: 200, exe: "caller", cmd: "split /latest/meta-data/hostname", parent: self})
		check(t, rs[1], cmd.Process.Pid, want{class: audit.ClassIMDSv2, method: "GET", path: "/latest/meta-data/hostname",
			status: 200, exe: "caller", cmd: "split /latest/meta-data/hostname", parent: self})
		if rs[0].Cookie != rs[1].Cookie {
			t.Errorf("PUT and GET on different sockets (%d, %d); the caller used one", rs[0].Cookie, rs[1].Cookie)
		}
	})

	t.Run("IMDSv1 GET and exit, 100 times", func(t *testing.T) {
		const n = 100
		pids := map[int]int{} // pid -> index
		var cmds []*exec.Cmd
		var errs []*strings.Builder // each caller's stderr, for the failure message
		// Started all at once, then waited for: sequential runs take minutes on a loaded
		// machine, and many short-lived callers at the same time is the harder case anyway.
		for i := range n {
			cmd := exec.Command(filepath.Join(h.bin, "caller"), "send-exit", "/latest/meta-data/ami-id", strconv.Itoa(i))
			h.cg.Prepare(cmd)
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
			errOut := new(strings.Builder)
			cmd.Stderr = errOut
			if err := h.bed.Start(testbed.Instance, cmd); err != nil {
				t.Fatal(err)
			}
			pids[cmd.Process.Pid] = i
			cmds = append(cmds, cmd)
			errs = append(errs, errOut)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Errorf("caller send-exit (pid %d): %v: %s", cmd.Process.Pid, err, errs[i])
			}
		}
		rs := h.waitFor(t, "a record of every send-exit process", func(rs []audit.Record) ([]audit.Record, bool) {
			got := filter(rs, func(r audit.Record) bool {
				_, ok := pids[int(r.Process.PID)]
				return ok && r.Type == audit.RecordRequest
			})
			return got, len(got) >= n
		})
		seen := map[int]bool{}
		for _, r := range rs {
			i := pids[int(r.Process.PID)]
			seen[i] = true
			check(t, r, int(r.Process.PID), want{class: audit.ClassIMDSv1, method: "GET", path: "/latest/meta-data/ami-id",
				exe: "caller", cmd: "send-exit /latest/meta-data/ami-id " + strconv.Itoa(i), parent: self})
			if !strings.HasSuffix(r.Process.Cmdline, " "+strconv.Itoa(i)) || r.Process.Source != audit.SourceExec {
				t.Errorf("process %d: command line %q (source %s), want it to end in %d, captured at exec", r.Process.PID, r.Process.Cmdline, r.Process.Source, i)
			}
		}
		if len(rs) != n || len(seen) != n {
			t.Errorf("%d records for %d of %d processes", len(rs), len(seen), n)
		}
	})

	t.Run("non-AWS probe", func(t *testing.T) {
		cmd, _ := h.run(t, testbed.Instance, true, "caller", "probe")
		rs := h.byPID(t, cmd.Process.Pid, 1)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassProbe, method: "GET", path: "/computeMetadata/v1/instance/id",
			exe: "caller", cmd: "probe", parent: self})
		if rs[0].Cloud != "gcp" {
			t.Errorf("probe cloud %q, want gcp", rs[0].Cloud)
		}
	})

	t.Run("keep-alive connection", func(t *testing.T) {
		paths := []string{"/latest/meta-data/instance-id", "/latest/meta-data/ami-id", "/latest/meta-data/mac"}
		cmd, _ := h.run(t, testbed.Instance, true, "caller", append([]string{"keepalive", "3"}, paths...)...)
		rs := h.byPID(t, cmd.Process.Pid, 3)
		for i, r := range rs {
			check(t, r, cmd.Process.Pid, want{class: audit.ClassIMDSv1, method: "GET", path: paths[i],
				status: 200, exe: "caller", cmd: "keepalive 3", parent: self})
			if r.Cookie != rs[0].Cookie {
				t.Errorf("request %d on socket %d, want all on %d", i, r.Cookie, rs[0].Cookie)
			}
		}
	})

	t.Run("token PUT from a container, hop limit 1", func(t *testing.T) {
		cmd, _ := h.run(t, testbed.Container, false, "curl", "-sS", "-m", "5", "-X", "PUT",
			"-H", "X-aws-ec2-metadata-token-ttl-seconds: 21600", base+"/latest/api/token")
		rs := h.byPID(t, cmd.Process.Pid, 1)
		check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassTokenPUT, method: "PUT", path: "/latest/api/token",
			exe: "curl", cmd: "/latest/api/token", parent: self})
		if !rs[0].Unanswered || rs[0].Status != 0 {
			t.Errorf("container token PUT: unanswered=%v status=%d, want unanswered", rs[0].Unanswered, rs[0].Status)
		}
		hints := h.auditor.Snapshot().ReadyHints
		found := false
		for _, hint := range hints.UnansweredTokenPUTs {
			found = found || hint.Process.PID == uint32(cmd.Process.Pid)
		}
		if !found {
			t.Errorf("ready hints list no unanswered token PUT of pid %d: %+v", cmd.Process.Pid, hints.UnansweredTokenPUTs)
		}
		if !slices.ContainsFunc(hints.ObservedHopLimits, func(l audit.HopLimit) bool { return l.HopLimit == 1 && l.TokenAnswers > 0 }) {
			t.Errorf("observed hop limits %+v, want 1 (the emulator's)", hints.ObservedHopLimits)
		}
	})

	t.Run("all requests seen, none lost", func(t *testing.T) {
		checkTotals(t, h)
	})
}

// checkTotals compares the emulator's request log with the auditor's records: every request
// the emulator got is there once, classified as the emulator saw it, and nothing was lost.
func checkTotals(t *testing.T, h *harness) {
	served := map[string]int{}
	for _, r := range h.srv.Requests() {
		class := audit.ClassIMDSv1
		switch {
		case r.Method == "PUT":
			class = audit.ClassTokenPUT
		case strings.HasPrefix(r.Path, "/computeMetadata/"):
			class = audit.ClassProbe
		case r.TokenSent:
			class = audit.ClassIMDSv2
		}
		served[fmt.Sprintf("%s %s %s", class, r.Method, r.Path)]++
	}
	seen := map[string]int{}
	// No request is recorded twice: the callers of this test never send the same request twice
	// on one connection.
	perSocket := map[string][]audit.Record{}
	for _, r := range h.snapshot() {
		if r.Type == audit.RecordRequest {
			k := fmt.Sprintf("%d %s %s", r.Cookie, r.Method, r.Path)
			perSocket[k] = append(perSocket[k], r)
		}
	}
	for _, rs := range perSocket {
		if len(rs) > 1 {
			t.Errorf("one request recorded %d times:%s", len(rs), describe(rs))
		}
	}
	for _, r := range h.snapshot() {
		switch r.Type {
		case audit.RecordLost:
			t.Errorf("lost-record report: %d kernel records lost", r.Lost)
		case audit.RecordRequest:
			seen[fmt.Sprintf("%s %s %s", r.Class, r.Method, r.Path)]++
		}
	}
	if !maps.Equal(served, seen) {
		a, _ := json.MarshalIndent(served, "", "  ")
		b, _ := json.MarshalIndent(seen, "", "  ")
		t.Errorf("the emulator served\n%s\nthe auditor recorded\n%s", a, b)
	}
	s := h.auditor.Snapshot()
	if s.LostEvents != 0 || h.agent.Lost() != 0 {
		t.Errorf("lost events: summary %d, agent %d", s.LostEvents, h.agent.Lost())
	}
	if s.Requests[audit.ClassIncomplete] != 0 || s.Requests[audit.ClassOther] != 0 {
		t.Errorf("requests not classified: %d incomplete, %d other", s.Requests[audit.ClassIncomplete], s.Requests[audit.ClassOther])
	}
}
