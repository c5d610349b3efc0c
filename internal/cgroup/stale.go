//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imdsv2/imdsv2/internal/leftover"
)

// testPrefix starts the name of every cgroup ForTest creates: testPrefix<pid>-<random hex>,
// the pid being the test process's, so that SweepStale can tell a dead run's cgroups.
const testPrefix = "imdsv2-test-"

// SweepStale removes the cgroups under parent named prefix<pid>-<anything> whose pid no longer
// runs (leftover.Owner, leftover.Alive): those a process left behind when it was killed before
// its clean-up. A cgroup that still holds a process is left alone (rmdir refuses it) and
// reported in the error. SweepStale returns the paths it removed.
func SweepStale(parent, prefix string) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("cgroup: sweep %s: %w", parent, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, _, ok := leftover.Owner(e.Name(), prefix)
		if !e.IsDir() || !ok || leftover.Alive(pid) {
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
