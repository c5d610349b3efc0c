package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/hostns"
)

// TestHostFlags: the environment gives the defaults, flags win, and without host paths the
// auditor keeps its own process table.
func TestHostFlags(t *testing.T) {
	t.Setenv(hostns.EnvProc, "/host/proc")
	t.Setenv(hostns.EnvCgroup, "/host/sys/fs/cgroup")
	var h hostFlags
	fs := newFlagSet("audit")
	h.register(fs)
	require.NoError(t, fs.Parse([]string{"--host-cgroup", "/elsewhere"}))
	assert.Equal(t, hostns.Paths{Proc: "/host/proc", Cgroup: "/elsewhere"}, h.paths)
	assert.NotNil(t, h.processTable())
	_, err := h.facts(false)
	assert.ErrorContains(t, err, "/host/proc", "a host path that is not there is refused")

	assert.Nil(t, (&hostFlags{}).processTable())
	f, err := (&hostFlags{paths: hostns.Paths{Proc: "/proc"}}).facts(false)
	require.NoError(t, err)
	assert.True(t, f.HostProc)
	assert.False(t, f.HostCgroup)
	assert.Equal(t, "namespaces:      cgroup own, pid initial; host paths: /proc given, cgroup2 not given\n",
		describeHost(hostns.Facts{InitialPIDNS: true, HostProc: true}))
}
