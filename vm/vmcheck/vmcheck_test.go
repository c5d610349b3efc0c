package vmcheck_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/mountinfo"
	"github.com/imdsv2/imdsv2/internal/netguard"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper(os.Getenv(helperEnv)))
	}
	netguard.TestMain(m)
}

// inVM reports whether the test binary runs inside the VM started by vm/run.sh.
func inVM() bool { return os.Getenv("IMDSV2_VM") == "1" }

// TestKernelRelease logs the kernel under test and, in the VM, checks that it is the one the host
// script extracted from the distribution package (a different kernel would make the run prove
// nothing about it).
func TestKernelRelease(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatalf("uname: %v", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	t.Logf("kernel %s %s", release, unix.ByteSliceToString(u.Version[:]))
	if want := os.Getenv("IMDSV2_VM_KERNEL"); want != "" && release != want {
		t.Fatalf("kernel release %q, the VM was started with %q", release, want)
	}
	if inVM() && os.Getenv("IMDSV2_VM_KERNEL") == "" {
		t.Fatal("IMDSV2_VM=1 but IMDSV2_VM_KERNEL is not set: /init did not pass the expected release")
	}
}

// TestMounts checks the file systems the auditor and the test bed depend on. On a host only the
// cgroup2 hierarchy is required (hosts mount the rest where they like); in the VM /init mounts
// everything at the standard places and all of them are checked.
func TestMounts(t *testing.T) {
	mounts := mountTypes(t)
	if _, err := cgroup.Mountpoint(); err != nil {
		t.Fatalf("cgroup2: %v", err)
	}
	if !inVM() {
		return
	}
	want := map[string]string{
		"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs", "/tmp": "tmpfs",
		"/sys/fs/bpf": "bpf", "/sys/fs/cgroup": "cgroup2", "/sys/kernel/tracing": "tracefs",
		"/sys/kernel/debug": "debugfs",
	}
	for dir, fstype := range want {
		if got := mounts[dir]; got != fstype {
			t.Errorf("%s: file system %q, want %q", dir, got, fstype)
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Errorf("kernel BTF missing (the auditor's argv capture needs it): %v", err)
	}
}

// mountTypes maps mount points to file system types, from /proc/self/mountinfo.
func mountTypes(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("open mountinfo: %v", err)
	}
	defer f.Close()
	mounts, err := mountinfo.Parse(f)
	if err != nil {
		t.Fatalf("read mountinfo: %v", err)
	}
	types := make(map[string]string)
	for _, m := range mounts {
		types[m.Point] = m.FSType
	}
	return types
}
