//go:build linux

package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSweepStale runs on plain directories: rmdir treats them as it treats empty cgroups, and a
// directory holding a file stands in for a cgroup that still holds a process.
func TestSweepStale(t *testing.T) {
	done := exec.Command("true")
	require.NoError(t, done.Run())
	dead, self := strconv.Itoa(done.Process.Pid), strconv.Itoa(os.Getpid())

	parent := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(parent, name)
		require.NoError(t, os.MkdirAll(p, 0o755))
		return p
	}
	stale := mk(testPrefix + dead + "-0a1b2c")
	mk(testPrefix + dead + "-0a1b2c/child") // nested cgroups go too
	busy := mk(testPrefix + dead + "-busy")
	require.NoError(t, os.WriteFile(filepath.Join(busy, "cgroup.procs"), []byte("1\n"), 0o644))
	live := mk(testPrefix + self + "-3d4e5f")
	others := []string{mk("imdsv2-test-notapid-1"), mk("imdsv2-test-" + dead), mk("user.slice"), mk("imdsv2demo-" + dead + "-1")}
	file := filepath.Join(parent, testPrefix+dead+"-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))

	removed, err := SweepStale(parent, testPrefix)
	assert.Equal(t, []string{stale}, removed)
	require.Error(t, err, "a stale cgroup that cannot be removed is reported")
	assert.Contains(t, err.Error(), busy)
	for _, p := range append([]string{busy, live, file}, others...) {
		_, err := os.Stat(p)
		assert.NoError(t, err, "%s must stay", p)
	}
	assert.NoDirExists(t, stale)
}
