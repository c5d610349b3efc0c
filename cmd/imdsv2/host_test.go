package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/hostns"
)

// TestHostFlags: the environment gives the defaults and flags win (package agent checks the
// paths and makes the process table from them).
func TestHostFlags(t *testing.T) {
	t.Setenv(hostns.EnvProc, "/host/proc")
	t.Setenv(hostns.EnvCgroup, "/host/sys/fs/cgroup")
	var h hostFlags
	fs := newFlagSet("audit")
	h.register(fs)
	require.NoError(t, fs.Parse([]string{"--host-cgroup", "/elsewhere"}))
	assert.Equal(t, hostns.Paths{Proc: "/host/proc", Cgroup: "/elsewhere"}, h.paths)
	assert.Equal(t, "namespaces:      cgroup own, pid initial; host paths: /proc given, cgroup2 not given\n",
		describeHost(hostns.Facts{InitialPIDNS: true, HostProc: true}))
}
