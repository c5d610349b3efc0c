package testbed

import (
	"os"
	"testing"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

// Require stops the test unless a bed can be built here: Linux, root with CAP_SYS_ADMIN and
// CAP_NET_ADMIN, and a kernel with network namespaces. It skips with the reason outside CI and
// fails in CI.
func Require(t testing.TB) {
	t.Helper()
	privtest.RequireCaps(t, privtest.CapSysAdmin, privtest.CapNetAdmin)
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		privtest.Unavailable(t, "kernel without network namespaces (CONFIG_NET_NS): "+err.Error())
	}
}

// NewForTest builds a bed for t and deletes it when the test ends, whatever the outcome. It
// first removes beds that crashed test processes left behind (CleanupStale).
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
