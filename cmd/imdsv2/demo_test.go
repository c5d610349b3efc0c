package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// TestDemoInterrupted sends Ctrl-C (SIGINT) to a running demo once its auditor is attached
// and checks that it ends and leaves no namespace or cgroup behind.
func TestDemoInterrupted(t *testing.T) {
	privtest.Require(t)
	bin := filepath.Join(t.TempDir(), "imdsv2")
	buildBinary(t, bin)
	cmd := exec.Command(bin, "demo")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(waitGuard)
	for !strings.Contains(out.String(), "== 2.") {
		select {
		case err := <-done:
			t.Fatalf("demo ended before it was interrupted (%v):\n%s", err, out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("demo did not reach its second step within %s:\n%s", waitGuard, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-done:
		assert.Equal(t, exitFail, exitCode(t, err), out.String())
	case <-time.After(waitGuard):
		_ = cmd.Process.Kill()
		t.Fatalf("demo did not end after Ctrl-C:\n%s", out.String())
	}
	assert.Contains(t, out.String(), "interrupted; everything it created has been removed")
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "imdsv2demo-"), "namespace %s left behind", e.Name())
	}
	if mnt, err := cgroup.Mountpoint(); err == nil {
		left, _ := filepath.Glob(filepath.Join(mnt, "imdsv2demo-*"))
		assert.Empty(t, left, "demo cgroups left behind")
	}
}
