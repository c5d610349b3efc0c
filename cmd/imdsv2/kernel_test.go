//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/kfeatures"
	"github.com/imdsv2/imdsv2/ready"
)

// al2Sentence is what audit, version --features and ready say on Amazon Linux 2's 4.14.
const al2Sentence = "this kernel (4.14.355-275.570.amzn2.x86_64) cannot run the auditor: it lacks the BPF ring " +
	"buffer (5.8+), cgroup sock_addr programs (4.17+), the cgroup sock_release hook " +
	"(5.9+), socket-local storage maps (5.2+), bpf_ktime_get_boot_ns (5.8+) and bpf_sk_fullsock in cgroup_skb " +
	"programs (5.1+); the auditor needs Linux 5.9 or later"

// TestOnAmazonLinux2Kernel runs the commands on Amazon Linux 2's 4.14 kernel: a fake of the
// kernel's feature probes (such a kernel cannot be booted here). audit and version --features
// say in one sentence what is missing; ready answers UNDECIDED with that reason and the
// operator's fallback (MetadataNoToken, the scan, which still runs).
func TestOnAmazonLinux2Kernel(t *testing.T) {
	noEnv(t)
	kfeatures.Fake(t, kfeatures.AmazonLinux2)
	// Never the machine's root cgroup: should the fake stop refusing, attaching to a directory
	// that is not a cgroup fails.
	noCgroup := t.TempDir()

	code, out, errs := cli(t, "audit", "--duration", "1s", "--cgroup", noCgroup)
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Equal(t, "imdsv2 audit: "+al2Sentence+"\n", errs)

	// version --features could not run here: exit 2, nothing on stdout (its help says so).
	code, out, errs = cli(t, "version", "--features")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Equal(t, "imdsv2 version: "+al2Sentence+"\n", errs)

	// ready reads the instance's identity from the emulator on loopback, then audits (which
	// the kernel refuses) while the scan runs.
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0a12000000000004", Region: "eu-west-1"})
	t.Cleanup(srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
	scanned := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(scanned, "app.py"), []byte("print('hello')\n"), 0o644))
	code, out, errs = cli(t, "ready", "--duration", "1s", "--cgroup", noCgroup, "--output", "json", "--scan-path", scanned, "--cni-dir", scanned)
	require.Equal(t, ready.ExitUndecided, code, errs)
	var rep ready.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "stdout %q, stderr %q", out, errs)
	assert.Equal(t, ready.Undecided, rep.Verdict)
	assert.Contains(t, rep.UndecidedReason, al2Sentence)
	require.Len(t, rep.Uncertain, 1, "%+v", rep.Uncertain)
	fix := rep.Uncertain[0].Fix
	for _, want := range []string{"cannot run on this kernel", "MetadataNoToken", "installed-software scan", "amazon-linux-extras install kernel-5.10"} {
		assert.Contains(t, fix, want)
	}
	assert.False(t, strings.Contains(fix, "as root"), "root does not help on this kernel: %s", fix)
	require.NotNil(t, rep.Scan, "the scan runs without the agent")
	assert.Equal(t, []string{scanned}, rep.Scan.Roots)
	assert.Positive(t, rep.Scan.FilesScanned)
	assert.Equal(t, "i-0a12000000000004", rep.Instance.InstanceID)
}
