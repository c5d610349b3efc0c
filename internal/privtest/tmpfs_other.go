//go:build !linux

package privtest

import "testing"

// Tmpfs needs Linux; elsewhere the test is skipped (or fails in CI) with the reason.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	Unavailable(t, "a tmpfs mount needs Linux")
	return ""
}
