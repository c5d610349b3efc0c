package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

// TestVersionFeatures loads the auditor's programs (nothing is attached) and checks the report.
func TestVersionFeatures(t *testing.T) {
	privtest.Require(t)
	code, out, errOut := cli(t, "version", "--features")
	require.Equal(t, exitOK, code, errOut)
	for _, want := range []string{"imdsv2 ", "kernel:", "btf:", "exec tracing:", "attach mode:", "ring buffer:"} {
		assert.Contains(t, out, want)
	}
}
