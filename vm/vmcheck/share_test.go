package vmcheck_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHostShare checks, in the VM only, what the read-only share of the host's root file system
// (or, in a VM of another architecture, the root file system vm/run.sh built for it) gives the
// tests: the callers the end-to-end tests run (curl, python3, ip) work, and nothing in the VM can
// write to the host's files.
func TestHostShare(t *testing.T) {
	if !inVM() {
		t.Skip("only meaningful inside the test VM (IMDSV2_VM=1)")
	}
	for _, c := range [][]string{
		{"curl", "--version"},
		{"python3", "-c", "import http.client, json, socket; print('python ok')"},
		{"ip", "-V"},
	} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
			continue
		}
		t.Logf("%s: %s", c[0], firstLine(string(out)))
	}

	// The package directory is on the host's file system: writing must fail with EROFS.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(wd, ".vmcheck-write-probe")
	err = os.WriteFile(probe, []byte("x"), 0o600)
	if err == nil {
		_ = os.Remove(probe)
		t.Fatalf("wrote %s: the host's file system is writable from the VM", probe)
	}
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to the host share: %v, want EROFS (read-only file system)", err)
	}

	// Scratch space is the VM's own.
	if err := os.WriteFile(filepath.Join(t.TempDir(), "f"), []byte("x"), 0o600); err != nil {
		t.Fatalf("write under TMPDIR: %v", err)
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// TestGoToolchain checks, in the VM only, that a test can run `go build` offline there: the Go
// toolchain is on PATH and HOME (the host's /root through an overlay) is writable. A VM of another
// architecture than the host's runs on its own root file system (IMDSV2_VM_ROOTFS), without Go:
// there the tests use the programs vm/run.sh built on the host (IMDSV2_E2E_PREBUILT).
func TestGoToolchain(t *testing.T) {
	if !inVM() {
		t.Skip("only meaningful inside the test VM (IMDSV2_VM=1)")
	}
	if root := os.Getenv("IMDSV2_VM_ROOTFS"); root != "" {
		t.Skipf("the VM runs on %s, which has no Go toolchain for its architecture", root)
	}
	out, err := exec.Command("go", "env", "GOROOT", "GOMODCACHE", "GOCACHE").CombinedOutput()
	if err != nil {
		t.Fatalf("go env: %v\n%s", err, out)
	}
	t.Logf("go env: %s", strings.Join(strings.Fields(string(out)), " "))
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(home, ".vmcheck-home-probe")
	if err := os.WriteFile(probe, []byte("x"), 0o600); err != nil {
		t.Fatalf("HOME is not writable in the VM: %v", err)
	}
	_ = os.Remove(probe)
}
