//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// testPrefix starts the name of every cgroup ForTest creates: testPrefix<pid>-<random hex>,
// the pid being the test process's, so that SweepStale can tell a dead run's cgroups.
const testPrefix = "imdsv2-test-"

// SweepStale removes the cgroups under parent named prefix<pid>-<anything> whose pid no longer
// runs: those a test process left behind when it was killed before its clean-up. A cgroup that
// still holds a process is left alone (rmdir refuses it) and reported in the error. A pid reused
// by another process keeps its cgroups until that one ends too; wrong that way round only costs
// a leftover, never a live test's cgroup. SweepStale returns the paths it removed.
func SweepStale(parent, prefix string) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("cgroup: sweep %s: %w", parent, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name(), prefix)
		if !e.IsDir() || !ok || alive(pid) {
			continue
		}
		path := filepath.Join(parent, e.Name())
		if err := removeTree(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: remove stale %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// ownerPID parses the pid out of a name prefix<pid>-<rest>; ok is false for any other name.
func ownerPID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	num, tail, ok := strings.Cut(rest, "-")
	if !ok || tail == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(num)
	return pid, err == nil && pid > 0
}

// alive reports whether a process with this pid exists (EPERM: it does, owned by someone else).
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
