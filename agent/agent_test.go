//go:build linux

package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/hostns"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// As root the tests run in a private network namespace with only loopback.
func TestMain(m *testing.M) { netguard.TestMain(m) }

// guard bounds the waits of these tests: a deadlock guard, not a performance claim.
const guard = time.Minute

// TestHostPaths: host paths that are not there are refused before anything is loaded; given
// ones name callers from the host's /proc and are recorded in the coverage.
func TestHostPaths(t *testing.T) {
	_, err := Start(Options{Cgroup: "/nonexistent/imdsv2-test", Host: hostns.Paths{Proc: "/nonexistent/host/proc"}})
	var se *StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StepHost, se.Step)
	assert.ErrorContains(t, err, "/nonexistent/host/proc")

	assert.Nil(t, processTable(hostns.Paths{}), "without host paths the auditor keeps its own table")
	assert.NotNil(t, processTable(hostns.Paths{Proc: "/proc"}))
	f, err := hostFacts(hostns.Paths{Proc: "/proc"}, false)
	require.NoError(t, err)
	assert.True(t, f.HostProc)
	assert.False(t, f.HostCgroup)
}

// TestStartErrors: each step's failure says which step, and a corrupt state file stops Start
// before anything touches the kernel.
func TestStartErrors(t *testing.T) {
	state := t.TempDir() + "/audit.json"
	require.NoError(t, writeFile(state, "{not json"))
	_, err := Start(Options{Cgroup: "/nonexistent/imdsv2-test", Audit: audit.Options{StateFile: state}})
	var se *StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StepState, se.Step)
	assert.ErrorIs(t, err, audit.ErrCorruptState)

	privtest.Require(t)
	// An agent that fails to start leaves the state file to the next one.
	fresh := t.TempDir() + "/audit.json"
	for range 2 {
		_, err = Start(Options{Cgroup: "/nonexistent/imdsv2-test", Audit: audit.Options{StateFile: fresh}})
		require.ErrorAs(t, err, &se)
		assert.Equal(t, StepAttach, se.Step)
	}
	_, err = Start(Options{Cgroup: "/nonexistent/imdsv2-test"})
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StepAttach, se.Step)
	assert.ErrorContains(t, err, `attach the auditor to cgroup "/nonexistent/imdsv2-test"`)
}

// TestStop: the same agent stops on a condition (a request seen), on a duration, and at
// once with Close; the request seen is in the summary Wait returns, and the coverage records
// how this process saw the host.
func TestStop(t *testing.T) {
	privtest.Require(t)
	cg := cgroup.ForTest(t)
	port, url := fakeIMDS(t)
	options := func(stop Stop) Options {
		return Options{Cgroup: cg.Path(), Stop: stop,
			BPF: bpf.Options{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), Port: port}}
	}

	t.Run("until", func(t *testing.T) {
		v1 := func(a *Agent) bool {
			s, _ := a.Snapshot()
			return s.Requests[audit.ClassIMDSv1] > 0
		}
		a, err := Start(options(Stop{Until: v1, Settle: true}))
		require.NoError(t, err)
		t.Cleanup(a.Close)
		assert.Equal(t, cg.Path(), a.Features().Cgroup)
		s, watched := getAndWait(t, a, cg, url)
		assert.Equal(t, uint64(1), s.Requests[audit.ClassIMDSv1])
		assert.Positive(t, watched)
		require.NotEmpty(t, s.Coverage.Spans)
		assert.Equal(t, a.Facts(), *s.Coverage.Spans[0].Agent)
		select {
		case <-a.Stopping():
		default:
			t.Error("Stopping is not closed after Wait")
		}
	})

	t.Run("after", func(t *testing.T) {
		a, err := Start(options(Stop{After: time.Millisecond}))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, _, err = a.Wait(ctx)
		require.NoError(t, err)
		require.NoError(t, ctx.Err(), "Wait ended at the guard, not after its duration")
		a.Close() // after Wait: nothing left to do
	})

	t.Run("close", func(t *testing.T) {
		a, err := Start(options(Stop{}))
		require.NoError(t, err)
		a.Close()
		a.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err = a.Wait(ctx)
		assert.False(t, errors.Is(err, context.Canceled), "a stop is not an error: %v", err)
	})
}

// getAndWait runs curl on url in cg and waits for a, which must stop on the request seen.
func getAndWait(t *testing.T, a *Agent, cg *cgroup.Group, url string) (*audit.Summary, time.Duration) {
	t.Helper()
	get := exec.Command("curl", "-sS", "-m", "30", url)
	cg.Prepare(get)
	out, err := get.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	s, watched, err := a.Wait(ctx)
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "Wait ended at the guard, not when the request was seen")
	return s, watched
}

// fakeIMDS serves an instance id on a loopback port until the test ends; it returns the port
// and the URL of the instance id.
func fakeIMDS(t *testing.T) (uint16, string) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "i-0123456789abcdef0")
	}), ReadHeaderTimeout: guard}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port), "http://" + ln.Addr().String() + "/latest/meta-data/instance-id"
}

// TestHostProcNamesHostNetns: given the host's /proc (an agent in a pod without
// hostNetwork), the host's network namespace is its pid 1's, not the agent's own. The "host"
// here is a pid and network namespace of the test's making, whose /proc the agent is given;
// the caller runs beside the agent, so it has a network of its own. With the agent's namespace
// taken for the host's it was reported as the host's.
func TestHostProcNamesHostNetns(t *testing.T) {
	privtest.Require(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		privtest.Unavailable(t, "unshare (util-linux) not found: "+err.Error())
	}
	host := exec.Command(unshare, "--net", "--pid", "--fork", "--mount-proc", "/bin/sleep", "600")
	host.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, host.Start())
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })
	hostProc := "/proc/" + strconv.Itoa(host.Process.Pid) + "/root/proc"
	initNet := hostProc + "/1/ns/net"
	for deadline := time.Now().Add(guard); ; time.Sleep(10 * time.Millisecond) { // its /proc is mounted after the fork
		if _, err := os.Stat(initNet); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the test's host /proc: %v", err)
		}
	}
	cg := cgroup.ForTest(t)
	port, url := fakeIMDS(t)
	var (
		mu      sync.Mutex
		records []audit.Record
	)
	seen := func(*Agent) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(records) > 0
	}
	a, err := Start(Options{Cgroup: cg.Path(), Host: hostns.Paths{Proc: hostProc}, Stop: Stop{Until: seen},
		BPF: bpf.Options{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), Port: port},
		Audit: audit.Options{OnRecord: func(r audit.Record) {
			mu.Lock()
			defer mu.Unlock()
			records = append(records, r)
		}}})
	require.NoError(t, err)
	t.Cleanup(a.Close)
	getAndWait(t, a, cg, url)
	mu.Lock()
	defer mu.Unlock()
	p := records[0].Process
	assert.False(t, p.HostNetwork, "caller in the agent's own namespace: %+v", p)
	if err := netnsCookieReadable(); err != nil {
		// The test's host is not the initial namespace, which is all a kernel before 5.14 can
		// name (bpf.TestInitNetnsFromHostProc): the caller's network is left undecided.
		t.Logf("this kernel cannot name the test's host namespace (%v): checked only that the caller is not called the host's", err)
		assert.False(t, p.OtherNetwork, "caller whose namespace cannot be named: %+v", p)
		return
	}
	assert.True(t, p.OtherNetwork, "caller in the agent's own namespace: %+v", p)
}

// netnsCookieReadable reports whether this kernel tells a network namespace's cookie
// (SO_NETNS_COOKIE, Linux 5.14).
func netnsCookieReadable() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	return err
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
