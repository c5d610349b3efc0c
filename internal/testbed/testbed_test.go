package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// helperEnv makes the test binary, started by a test through Bed.Run, print its own network
// namespace and exit, so that Start/Run are tested without tools from the machine.
const helperEnv = "TESTBED_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "print-netns":
		link, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(link)
		os.Exit(0)
	case "sleep": // bounded, in case nobody kills it
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	netguard.TestMain(m)
}

// Time limits: generous where an answer is expected (a loaded machine, or a VM under software
// emulation, is slow, and these tests check outcomes, not speed); short where no answer is.
const (
	answerTimeout   = 20 * time.Second
	noAnswerTimeout = time.Second
)

// tokenPUT asks for a token with a plain net/http client, so the bed is tested without the
// project's client. It waits up to timeout for the answer.
func tokenPUT(t *testing.T, client *http.Client, host string, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+host+"/latest/api/token", nil)
	require.NoError(t, err)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		return errors.New("token PUT answered " + resp.Status)
	}
	return nil
}

var imdsHosts = []string{"169.254.169.254", "[fd00:ec2::254]"}

// TestTopologyAndHopLimit checks the bed's reason to exist: the instance is one hop from IMDS,
// the container two, so a token answer sent with hop limit 1 reaches the instance and dies on
// the way to the container, while hop limit 2 reaches both. Over IPv4 and IPv6.
func TestTopologyAndHopLimit(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{HopLimit: 1})
	t.Cleanup(srv.Close)
	require.NoError(t, bed.ServeIMDS(srv))

	inst := bed.HTTPClient(testbed.Instance, answerTimeout)
	ctr := bed.HTTPClient(testbed.Container, answerTimeout)
	for _, host := range imdsHosts {
		require.NoError(t, tokenPUT(t, inst, host, answerTimeout), "instance via %s", host)
		// The container reaches IMDS (the TCP handshake works, its packets carry the default
		// TTL) but the token answer, sent with hop limit 1, dies at the instance's forwarding.
		c, err := bed.DialContext(testbed.Container)(context.Background(), "tcp", host+":80")
		require.NoError(t, err, "container connects to %s", host)
		c.Close()
		err = tokenPUT(t, ctr, host, noAnswerTimeout)
		require.Error(t, err, "container token PUT to %s must get no answer at hop limit 1", host)
	}

	srv.Update(func(c *imdstest.Config) { c.HopLimit = 2 })
	for _, host := range imdsHosts {
		require.NoError(t, tokenPUT(t, ctr, host, answerTimeout), "container via %s at hop limit 2", host)
	}
	ctr4, ctr6 := testbed.ContainerAddrs()
	inst4, inst6 := testbed.InstanceAddrs()
	from := map[string]bool{}
	for _, r := range srv.Requests() {
		from[r.Remote.Addr().String()] = true
	}
	for _, a := range []string{ctr4.String(), ctr6.String(), inst4.String(), inst6.String()} {
		require.True(t, from[a], "no request from %s in the emulator's log: %v", a, from)
	}
	require.Len(t, from, 4, "requests from addresses outside the bed: %v", from)
}

// TestNoRouteFromCallerNamespace proves the addresses live only in the bed: the test process's
// own namespace (netguard's private one) has no way to them.
func TestNoRouteFromCallerNamespace(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	ln, err := bed.Listen(testbed.IMDS, "tcp4", "169.254.169.254:0")
	require.NoError(t, err)
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	if netguard.Active() { // never dial from the machine's real namespace
		c, err := (&http.Client{Timeout: 200 * time.Millisecond}).Get("http://169.254.169.254:" + port + "/")
		if err == nil {
			c.Body.Close()
		}
		require.Error(t, err, "the bed's IMDS address answered from outside the bed")
	}
	c, err := bed.DialContext(testbed.Instance)(context.Background(), "tcp", "169.254.169.254:"+port)
	require.NoError(t, err)
	c.Close()
}

func bedNames(bed *testbed.Bed) []string {
	return []string{bed.Name(testbed.IMDS), bed.Name(testbed.Instance), bed.Name(testbed.Container)}
}

// requireGone checks that `ip netns list` (the directory it reads) holds none of the names.
func requireGone(t *testing.T, names []string) {
	t.Helper()
	entries, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	require.NoError(t, err)
	for _, e := range entries {
		for _, n := range names {
			require.NotEqual(t, n, e.Name(), "namespace left behind")
		}
	}
}

func TestCloseRemovesEverythingAfterFailure(t *testing.T) {
	testbed.Require(t)
	bed, err := testbed.New(testbed.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bed.Close() })
	names := bedNames(bed)
	for _, n := range names {
		require.FileExists(t, filepath.Join("/var/run/netns", n))
		require.Equal(t, filepath.Join("/var/run/netns", n), bed.Path(map[string]testbed.NS{
			names[0]: testbed.IMDS, names[1]: testbed.Instance, names[2]: testbed.Container}[n]))
	}
	ln, err := bed.Listen(testbed.IMDS, "tcp", "169.254.169.254:0")
	require.NoError(t, err)
	boom := errors.New("boom")
	require.ErrorIs(t, bed.Do(testbed.Instance, func() error { return boom }), boom)
	require.NoError(t, bed.Close())
	require.NoError(t, bed.Close(), "Close twice")
	requireGone(t, names)
	_, err = ln.Accept()
	require.Error(t, err, "Close closes the bed's listeners")
	require.Error(t, bed.Do(testbed.Instance, func() error { return nil }), "Do after Close")
}

func TestCloseAfterPanicInDo(t *testing.T) {
	testbed.Require(t)
	bed, err := testbed.New(testbed.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bed.Close() })
	names := bedNames(bed)
	before, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)

	// A recovered panic must leave this goroutine back in its own namespace, unlocked.
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		_ = bed.Do(testbed.Container, func() error { panic("boom") })
	}()
	after, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)
	require.Equal(t, before, after, "the panicking Do left the thread in the container namespace")

	require.NoError(t, bed.Close())
	requireGone(t, names)
}

// TestNewFailsCleanly makes New fail half-way: the prefix is so long that the first two
// namespace names fit the 255-byte file name limit and the third does not. What was built must
// be gone.
func TestNewFailsCleanly(t *testing.T) {
	testbed.Require(t)
	// base = prefix-<pid>-<6 hex>; "-instance" (9) must fit, "-container" (10) must not.
	prefixLen := 255 - 9 - len("-"+strconv.Itoa(os.Getpid())+"-123456")
	prefix := "imdsv2long" + strings.Repeat("x", prefixLen-len("imdsv2long"))
	bed, err := testbed.New(testbed.Config{Prefix: prefix})
	require.Error(t, err)
	require.Nil(t, bed)
	entries, err := os.ReadDir("/var/run/netns")
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), prefix+"-"+strconv.Itoa(os.Getpid())+"-"), "left behind: %s", e.Name())
	}
}

func TestDoKeepsCallerNamespace(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	before, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)
	seen := map[string]testbed.NS{}
	for _, ns := range []testbed.NS{testbed.IMDS, testbed.Instance, testbed.Container} {
		var inside string
		require.NoError(t, bed.Do(ns, func() error {
			inside, err = os.Readlink("/proc/thread-self/ns/net")
			return err
		}))
		require.NotEqual(t, before, inside, "%s is the caller's namespace", ns)
		_, dup := seen[inside]
		require.False(t, dup, "%s shares a namespace with %s", ns, seen[inside])
		seen[inside] = ns
	}
	for range 20 { // the runtime may move us between threads: every one must be in our ns
		after, err := os.Readlink("/proc/thread-self/ns/net")
		require.NoError(t, err)
		require.Equal(t, before, after)
	}
}

// TestRunInheritsNamespace starts this test binary as a child in each namespace; it prints the
// namespace it runs in, which must be the one Do sees.
func TestRunInheritsNamespace(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, ns := range []testbed.NS{testbed.IMDS, testbed.Instance, testbed.Container} {
		var want string
		require.NoError(t, bed.Do(ns, func() error {
			want, err = os.Readlink("/proc/thread-self/ns/net")
			return err
		}))
		var out strings.Builder
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=print-netns")
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, bed.Run(ns, cmd), "output: %s", out.String())
		require.Equal(t, want, out.String(), "child started in %s runs elsewhere", ns)
	}

	// Start: Close kills what still runs.
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	require.NoError(t, bed.Start(testbed.Container, cmd))
	require.NoError(t, bed.Close())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.Error(t, err, "killed process exits with an error")
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("Close did not kill the process the bed started")
	}
}
