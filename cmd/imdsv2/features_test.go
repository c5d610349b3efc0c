package main

import (
	"encoding/json"
	"strings"
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
	// In JSON the features are part of the one document (they once followed it as text).
	code, out, errOut = cli(t, "version", "--features", "--output", "json")
	require.Equal(t, exitOK, code, errOut)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	assert.Equal(t, versionSchema, v.Schema)
	assert.NotEmpty(t, v.Features)
	assert.Contains(t, strings.Join(v.Features, "\n"), "attach mode:")
}
