package testbed

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

func TestCreatorPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"imdsv2-123-abcdef-imds", 123, true},
		{"imdsv2-123-abcdef-container", 123, true},
		{"imdsv2-123-abcdef-router", 0, false},   // not a role of ours
		{"imdsv2demo-123-abcdef-imds", 0, false}, // another prefix
		{"imdsv2-x-abcdef-imds", 0, false},
		{"imdsv2-0-abcdef-imds", 0, false},
		{"imdsv2-123-imds", 0, false},
		{"myns", 0, false},
	} {
		pid, ok := creatorPID(tc.name, "imdsv2")
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("creatorPID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

// TestCleanupStale leaves namespaces as a crashed bed would (its pid cannot be running: it is
// above the kernel's pid_max) next to a live bed and an unrelated namespace; only the crashed
// bed's go.
func TestCleanupStale(t *testing.T) {
	privtest.Require(t)
	const prefix = "imdsv2stale"
	raw, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	dead := prefix + "-" + strconv.Itoa(pidMax+1) + "-0badc0-imds"
	unrelated := prefix + "-not-a-bed"
	for _, n := range []string{dead, unrelated} {
		if err := createNamed(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteNamed(n) })
	}
	live, err := New(Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })

	deleted, err := CleanupStale(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != dead {
		t.Fatalf("deleted %v, want only %s", deleted, dead)
	}
	for _, n := range []string{unrelated, live.Name(IMDS), live.Name(Instance), live.Name(Container)} {
		if _, err := os.Stat(netnsDir + "/" + n); err != nil {
			t.Errorf("%s was deleted: %v", n, err)
		}
	}
	if _, err := os.Stat(netnsDir + "/" + dead); !os.IsNotExist(err) {
		t.Errorf("stale %s still there (%v)", dead, err)
	}
}
