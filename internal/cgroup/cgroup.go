//go:build linux

// Package cgroup finds the cgroup v2 hierarchy and manages short-lived cgroups in it.
//
// The auditor attaches its BPF programs to a cgroup v2 directory; tests and the demo must never
// attach to the machine's root cgroup, so they create a cgroup of their own with New (or ForTest),
// start their workload inside it with Start (the child is born in the cgroup: clone3 with
// CLONE_INTO_CGROUP, so not even its first instruction runs elsewhere), and Remove it afterwards,
// which kills whatever is still running there first.
package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/mountinfo"
)

// ErrNotMounted is returned by Mountpoint when no cgroup2 file system is mounted.
var ErrNotMounted = errors.New("cgroup: no cgroup2 file system is mounted (see /proc/self/mountinfo)")

// Mountpoint returns the directory where the cgroup v2 hierarchy is mounted, as listed in
// /proc/self/mountinfo (on a hybrid host such as systemd's "hybrid" layout that is
// /sys/fs/cgroup/unified, on a unified host /sys/fs/cgroup). It returns ErrNotMounted when
// there is none.
func Mountpoint() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cgroup: find the cgroup2 mount: %w", err)
	}
	defer f.Close()
	return mountpointFrom(f)
}

// mountpointFrom finds the cgroup2 mount in mountinfo text (mountinfo.Cgroup2).
func mountpointFrom(r io.Reader) (string, error) {
	mounts, err := mountinfo.Parse(r)
	if err != nil {
		return "", fmt.Errorf("cgroup: read mountinfo: %w", err)
	}
	if p, ok := mountinfo.Cgroup2(mounts); ok {
		return p, nil
	}
	return "", ErrNotMounted
}

// Mount mounts a cgroup2 file system at dir, creating the directory first. The agent uses it on
// hosts where nothing mounted the v2 hierarchy (old cgroup v1-only layouts).
func Mount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup: create mount point %s: %w", dir, err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("cgroup: mount cgroup2 at %s: %w (needs CAP_SYS_ADMIN in the initial mount namespace)", dir, err)
	}
	return nil
}

// Unmount detaches a cgroup2 mount made by Mount. Programs attached to cgroups stay attached;
// the hierarchy itself lives on as long as anything uses it.
func Unmount(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("cgroup: unmount %s: %w", dir, err)
	}
	return nil
}

// Check returns nil when path is a directory of a cgroup v2 file system, and otherwise an error
// that says what path is instead and where the v2 hierarchy is.
func Check(path string) error {
	if path == "" {
		return errors.New("cgroup: empty cgroup path")
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cgroup %q does not exist: create it (mkdir under the cgroup2 mount%s) or pass the hierarchy's root", path, hint())
	case err != nil:
		return fmt.Errorf("cgroup %q: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("cgroup %q is not a directory: a cgroup is a directory under the cgroup2 mount%s", path, hint())
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return fmt.Errorf("cgroup %q: statfs: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		what := "not on a cgroup file system"
		if fs.Type == unix.CGROUP_SUPER_MAGIC {
			what = "a cgroup v1 directory; BPF programs attach only to cgroup v2"
		}
		return fmt.Errorf("cgroup %q is %s%s", path, what, hint())
	}
	return nil
}

func hint() string {
	if dir, err := Mountpoint(); err == nil {
		return " (cgroup2 is mounted at " + dir + ")"
	}
	return " (no cgroup2 file system is mounted)"
}

// ID returns the cgroup v2 id of the directory path: the value bpf_get_current_cgroup_id()
// reports for tasks in that cgroup (the inode number of the directory on cgroup2).
func ID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup: stat %s: %w", path, err)
	}
	return st.Ino, nil
}
