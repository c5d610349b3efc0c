package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
)

// An older agent started on the state file of a newer one (a downgrade, or two versions
// sharing a path): it stops before anything is loaded, with an error that names both schema
// versions and what to do, and leaves the file as it was.
func TestAuditNewerStateIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.json")
	newer := fmt.Sprintf(`{"schema": %d, "callers": "a layout of the future"}`, audit.SummarySchema+1)
	require.NoError(t, os.WriteFile(path, []byte(newer), 0o600))
	// --cgroup names no cgroup: should the state not stop it, nothing can attach anywhere.
	code, out, errs := cli(t, "audit", "--cgroup", "/nonexistent/imdsv2-test", "--state", path, "--duration", "1s")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	for _, want := range []string{path, fmt.Sprintf("schema %d", audit.SummarySchema+1),
		fmt.Sprintf("reads schemas up to %d", audit.SummarySchema), "run the newer version", "move the file away"} {
		assert.Contains(t, errs, want)
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, newer, string(b), "the newer file must be left as it was")
	aside, _ := filepath.Glob(path + ".*")
	assert.Empty(t, aside)
}
