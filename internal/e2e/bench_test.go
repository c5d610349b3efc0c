package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/benchstat"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// BenchmarkIMDSRequestRate measures the IMDS request rate the whole auditor (agent, ring
// buffer, auditor with attribution) follows: b.N IMDSv1 GETs, each on a new connection, four
// at a time, from the instance namespace to the emulator, first from a cgroup without the agent,
// then from the audited one. Reported: requests per second of each, their ratio, lost records,
// and requests the auditor did not record (both must be 0).
//
// Run: nice -n 10 go test -run '^$' -bench IMDSRequestRate -benchtime 2000x ./internal/e2e/
func BenchmarkIMDSRequestRate(b *testing.B) {
	h := newHarness(b, "caller")
	plain := cgroup.ForTest(b)
	const conc = "4"
	path := "/latest/meta-data/instance-id"
	n := strconv.Itoa(b.N)
	b.ResetTimer()
	start := time.Now()
	h.runIn(b, plain, testbed.Instance, true, "caller", "load", n, conc, path)
	detached := time.Since(start)
	start = time.Now()
	h.runIn(b, h.cg, testbed.Instance, true, "caller", "load", n, conc, path)
	attached := time.Since(start)
	b.StopTimer()

	// Every request must be recorded; waitFor fails the benchmark if they do not all arrive.
	recorded := h.waitFor(b, fmt.Sprintf("%d load records", b.N), func(rs []audit.Record) ([]audit.Record, bool) {
		got := filter(rs, func(r audit.Record) bool { return r.UserAgent == "e2e-load" })
		return got, len(got) >= b.N
	})
	b.ReportMetric(float64(b.N)/detached.Seconds(), "req/s-detached")
	b.ReportMetric(float64(b.N)/attached.Seconds(), "req/s-attached")
	b.ReportMetric(detached.Seconds()/attached.Seconds(), "ratio")
	b.ReportMetric(float64(h.agent.Lost()), "lost")
	b.ReportMetric(float64(b.N-len(recorded)), "unrecorded")
	if lost := h.auditor.Snapshot().LostEvents; lost != 0 {
		b.Errorf("%d records lost at %.0f requests/s", lost, float64(b.N)/attached.Seconds())
	}
}

// BenchmarkAuditStart measures the real command: the time from starting `imdsv2 audit`
// (attached to a test cgroup) to its "attached" line, its resident memory after two seconds
// idle, and the size of the binary. The reference, in the same run: the time the same binary
// takes to start, print its version and exit. Times are medians over the iterations, so that a
// stall of the machine spoils one iteration, not the result.
//
// Run: nice -n 10 go test -run '^$' -bench AuditStart -benchtime 5x ./internal/e2e/
func BenchmarkAuditStart(b *testing.B) {
	h := newHarness(b, "imdsv2")
	bin := filepath.Join(h.bin, "imdsv2")
	var toAttached, bare []float64 // milliseconds
	var rss int64
	b.ResetTimer()
	for i := range b.N {
		cmd := exec.Command(bin, "audit", "--cgroup", h.cg.Path(), "--duration", "0", "--output", "json")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(stderr)
		for lines.Scan() && lines.Text() != "imdsv2 audit: attached" {
		}
		toAttached = append(toAttached, float64(time.Since(start).Microseconds())/1000)
		if i == 0 {
			b.StopTimer()
			time.Sleep(2 * time.Second)
			rss = residentKiB(b, cmd.Process.Pid)
			b.StartTimer()
		}
		go func() {
			for lines.Scan() {
			}
		}()
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("imdsv2 audit: %v", err)
		}
		start = time.Now()
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			b.Fatalf("imdsv2 version: %v\n%s", err, out)
		}
		bare = append(bare, float64(time.Since(start).Microseconds())/1000)
	}
	b.StopTimer()
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(benchstat.Median(toAttached), "ms-to-attached")
	b.ReportMetric(benchstat.Median(bare), "ms-version-run")
	b.ReportMetric(float64(rss)/1024, "MiB-rss-idle")
	b.ReportMetric(float64(st.Size())/(1<<20), "MiB-binary")
}

// residentKiB reads VmRSS of a process.
func residentKiB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
