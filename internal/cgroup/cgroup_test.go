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
	// A child cgroup with a process of its own must go too.
	sub, err := New(g.Path(), "sub-")
	if err != nil {
		t.Fatal(err)
	}
	cmd2 := exec.Command("sleep", "60")
	if err := sub.Start(cmd2); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd2.Wait() }()

	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err == nil {
		t.Fatal("sleep ended normally; want it killed by Remove")
	}
	if _, err := os.Stat(g.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup dir still there after Remove: %v", err)
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
