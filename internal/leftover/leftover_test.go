package leftover

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		pid          int
		rest         string
	}{
		{"imdsv2-test-42-abc", "imdsv2-test-", 42, "abc"},
		{"imdsv2-test-7-a-b", "imdsv2-test-", 7, "a-b"},
		{"imdsv2-test-42-", "imdsv2-test-", 0, ""},
		{"imdsv2-test-42", "imdsv2-test-", 0, ""},
		{"imdsv2-test--1-a", "imdsv2-test-", 0, ""},
		{"imdsv2-test-+1-a", "imdsv2-test-", 0, ""},
		{"imdsv2-test-0-a", "imdsv2-test-", 0, ""},
		{"imdsv2-test-abc-1", "imdsv2-test-", 0, ""},
		{"other-42-a", "imdsv2-test-", 0, ""},
		{"imdsv2-99-0a1b-imds", "imdsv2-", 99, "0a1b-imds"},
	} {
		pid, rest, ok := Owner(tc.name, tc.prefix)
		assert.Equal(t, tc.pid != 0, ok, tc.name)
		assert.Equal(t, tc.pid, pid, tc.name)
		assert.Equal(t, tc.rest, rest, tc.name)
	}
}

func TestAlive(t *testing.T) {
	assert.True(t, Alive(os.Getpid()))
	done := exec.Command("true")
	require.NoError(t, done.Run())
	assert.False(t, Alive(done.Process.Pid), "a process that was waited for")
}
