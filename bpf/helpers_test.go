//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// waitLimit bounds every wait for an event; it is a deadlock guard, not a performance claim.
const waitLimit = 20 * time.Second

// Hop limits the fake IMDS answers with, so the tests can tell them from the default 64.
const (
	serverTTL      = 7
	serverHopLimit = 9
)

// fakeIMDS is an HTTP server on 127.0.0.1 and [::1] at the same port, standing in for IMDS;
// it answers with IP TTL serverTTL and IPv6 hop limit serverHopLimit.
type fakeIMDS struct {
	port uint16
	srv  *http.Server
}

func startFakeIMDS(t *testing.T) *fakeIMDS {
	t.Helper()
	var ln4, ln6 net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port := ln4.Addr().(*net.TCPAddr).Port
		if ln6, err = net.Listen("tcp6", "[::1]:"+strconv.Itoa(port)); err == nil {
			break
		}
		ln4.Close()
		if attempt == 10 {
			t.Fatalf("no port free on both 127.0.0.1 and ::1: %v", err)
		}
	}
	s := &fakeIMDS{port: uint16(ln4.Addr().(*net.TCPAddr).Port)}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "i-0123456789abcdef0 "+r.URL.Path)
		}),
		// Generous: TestSocketConnectedBeforeAttach holds a connection open while the agent
		// loads, which takes many seconds on a loaded machine under -race.
		ReadHeaderTimeout: 2 * time.Minute,
	}
	for _, ln := range []net.Listener{ln4, ln6} {
		go s.srv.Serve(hopLimitListener{ln})
	}
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *fakeIMDS) url(host string) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(int(s.port))) + "/latest/meta-data/instance-id"
}

// hopLimitListener sets the TTL / hop limit of accepted connections, as IMDS does for its
// token answers.
type hopLimitListener struct{ net.Listener }

func (l hopLimitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if c.LocalAddr().(*net.TCPAddr).IP.To4() != nil {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, serverTTL)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, serverHopLimit)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// bed is an agent attached to a test cgroup, with a fake IMDS on loopback and a goroutine
// that collects everything the agent reports.
type bed struct {
	agent *Agent
	cg    *cgroup.Group
	imds  *fakeIMDS
	ev    *collector
}

func newBed(t *testing.T, opts Options) *bed {
	t.Helper()
	privtest.Require(t)
	b := &bed{imds: startFakeIMDS(t), cg: cgroup.ForTest(t)}
	opts.IPv4 = netip.MustParseAddr("127.0.0.1")
	opts.IPv6 = netip.MustParseAddr("::1")
	opts.Port = b.imds.port
	agent, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.agent = agent
	if err := agent.Attach(b.cg.Path()); err != nil {
		agent.Close()
		t.Fatal(err)
	}
	b.ev = collect(t, agent)
	return b
}

// child returns a command that runs the test binary as a workload in the given mode.
func child(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"child"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run runs cmd inside the bed's cgroup and fails the test if it fails.
func (b *bed) run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := b.cg.Run(cmd); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
}

// collector gathers events from an Agent until the test ends.
type collector struct {
	mu     sync.Mutex
	events []audit.Event
	err    error
}

func collect(t *testing.T, a *Agent) *collector {
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := a.Next(ctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
					c.mu.Lock()
					c.err = err
					c.mu.Unlock()
				}
				return
			}
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if c.err != nil {
			t.Errorf("Next: %v", c.err)
		}
	})
	return c
}

func (c *collector) snapshot() []audit.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]audit.Event(nil), c.events...)
}

// waitFor waits until ok holds for the events collected so far and returns them.
func (c *collector) waitFor(t *testing.T, what string, ok func([]audit.Event) bool) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		evs := c.snapshot()
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v; events:\n%s", what, waitLimit, dump(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dump(evs []audit.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %-7s pid=%d ppid=%d comm=%q cookie=%d %v->%v seq=%d len=%d/%d ttl=%d exe=%q args=%q lost=%d data=%q\n",
			e.Kind, e.PID, e.PPID, e.Comm, e.Cookie, e.Local, e.Remote, e.Seq, len(e.Data), e.DataLen, e.TTL, e.Exe, e.Args, e.Lost, e.Data)
	}
	return b.String()
}

// filter returns the events of kind k that match.
func filter(evs []audit.Event, k audit.EventKind, match func(audit.Event) bool) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if e.Kind == k && (match == nil || match(e)) {
			out = append(out, e)
		}
	}
	return out
}

func byPID(pid int) func(audit.Event) bool {
	return func(e audit.Event) bool { return e.PID == uint32(pid) }
}

func hasData(s string) func(audit.Event) bool {
	return func(e audit.Event) bool { return strings.Contains(string(e.Data), s) }
}

func count(k audit.EventKind, match func(audit.Event) bool, n int) func([]audit.Event) bool {
	return func(evs []audit.Event) bool { return len(filter(evs, k, match)) >= n }
}

// comm is what the kernel calls the test binary: its base name cut to 15 bytes.
func comm() string {
	name := os.Args[0][strings.LastIndexByte(os.Args[0], '/')+1:]
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// startPiped starts cmd with start (a cgroup's Start, or cmd.Start) and returns its stdin and
// stdout. The process is killed when the test ends, if it is still there.
func startPiped(tb testing.TB, cmd *exec.Cmd, start func(*exec.Cmd) error) (io.WriteCloser, *bufio.Reader) {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := start(cmd); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); stdin.Close() })
	return stdin, bufio.NewReader(stdout)
}

// startCmd starts cmd where the test runs: outside any test cgroup.
func startCmd(cmd *exec.Cmd) error { return cmd.Start() }

// expectLine reads a line from a child's stdout and fails the test unless it is want.
func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	if line, err := r.ReadString('\n'); err != nil || line != want+"\n" {
		t.Fatalf("child said %q, %v; want %q", line, err, want)
	}
}

// until polls cond every 5 ms and fails the test with what (and cond's last error) when it has
// not held within waitLimit.
func until(t *testing.T, what string, cond func() error) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(5 * time.Millisecond) {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// netnsHolder starts a process in a network namespace of its own, which lives until the test
// ends, and returns the namespace's path.
func netnsHolder(t *testing.T) string {
	t.Helper()
	holder := exec.Command("/bin/sleep", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	return "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net"
}
