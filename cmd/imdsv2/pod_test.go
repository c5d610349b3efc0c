package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/hostns"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// podScript turns the process started by `unshare --cgroup --pid --mount --fork` into a pod
// with hostPath volumes: the "host" cgroup2 mount (a test cgroup, bound) and the host's /proc
// appear at the paths a DaemonSet would give them, then /proc and the cgroup2 mount become the
// pod's own. The cgroup2 mount point is covered with a mount of the pod's cgroup namespace, as
// in a container; so even an agent that wrongly attached to "the root of the hierarchy" would
// attach to the pod's test cgroup, never to the machine's root.
const podScript = `set -eu
mount --bind "$POD_HOST_CGROUP_SRC" "$POD_HOST_CGROUP"
mount --bind /proc "$POD_HOST_PROC"
mount -t proc proc /proc
umount --lazy "$POD_CGROUP_MOUNT"
mount -t cgroup2 cgroup2 "$POD_CGROUP_MOUNT"
exec "$@"
`

// pod is a test bed for the agent in a pod: a "host" cgroup with the pod's cgroup and a
// sibling cgroup for callers in it, the imdsv2 binary, and the test bed's emulator.
type pod struct {
	bin, hostProc, hostCgroup string
	host, self, callers       *cgroup.Group
	bed                       *testbed.Bed
}

func newPod(t *testing.T) *pod {
	t.Helper()
	testbed.Require(t)
	privtest.RequireCaps(t, privtest.CapBPF, privtest.CapPerfmon, privtest.CapNetAdmin)
	for _, tool := range []string{"unshare", "mount", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			privtest.Unavailable(t, tool+" is not installed (util-linux, curl)")
		}
	}
	p := &pod{bin: filepath.Join(t.TempDir(), "imdsv2"), hostProc: t.TempDir(), hostCgroup: t.TempDir()}
	buildBinary(t, p.bin)
	p.bed = testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	require.NoError(t, p.bed.ServeIMDS(srv))
	p.host = cgroup.ForTest(t)
	var err error
	for _, g := range []**cgroup.Group{&p.self, &p.callers} {
		*g, err = cgroup.New(p.host.Path(), "")
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, (*g).Remove()) })
	}
	return p
}

// command returns `imdsv2 args...` to run in the pod, in the test bed's instance namespace.
func (p *pod) command(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	mnt, err := cgroup.Mountpoint()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--cgroup", "--pid", "--mount", "--fork", "--kill-child", "--propagation", "private",
		"sh", "-c", podScript, "pod", p.bin}, args...)...)
	cmd.Env = append(os.Environ(), "POD_HOST_CGROUP_SRC="+p.host.Path(), "POD_HOST_CGROUP="+p.hostCgroup,
		"POD_HOST_PROC="+p.hostProc, "POD_CGROUP_MOUNT="+mnt, "IMDSV2_HOST_PROC=", "IMDSV2_HOST_CGROUP=")
	p.self.Prepare(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.WaitDelay = time.Second // the pod's processes hold the pipes; unshare --kill-child ends them
	return cmd
}

// TestAuditInPod: `imdsv2 audit` in its own cgroup and pid namespaces refuses to audit "the whole
// host" without the host's paths, and with them sees and names a caller in a sibling cgroup.
func TestAuditInPod(t *testing.T) {
	p := newPod(t)
	ctx, cancel := context.WithTimeout(context.Background(), auditWait)
	defer cancel()

	out, err := p.command(t, ctx, "audit", "--duration", "1s").CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "audit without the host paths: %v\n%s", err, out)
	assert.Equal(t, exitUsage, exit.ExitCode(), "%s", out)
	for _, want := range []string{"own cgroup namespace", "own pid namespace", "hostPID: true", "--host-cgroup /host/sys/fs/cgroup", "--host-proc /host/proc"} {
		assert.Contains(t, string(out), want)
	}
	assert.NotContains(t, string(out), "attached")

	cmd := p.command(t, ctx, "audit", "--duration", "0", "--output", "json", "--host-proc", p.hostProc, "--host-cgroup", p.hostCgroup)
	var errb syncBuffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.bed.Start(testbed.Instance, cmd))
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // unshare; the agent dies with the pod's cgroup (Remove kills it)
		_ = cmd.Wait()
	})
	waitForMatch(t, &errb, regexp.MustCompile(`(watching)`))
	assert.Contains(t, errb.String(), "cgroup:          "+p.hostCgroup, "attached at the root of --host-cgroup")
	assert.Contains(t, errb.String(), "cgroup own, pid own; host paths: /proc given, cgroup2 given")

	url := "http://169.254.169.254/latest/meta-data/instance-id"
	curl := exec.Command("curl", "-sS", "-m", "60", url)
	p.callers.Prepare(curl)
	curl.SysProcAttr.Pdeathsig = syscall.SIGKILL
	require.NoError(t, p.bed.Run(testbed.Instance, curl))

	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	var rec audit.Record
	found := false
	for !found && lines.Scan() {
		require.NoError(t, json.Unmarshal(lines.Bytes(), &rec), lines.Text())
		found = rec.Process.PID == uint32(curl.Process.Pid)
	}
	require.True(t, found, "no record of the caller (pid %d); stderr:\n%s", curl.Process.Pid, errb.String())
	assert.Equal(t, audit.ClassIMDSv1, rec.Class)
	assert.Contains(t, rec.Process.Cmdline, url)
	// Named as on the host: its cgroup relative to the "host" hierarchy, its parent (this
	// test, which the pod's /proc does not show) read from the host's /proc.
	assert.Equal(t, "/"+filepath.Base(p.callers.Path()), rec.Process.Cgroup)
	require.NotEmpty(t, rec.Process.Parents)
	assert.Equal(t, uint32(os.Getpid()), rec.Process.Parents[0].PID)
	assert.NotEmpty(t, rec.Process.Parents[0].Cmdline, "the parent's command line comes from the host's /proc")

	// Stopped (SIGTERM, as Kubernetes does), its summary records what it watched: the root of
	// the "host" mount, which is not the machine's root, from a pod that had the host paths.
	agentPID := p.agentPID(t)
	require.NoError(t, syscall.Kill(agentPID, syscall.SIGTERM))
	var last string
	for lines.Scan() {
		last = lines.Text()
	}
	var sum struct {
		Type string `json:"type"`
		audit.Summary
	}
	require.NoError(t, json.Unmarshal([]byte(last), &sum), last)
	require.Equal(t, "summary", sum.Type)
	cov := sum.Coverage
	require.Len(t, cov.Spans, 1, "%+v", cov)
	assert.Equal(t, "/", cov.Spans[0].Watch.Path)
	assert.Equal(t, p.host.ID(), cov.Spans[0].Watch.CgroupID)
	assert.False(t, cov.Spans[0].Watch.HostRoot, "a bound subtree is not the host's root")
	assert.False(t, cov.WholeHost)
	require.NotNil(t, cov.Spans[0].Agent)
	assert.Equal(t, hostns.Facts{HostProc: true, HostCgroup: true}, *cov.Spans[0].Agent)
}

// agentPID finds the imdsv2 process in the pod's cgroup.
func (p *pod) agentPID(t *testing.T) int {
	t.Helper()
	pids, err := p.self.Procs()
	require.NoError(t, err)
	for _, pid := range pids {
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil && string(comm) == "imdsv2\n" {
			return pid
		}
	}
	t.Fatalf("no imdsv2 process among %v", pids)
	return 0
}

// TestReadyInPodUndecided: `imdsv2 ready` in a pod without the host's paths does not decide
// (exit 2) and says why, instead of judging the pod's own cgroup as the instance.
func TestReadyInPodUndecided(t *testing.T) {
	p := newPod(t)
	ctx, cancel := context.WithTimeout(context.Background(), auditWait)
	defer cancel()
	cmd := p.command(t, ctx, "ready", "--duration", "1s", "--scan=false")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := p.bed.Run(testbed.Instance, cmd)
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "ready without the host paths: %v\n%s", err, out.String())
	assert.Equal(t, 2, exit.ExitCode(), "%s", out.String())
	assert.Contains(t, out.String(), "own cgroup namespace")
	assert.NotContains(t, out.String(), "auditing IMDS requests")
}
