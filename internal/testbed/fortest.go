package testbed

import (
	"os"
	"testing"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

// Require stops the test unless a bed can be built here: Linux, root, and network namespaces.
// It skips with the reason outside CI and fails in CI.
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		privtest.Unavailable(t, "no network namespace support: "+err.Error())
	}
}

// NewForTest builds a bed for t and deletes it when the test ends, whatever the outcome.
func NewForTest(t testing.TB, cfg Config) *Bed {
	t.Helper()
	Require(t)
	if _, err := CleanupStale(cfg.Prefix); err != nil {
		t.Logf("testbed: cleaning stale namespaces: %v", err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("build test bed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("tear down test bed: %v", err)
		}
	})
	return b
}
