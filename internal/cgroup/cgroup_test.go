//go:build linux

package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

func TestMain(m *testing.M) { netguard.TestMain(m) }

// TestMountpointFrom covers the glue; internal/mountinfo tests the parsing.
func TestMountpointFrom(t *testing.T) {
	got, err := mountpointFrom(strings.NewReader("41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"))
	if err != nil || got != "/sys/fs/cgroup/unified" {
		t.Fatalf("mountpointFrom = %q, %v", got, err)
	}
	if _, err := mountpointFrom(strings.NewReader("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")); !errors.Is(err, ErrNotMounted) {
		t.Fatalf("no cgroup2 mount: %v, want ErrNotMounted", err)
	}
	if _, err := mountpointFrom(iotest.ErrReader(errors.New("boom"))); err == nil || errors.Is(err, ErrNotMounted) {
		t.Fatalf("unreadable mountinfo: %v, want a read error", err)
	}
}

func TestCheckErrors(t *testing.T) {
	privtest.Require(t)
	root, err := Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"", "empty cgroup path"},
		{"/nonexistent/imdsv2", "does not exist"},
		{file, "is not a directory"},
		{t.TempDir(), "not on a cgroup file system"},
	}
	for _, tt := range tests {
		err := Check(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%q) = %v, want an error containing %q", tt.path, err, tt.want)
		}
	}
	if err := Check(root); err != nil {
		t.Errorf("Check(%q) = %v, want nil for the hierarchy's root", root, err)
	}
	// Only hybrid hosts have a v1 hierarchy there; pure cgroup v2 hosts (the test VM, Amazon
	// Linux 2023) have none.
	if _, err := os.Stat("/sys/fs/cgroup/cpu"); err == nil {
		if err := Check("/sys/fs/cgroup/cpu"); err != nil && !strings.Contains(err.Error(), "cgroup v1") {
			t.Errorf("Check of a v1 hierarchy = %v, want it to name cgroup v1", err)
		}
	}
}

func TestGroupRunsChildInsideAndRemoves(t *testing.T) {
	privtest.Require(t)
	g := ForTest(t)
	id, err := ID(g.Path())
	if err != nil || id != g.ID() || id == 0 {
		t.Fatalf("ID = %d, %v; want %d", id, err, g.ID())
	}
	cmd := exec.Command("sleep", "60")
	if err := g.Start(cmd); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := Mountpoint()
	rel := strings.TrimPrefix(g.Path(), root)
	if !strings.Contains(string(b), "0::"+rel+"\n") {
		t.Fatalf("child's /proc/pid/cgroup = %q, want the v2 line 0::%s", b, rel)
	}
	pids, err := g.Procs()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("Procs = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	// Where the kernel has cgroup.kill (5.14 on), Remove must be able to use it.
	if _, err := os.Stat(filepath.Join(g.Path(), "cgroup.kill")); err == nil {
		if err := writeKill(g.Path()); err != nil {
			t.Fatalf("cgroup.kill is there but writing it failed: %v", err)
		}
		if err := <-waited; err == nil {
			t.Fatal("sleep ended normally; want it killed through cgroup.kill")
		}
	} else {
		t.Logf("no cgroup.kill on this kernel (%v): Remove kills by cgroup.procs", err)
		_ = cmd.Process.Kill()
		<-waited
	}
	checkRemoveKillsAll(t, g)
}

// TestRemoveWithoutCgroupKill takes the path of kernels before 5.14 (Amazon Linux 2's 5.10) on
// any kernel: there a write to cgroup.kill, a file that does not exist, fails with EACCES, and
// Remove must kill by cgroup.procs instead of giving up.
func TestRemoveWithoutCgroupKill(t *testing.T) {
	privtest.Require(t)
	g := ForTest(t)
	// Registered after ForTest, so it runs first: if this test fails, ForTest's own Remove
	// kills what is left with the real cgroup.kill.
	killFile = "cgroup.kill-absent"
	t.Cleanup(func() { killFile = "cgroup.kill" })
	err := writeKill(g.Path())
	if err == nil {
		t.Fatalf("writing %s succeeded; the test needs a kill file that does not exist", killFile)
	}
	// What 5.10 answers a plain write to cgroup.kill (os.WriteFile creates, cgroupfs refuses).
	if err := os.WriteFile(filepath.Join(g.Path(), killFile), []byte("1"), 0); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("writing a missing cgroup file = %v, want EACCES as 5.10 answers for cgroup.kill", err)
	}
	checkRemoveKillsAll(t, g)
}

// checkRemoveKillsAll starts, in g and in a child cgroup, a shell that keeps forking sleeps (so
// that one round of kills cannot be enough) and a plain sleep, and checks that Remove kills them
// all and removes both directories, and that a second Remove is a no-op.
func checkRemoveKillsAll(t *testing.T, g *Group) {
	t.Helper()
	// The forker stops by itself after 500 rounds, should Remove fail.
	const forker = "i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); sleep 0.01; done; wait"
	var waits []chan error
	start := func(in *Group, name string, args ...string) {
		cmd := exec.Command(name, args...)
		if err := in.Start(cmd); err != nil {
			t.Fatal(err)
		}
		w := make(chan error, 1)
		go func() { w <- cmd.Wait() }()
		waits = append(waits, w)
	}
	sub, err := New(g.Path(), "sub-")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*Group{g, sub} {
		start(in, "sleep", "60")
		start(in, "sh", "-c", forker)
	}
	// Wait until both forkers have forked at least once.
	for i := 0; ; i++ {
		pids, err := g.Procs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= 6 {
			break
		}
		if i == 1000 {
			t.Fatalf("Procs = %v; want the 4 started processes and forked sleeps", pids)
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := <-w; err == nil {
			t.Fatalf("process %d ended normally; want it killed by Remove", i)
		}
	}
	for _, p := range []string{sub.Path(), g.Path()} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cgroup dir %s still there after Remove: %v", p, err)
		}
	}
	if err := g.Remove(); err != nil {
		t.Fatalf("second Remove = %v, want nil", err)
	}
}

func TestNewRejectsNonCgroupParent(t *testing.T) {
	privtest.Require(t)
	dir := t.TempDir()
	if _, err := New(dir, ""); err == nil || !strings.Contains(err.Error(), "not on a cgroup file system") {
		t.Fatalf("New(%q) = %v, want a not-a-cgroup error", dir, err)
	}
}
