//go:build linux

package hostns

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Check returns an error naming what is wrong when a path is set but is not what it should be:
// Proc must be a proc file system, Cgroup a cgroup2 directory.
func (p Paths) Check() error {
	var errs []error
	if p.Proc != "" {
		var fs unix.Statfs_t
		if err := unix.Statfs(p.Proc, &fs); err != nil {
			errs = append(errs, fmt.Errorf("host /proc %s: %w", p.Proc, err))
		} else if fs.Type != unix.PROC_SUPER_MAGIC {
			errs = append(errs, fmt.Errorf("host /proc %s is not a proc file system: mount the host's /proc there (hostPath /proc)", p.Proc))
		}
	}
	if p.Cgroup != "" {
		var fs unix.Statfs_t
		if err := unix.Statfs(p.Cgroup, &fs); err != nil {
			errs = append(errs, fmt.Errorf("host cgroup2 mount %s: %w", p.Cgroup, err))
		} else if fs.Type != unix.CGROUP2_SUPER_MAGIC {
			errs = append(errs, fmt.Errorf("host cgroup2 mount %s is not a cgroup2 file system: mount the host's cgroup2 hierarchy there (hostPath /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host)", p.Cgroup))
		}
	}
	return errors.Join(errs...)
}

// Detect reads this process's namespaces from procRoot/self/ns ("" means /proc; pass the
// agent's own /proc, not the host's) and combines them with the host paths given.
func Detect(procRoot string, p Paths) (Facts, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	f := Facts{HostProc: p.Proc != "", HostCgroup: p.Cgroup != ""}
	var errs []error
	for _, ns := range []struct {
		name    string
		initial uint64
		out     *bool
	}{{"cgroup", InitialCgroupNSInode, &f.InitialCgroupNS}, {"pid", InitialPIDNSInode, &f.InitialPIDNS}} {
		ino, err := nsInode(filepath.Join(procRoot, "self", "ns", ns.name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*ns.out = ino == ns.initial
	}
	return f, errors.Join(errs...)
}

// nsInode returns the inode number of a namespace file.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("hostns: read the namespace %s: %w", path, err)
	}
	return st.Ino, nil
}
