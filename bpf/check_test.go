//go:build linux && (amd64 || arm64)

package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/kfeatures"
)

// TestCheckOnAmazonLinux2: on Amazon Linux 2's 4.14 kernel (a fake: it cannot be booted
// here) Check says in one sentence what is missing, each with the release that brought it,
// and does not list the helpers of the program types the kernel lacks.
func TestCheckOnAmazonLinux2(t *testing.T) {
	kfeatures.Fake(t, kfeatures.AmazonLinux2)
	err := Check()
	var missing *MissingError
	require.ErrorAs(t, err, &missing)
	assert.True(t, missing.UnsupportedKernel())
	assert.Equal(t, "this kernel (4.14.355-275.570.amzn2.x86_64) cannot run the auditor: it lacks "+
		"the BPF ring buffer (5.8+), cgroup sock_addr programs (4.17+),"+
		" the cgroup sock_release hook (5.9+), socket-local storage maps (5.2+), "+
		"bpf_ktime_get_boot_ns (5.8+) and bpf_sk_fullsock in cgroup_skb programs (5.1+); the auditor needs Linux 5.9 or later", err.Error())
	_, err = Load(Options{})
	assert.ErrorAs(t, err, &missing, "Load checks first")
}

// TestCheckNamesEachMissingPiece: a kernel that lacks one thing is told so; a helper missing
// from a program type the kernel has is named.
func TestCheckNamesEachMissingPiece(t *testing.T) {
	for _, tc := range []struct {
		name    string
		without kfeatures.Without
		want    string
	}{
		{"release hook", kfeatures.Without{AttachTypes: []ebpf.AttachType{ebpf.AttachCgroupInetSockRelease}},
			"it lacks the cgroup sock_release hook (5.9+);"},
		{"helper", kfeatures.Without{Helpers: []asm.BuiltinFunc{asm.FnSkbLoadBytes}},
			"it lacks bpf_skb_load_bytes in cgroup_skb programs;"},
		{"map", kfeatures.Without{MapTypes: []ebpf.MapType{ebpf.SkStorage}}, "it lacks socket-local storage maps (5.2+);"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.without.KernelRelease = "5.8.0"
			kfeatures.Fake(t, tc.without)
			err := Check()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "this kernel (5.8.0) cannot run the auditor: "+tc.want)
		})
	}
	kfeatures.Fake(t, kfeatures.Without{KernelRelease: "6.1.0"})
	assert.NoError(t, Check())
}

// TestMissingPrivileges: without privileges the kernel is not asked, and the sentence says
// what to do.
func TestMissingPrivileges(t *testing.T) {
	e := &MissingError{Privileges: []string{"CAP_BPF (or CAP_SYS_ADMIN) to load BPF programs and maps",
		"CAP_NET_ADMIN to attach cgroup packet programs"}}
	assert.Equal(t, "this process may not load the auditor: it lacks CAP_BPF (or CAP_SYS_ADMIN) to load BPF "+
		"programs and maps and CAP_NET_ADMIN to attach cgroup packet programs; run it as root", e.Error())
	assert.False(t, e.UnsupportedKernel())
	assert.Empty(t, missingPrivileges(kfeatures.AmazonLinux2))
}
