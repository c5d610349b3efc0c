//go:build linux

package privtest

import (
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a tmpfs of size bytes (a mount option such as "8k") on a directory of the test's
// own and unmounts it when the test ends: a small file system that a test can fill. It needs
// what Require checks.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size="+size); err != nil {
		t.Fatalf("mount a tmpfs of %s on %s: %v", size, dir, err)
	}
	// Registered after TempDir's cleanup, so it runs first: the directory is removed unmounted.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
