// Package privtest decides whether a privileged test (one that needs root, network namespaces,
// cgroups or BPF) can run here.
//
// Outside CI such a test is skipped with a printed reason, so that `go test ./...` works for a
// developer without root. In CI (CI=true) a missing privilege is a failure, never a skip: the
// privileged tests are the ones that prove the network-namespace and eBPF features work, and a
// skip there would hide a broken feature.
package privtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (the environment variable CI is "true").
func InCI() bool { return os.Getenv("CI") == "true" }

// Require stops the test unless it runs on Linux as root with CAP_SYS_ADMIN (which network
// namespaces, mounts, cgroups and BPF all need; root in a default container lacks it). It skips
// with the reason outside CI and fails in CI.
func Require(t testing.TB) {
	t.Helper()
	if reason := Missing(); reason != "" {
		Unavailable(t, reason)
	}
}

// RequireCaps is Require plus the given capabilities in the effective set, for tests that need
// more than CAP_SYS_ADMIN (CAP_NET_ADMIN for links and routes, CAP_BPF and CAP_PERFMON for BPF).
func RequireCaps(t testing.TB, caps ...Cap) {
	t.Helper()
	reason := Missing()
	if reason == "" {
		reason = missingCaps(caps)
	}
	if reason != "" {
		Unavailable(t, reason)
	}
}

// Missing returns why privileged tests cannot run here, or "" when they can.
func Missing() string {
	if runtime.GOOS != "linux" {
		return "needs Linux, this is " + runtime.GOOS
	}
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, cgroups and BPF); run the tests as root, e.g. sudo make test"
	}
	return missingCaps([]Cap{CapSysAdmin})
}

// Unavailable reports a missing prerequisite: t.Skip with the reason outside CI, t.Fatal in CI.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("privileged test cannot run in CI: %s", reason)
		return // only reached with a testing.TB whose Fatalf returns
	}
	t.Skipf("skipped: %s (set CI=true to make this a failure)", reason)
}

// Cap is a Linux capability number, as in capabilities(7).
type Cap uint

// The capabilities the project's privileged tests need.
const (
	CapNetAdmin Cap = 12 // links, addresses, routes, sysctls of a network namespace
	CapSysAdmin Cap = 21 // namespaces, mounts, cgroups
	CapPerfmon  Cap = 38 // BPF tracing programs
	CapBPF      Cap = 39 // BPF maps and programs
)

// String returns the capability's name, e.g. "CAP_NET_ADMIN".
func (c Cap) String() string {
	switch c {
	case CapNetAdmin:
		return "CAP_NET_ADMIN"
	case CapSysAdmin:
		return "CAP_SYS_ADMIN"
	case CapPerfmon:
		return "CAP_PERFMON"
	case CapBPF:
		return "CAP_BPF"
	}
	return "capability " + strconv.Itoa(int(c))
}

// HasCap reports whether c is in this process's effective capability set.
func HasCap(c Cap) (bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false, err
	}
	defer f.Close()
	eff, err := parseCapEff(f)
	if err != nil {
		return false, err
	}
	return c < 64 && eff&(1<<c) != 0, nil
}

func missingCaps(caps []Cap) string {
	var missing []string
	for _, c := range caps {
		ok, err := HasCap(c)
		if err != nil {
			return "cannot read capabilities: " + err.Error()
		}
		if !ok {
			missing = append(missing, c.String())
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "root lacks " + strings.Join(missing, ", ") +
		" (a container without --privileged?); run the privileged tests on the host or in a VM"
}

// parseCapEff reads the CapEff line of a /proc/<pid>/status file.
func parseCapEff(f io.Reader) (uint64, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if hex, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(hex), err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in the process status")
}

// InTestVM reports whether this process runs inside the VM of `make test-vm`, whose whole
// machine (root cgroup included) belongs to the tests: vm/run.sh boots its kernel with
// imdsv2.testvm=1 on the command line, and the VM's /init sets IMDSV2_VM=1 and IMDSV2_VM_KERNEL
// to the release it booted. All three must hold, so that a variable set by mistake on a real
// machine cannot let a test attach at its root cgroup.
func InTestVM() bool {
	if os.Getenv("IMDSV2_VM") != "1" {
		return false
	}
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil || strings.TrimSpace(string(release)) != os.Getenv("IMDSV2_VM_KERNEL") {
		return false
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	return err == nil && slices.Contains(strings.Fields(string(cmdline)), "imdsv2.testvm=1")
}
