//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// TestRequestIsReported runs a curl-like child in the test cgroup against the fake IMDS over
// IPv4 and IPv6 and checks every event of the conversation: who connected (pid, comm, cgroup),
// the request bytes, the answer's status line and TTL, the exec record with argv and parent,
// the socket's release and the process's exit.
func TestRequestIsReported(t *testing.T) {
	b := newBed(t, Options{})
	for _, tt := range []struct {
		host string
		ttl  uint8
	}{{"127.0.0.1", serverTTL}, {"::1", serverHopLimit}} {
		t.Run(tt.host, func(t *testing.T) {
			marker := "m-" + strconv.Itoa(os.Getpid()) + "-" + tt.host
			cmd := child("get", b.imds.url(tt.host), marker)
			b.run(t, cmd)
			pid := cmd.Process.Pid
			imds := netip.AddrPortFrom(netip.MustParseAddr(tt.host), b.imds.port)

			evs := b.ev.waitFor(t, "connect, send, recv, close, exec and exit of the child", func(evs []audit.Event) bool {
				return count(audit.EventConnect, byPID(pid), 1)(evs) &&
					count(audit.EventSend, hasData(marker), 1)(evs) &&
					count(audit.EventRecv, byPID(pid), 1)(evs) &&
					count(audit.EventClose, byPID(pid), 1)(evs) &&
					count(audit.EventExec, byPID(pid), 1)(evs) &&
					count(audit.EventExit, byPID(pid), 1)(evs)
			})
			conn := filter(evs, audit.EventConnect, byPID(pid))[0]
			if conn.Comm != comm() || conn.Remote != imds || conn.Cookie == 0 || conn.CgroupID != b.cg.ID() ||
				conn.UID != uint32(os.Getuid()) || conn.TID == 0 || conn.Time.IsZero() ||
				conn.NoConnect || conn.V4Mapped || (netnsKnown() && (conn.NetnsCookie == 0 || !conn.HostNetns)) {
				t.Errorf("connect event = %+v; want comm %q, remote %v, a cookie, cgroup %d, uid %d, the host's network namespace",
					conn, comm(), imds, b.cg.ID(), os.Getuid())
			}
			send := filter(evs, audit.EventSend, hasData(marker))[0]
			wantReq := "GET /latest/meta-data/instance-id HTTP/1.1\r\n"
			if send.PID != uint32(pid) || send.Cookie != conn.Cookie || !strings.HasPrefix(string(send.Data), wantReq) ||
				send.Remote != imds || send.Local.Port() == 0 || send.Local.Addr() != imds.Addr() ||
				int(send.DataLen) != len(send.Data) || send.Seq == 0 ||
				send.NetnsCookie != conn.NetnsCookie || send.HostNetns != conn.HostNetns || send.Truncated {
				t.Errorf("send event = %+v; want pid %d, cookie %d, data starting %q, whole request", send, pid, conn.Cookie, wantReq)
			}
			recv := filter(evs, audit.EventRecv, byPID(pid))[0]
			if !strings.HasPrefix(string(recv.Data), "HTTP/1.1 200 OK\r\n") || recv.TTL != tt.ttl ||
				recv.Cookie != conn.Cookie || recv.Local != send.Local || len(recv.Data) != 64 || recv.DataLen <= 64 {
				t.Errorf("recv event = %+v; want status line, TTL %d, 64 of more bytes", recv, tt.ttl)
			}
			exec := filter(evs, audit.EventExec, byPID(pid))[0]
			if exec.PPID != uint32(os.Getpid()) || exec.Exe != cmd.Path || !slices.Equal(exec.Args, cmd.Args) ||
				exec.Comm != comm() || exec.CgroupID != b.cg.ID() || exec.Cookie != 0 {
				t.Errorf("exec event = %+v; want ppid %d, exe %q, args %q", exec, os.Getpid(), cmd.Path, cmd.Args)
			}
			if cl := filter(evs, audit.EventClose, byPID(pid))[0]; cl.Cookie != conn.Cookie {
				t.Errorf("close event cookie %d, want %d", cl.Cookie, conn.Cookie)
			}
			if ex := filter(evs, audit.EventExit, byPID(pid))[0]; ex.PPID != uint32(os.Getpid()) {
				t.Errorf("exit event = %+v, want ppid %d", ex, os.Getpid())
			}
			if !send.Time.After(conn.Time) || recv.Time.Before(send.Time) || exec.Time.After(conn.Time) {
				t.Errorf("times out of order: exec %v connect %v send %v recv %v", exec.Time, conn.Time, send.Time, recv.Time)
			}
		})
	}
}

// TestShortLivedProcessKeepsArgvAndParent: a shell starts a child that sends its request and
// exits at once, before any answer and long before anyone could read /proc; its exec record
// still names it, its argv and its parent, the shell.
func TestShortLivedProcessKeepsArgvAndParent(t *testing.T) {
	b := newBed(t, Options{})
	marker := "short-" + strconv.Itoa(os.Getpid())
	inner := child("send-exit", "127.0.0.1:"+strconv.Itoa(int(b.imds.port)), marker)
	// "; exit 0" keeps the shell from exec'ing the command in place: it must fork a child.
	sh := child()
	sh.Path, sh.Args = "/bin/sh", []string{"sh", "-c", `"$0" "$@"; exit 0`, inner.Path}
	sh.Args = append(sh.Args, inner.Args[1:]...)
	b.run(t, sh)

	evs := b.ev.waitFor(t, "the short-lived child's send", count(audit.EventSend, hasData(marker), 1))
	send := filter(evs, audit.EventSend, hasData(marker))[0]
	if _, err := os.Stat("/proc/" + strconv.Itoa(int(send.PID))); !os.IsNotExist(err) {
		t.Fatalf("child %d still exists (%v); the test needs it gone", send.PID, err)
	}
	evs = b.ev.waitFor(t, "its exec", count(audit.EventExec, byPID(int(send.PID)), 1))
	exec := filter(evs, audit.EventExec, byPID(int(send.PID)))[0]
	if exec.PPID != uint32(sh.Process.Pid) || !slices.Equal(exec.Args, inner.Args) || exec.Exe != inner.Path {
		t.Errorf("exec of the short-lived child = %+v; want parent %d (the shell), args %q", exec, sh.Process.Pid, inner.Args)
	}
	shell := filter(evs, audit.EventExec, byPID(sh.Process.Pid))
	if len(shell) != 1 || shell[0].PPID != uint32(os.Getpid()) || shell[0].Exe != "/bin/sh" {
		t.Errorf("exec of the shell = %+v; want one, parent %d", shell, os.Getpid())
	}
}

// TestLongCommandLines: an exec record holds its first EXEC_SHORT bytes of executable and
// argv itself; a longer command line is kept whole in exec_long and reported whole, up to
// ARGV_MAX bytes of argv (beyond: cut, marked truncated, with its full length). Where exec_long
// lost a record, the record's own first bytes are reported, marked truncated.
func TestLongCommandLines(t *testing.T) {
	b := newBed(t, Options{})
	url := b.imds.url("127.0.0.1")
	pad := func(n int) string { return strings.Repeat("x", n) }
	for _, tt := range []struct {
		name      string
		padding   int
		lost      bool // exec_long's entry deleted before the process connects
		truncated bool
	}{
		{"fits the record", 100, false, false},
		{"longer than the record", 1500, false, false},
		{"longer than ARGV_MAX", 3000, false, true},
		{"exec_long lost it", 1500, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := child("wait-get", url, "long-"+tt.name, pad(tt.padding))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := b.cg.Start(cmd); err != nil {
				t.Fatal(err)
			}
			pid := uint32(cmd.Process.Pid)
			if tt.lost {
				long := b.agent.coll.Maps[imdsMapExecLong]
				until(t, fmt.Sprintf("delete pid %d's exec_long entry", pid), func() error { return long.Delete(pid) })
			}
			io.WriteString(stdin, "go\n")
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%v: %v", cmd.Args[:3], err)
			}
			evs := b.ev.waitFor(t, "its exec", count(audit.EventExec, byPID(int(pid)), 1))
			ev := filter(evs, audit.EventExec, byPID(int(pid)))[0]
			whole := strings.Join(cmd.Args, "\x00") + "\x00"
			got := strings.Join(ev.Args, "\x00")
			switch {
			case ev.Truncated != tt.truncated || int(ev.DataLen) != len(whole):
				t.Errorf("exec record truncated %v, argv length %d; want %v, %d", ev.Truncated, ev.DataLen, tt.truncated, len(whole))
			case !tt.truncated && !slices.Equal(ev.Args, cmd.Args):
				t.Errorf("argv of %d bytes reported as %d bytes", len(whole), len(got))
			case tt.truncated && (!strings.HasPrefix(whole, got) || len(got) >= len(whole)):
				t.Errorf("argv reported as %d bytes %.40q...; want a prefix of the %d bytes", len(got), got, len(whole))
			case tt.lost && len(ev.Exe)+1+len(got) > int(imdsCaptureLimitCAPTURE_EXEC_SHORT):
				t.Errorf("argv of %d bytes after exec_long lost the record; want at most the record's own %d", len(got), imdsCaptureLimitCAPTURE_EXEC_SHORT)
			}
		})
	}
}

// TestLineageStopsAtAnotherStart: the exec record under a caller's parent pid is followed only
// when its start is the one the caller's record names: a record of another start is of a
// later holder of the pid (the parent exited), and is not reported as the parent. The
// parent's record is planted in the table (the test binary executed before the agent), once
// with the parent's start and once with another.
func TestLineageStopsAtAnotherStart(t *testing.T) {
	for _, same := range []bool{true, false} {
		t.Run(fmt.Sprintf("same start=%v", same), func(t *testing.T) {
			b := newBed(t, Options{})
			cmd := child("wait-get", b.imds.url("127.0.0.1"), "lineage")
			stdin, stdout := startPiped(t, cmd, b.cg.Start)
			expectLine(t, stdout, "waiting")
			execs, pid, ppid := b.agent.coll.Maps[imdsMapExecs], uint32(cmd.Process.Pid), uint32(os.Getpid())
			var own imdsExecInfo
			if err := execs.Lookup(pid, &own); err != nil || own.Hdr.ParentStartNs == 0 || own.Hdr.Ppid != ppid {
				t.Fatalf("exec record of the child: %+v, %v; want one naming its parent %d and its start", own.Hdr, err, ppid)
			}
			planted := imdsExecInfo{Hdr: imdsEvent{Kind: uint8(imdsEventKindEVENT_EXEC), StartNs: own.Hdr.ParentStartNs,
				TimeNs: own.Hdr.ParentStartNs, Ppid: 1, CapLen: 1, AuxLen: 1}}
			planted.Hdr.Id.Pid = ppid
			if !same {
				planted.Hdr.StartNs += uint64(time.Minute)
			}
			if err := execs.Put(ppid, &planted); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = execs.Delete(ppid) })
			io.WriteString(stdin, "go\n")
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			evs := b.ev.waitFor(t, "the child's connect", count(audit.EventConnect, byPID(int(pid)), 1))
			if got := len(filter(evs, audit.EventExec, byPID(int(ppid)))); got != map[bool]int{true: 1, false: 0}[same] {
				t.Errorf("%d exec records of the parent pid %d reported; want %d", got, ppid, map[bool]int{true: 1, false: 0}[same])
			}
		})
	}
}

// TestExecAfterLeavingCgroup: a process executed inside the watched cgroup, moved out of it,
// then executed another program: its exec record is of an image it no longer runs, and goes.
func TestExecAfterLeavingCgroup(t *testing.T) {
	b := newBed(t, Options{})
	elsewhere := cgroup.ForTest(t)
	cmd := child("wait-exec", "/bin/cat", "cat")
	stdin, stdout := startPiped(t, cmd, b.cg.Start)
	expectLine(t, stdout, "waiting")
	execs, pid := b.agent.coll.Maps[imdsMapExecs], uint32(cmd.Process.Pid)
	var x imdsExecInfo
	if err := execs.Lookup(pid, &x); err != nil {
		t.Fatalf("no exec record of pid %d inside the cgroup: %v", pid, err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere.Path(), "cgroup.procs"), []byte(strconv.Itoa(int(pid))), 0o644); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n") // it executes cat, which waits on stdin too
	until(t, fmt.Sprintf("pid %d's exec record gone after its exec outside the cgroup", pid), func() error {
		if execs.Lookup(pid, &x) == nil {
			return fmt.Errorf("still there: %+v", x.Hdr.Id)
		}
		return nil
	})
	// The record went with the exec, not with an exit.
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm"); err != nil || string(comm) != "cat\n" {
		t.Fatalf("pid %d is not running cat: %q, %v", pid, comm, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("cat: %v", err)
	}
}

// TestExecFromAnotherThread: a process that called IMDS executes a program from a thread that
// is not its first (Go's syscall.Exec may): the kernel kills the leader thread first, which is
// not the process's exit. Its exit is reported once, at its real end; the new program's exec
// record follows the first, dated after it, and names the process's second request.
func TestExecFromAnotherThread(t *testing.T) {
	b := newBed(t, Options{})
	url := b.imds.url("127.0.0.1")
	cmd := child("thread-exec", url, "before-exec", "after-exec")
	b.run(t, cmd)
	pid := cmd.Process.Pid
	evs := b.ev.waitFor(t, "its exit", count(audit.EventExit, byPID(pid), 1))
	execs := filter(evs, audit.EventExec, byPID(pid))
	if len(execs) != 2 || !slices.Contains(execs[0].Args, "thread-exec") || !slices.Contains(execs[1].Args, "get") ||
		!execs[1].Time.After(execs[0].Time) {
		t.Fatalf("exec records of pid %d: %+v; want the first program's, then the second's, later", pid, execs)
	}
	conns := filter(evs, audit.EventConnect, byPID(pid))
	exits := filter(evs, audit.EventExit, byPID(pid))
	if len(conns) != 2 || len(exits) != 1 || exits[0].Time.Before(conns[1].Time) {
		t.Errorf("pid %d: %d connects, exits %+v; want 2 connects and one exit after the second", pid, len(conns), exits)
	}
	if execs[1].Start != execs[0].Start || execs[0].Start == 0 || execs[0].ParentStart > execs[0].Start {
		t.Errorf("starts: %v/%v and %v/%v; want one process start, after its parent's", execs[0].Start,
			execs[0].ParentStart, execs[1].Start, execs[1].ParentStart)
	}
	// The parent is this test process, which forks from whichever of its threads runs the
	// goroutine: its start is the process's, as /proc says, not that thread's.
	self, err := proc.New(proc.Config{}).Process(uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if !self.StartedAt(execs[0].ParentStart) {
		t.Errorf("parent start %v after boot; /proc says %d ticks", execs[0].ParentStart, self.StartTime)
	}
}

// TestExecScope: exec records are kept for the tasks of the watched cgroup only, and for every
// task when it is the root of the hierarchy (exec_all; the tests never attach there, execAll
// stands in for it). A process started outside the test's cgroup has a record only in the
// second case, and its exit removes it.
func TestExecScope(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all=%v", all), func(t *testing.T) {
			b := newBed(t, Options{execAll: all})
			cmd := child("wait-get", b.imds.url("127.0.0.1"), "scope")
			stdin, stdout := startPiped(t, cmd, startCmd) // in the test's own cgroup, outside the bed's
			// It runs its own code: its exec has passed the tracepoint.
			expectLine(t, stdout, "waiting")
			execs, pid := b.agent.coll.Maps[imdsMapExecs], uint32(cmd.Process.Pid)
			var x imdsExecInfo
			has := func() bool { return execs.Lookup(pid, &x) == nil }
			if has() != all {
				t.Errorf("exec record of pid %d, outside the cgroup: %v; want %v", pid, has(), all)
			}
			io.WriteString(stdin, "go\n")
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%v: %v", cmd.Args[:3], err)
			}
			if has() {
				t.Errorf("exec record of pid %d after its exit (all=%v): %+v", pid, all, x.Hdr.Id)
			}
		})
	}
}

// TestExecReportedOnlyForCallers: exec records stay in the kernel until a process, or a
// descendant, connects to IMDS; then each is reported once. A shell runs /bin/true (never
// reported: neither its exec nor its exit) and two callers one after the other (each reported
// once, and the shell once, though both callers name it as their parent).
func TestExecReportedOnlyForCallers(t *testing.T) {
	b := newBed(t, Options{})
	get := child("get", b.imds.url("127.0.0.1"), "lineage-"+strconv.Itoa(os.Getpid()))
	sh := child()
	sh.Path = "/bin/sh"
	sh.Args = append([]string{"sh", "-c", `/bin/true & echo $!; wait; "$0" "$@"; "$0" "$@"; exit 0`}, get.Args...)
	var out strings.Builder
	sh.Stdout = &out
	b.run(t, sh)
	first, _, _ := strings.Cut(out.String(), "\n") // then the callers' "dials 1"
	truePID, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("shell printed %q", out.String())
	}
	evs := b.ev.waitFor(t, "the two callers' connects and exits", func(evs []audit.Event) bool {
		return count(audit.EventConnect, nil, 2)(evs) && count(audit.EventExit, nil, 2)(evs)
	})
	if n := len(filter(evs, audit.EventExec, byPID(sh.Process.Pid))); n != 1 {
		t.Errorf("%d exec records of the shell, want 1:\n%s", n, dump(evs))
	}
	for _, c := range filter(evs, audit.EventConnect, nil) {
		execs := filter(evs, audit.EventExec, byPID(int(c.PID)))
		if len(execs) != 1 || execs[0].PPID != uint32(sh.Process.Pid) || !slices.Equal(execs[0].Args, get.Args) {
			t.Errorf("exec records of caller %d = %+v; want one, parent %d, args %q", c.PID, execs, sh.Process.Pid, get.Args)
		}
	}
	for _, e := range evs {
		if e.PID == uint32(truePID) {
			t.Errorf("event of /bin/true, which never connected: %+v", e)
		}
	}
}

// TestExitReportedAfterReexec: a process that connected to IMDS and then executed another
// program, which never connects, still has its exit reported: its new exec record replaced the
// reported one in the kernel's table, and user space must let go of the old image.
func TestExitReportedAfterReexec(t *testing.T) {
	b := newBed(t, Options{})
	script := fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/%d; printf 'GET /latest/meta-data/ HTTP/1.0\r\n\r\n' >&3; `+
		`read -r line <&3; exec 3>&-; exec /bin/true`, b.imds.port)
	cmd := exec.Command("/bin/bash", "-c", script)
	b.run(t, cmd)
	pid := cmd.Process.Pid
	evs := b.ev.waitFor(t, "the exit of the re-executed caller", count(audit.EventExit, byPID(pid), 1))
	if n := len(filter(evs, audit.EventConnect, byPID(pid))); n != 1 {
		t.Errorf("%d connects of pid %d, want 1:\n%s", n, pid, dump(evs))
	}
	if execs := filter(evs, audit.EventExec, byPID(pid)); len(execs) != 1 || execs[0].Exe != "/bin/bash" {
		t.Errorf("exec records of pid %d = %+v; want only bash's (true never connected)", pid, execs)
	}
}

// TestLoneRecordIsDelivered: the kernel submits records without waking the reader up
// (BPF_RB_NO_WAKEUP) until a burst fills part of the ring buffer; a lone record must still be
// read, by the reader's own periodic wake-up. A child connects and then holds the connection
// without sending: after its exec record and its connect, nothing else comes, and the connect
// must arrive anyway (within waitLimit, a deadlock guard: the bound is pollInterval).
func TestLoneRecordIsDelivered(t *testing.T) {
	b := newBed(t, Options{})
	cmd := child("hold", "127.0.0.1:"+strconv.Itoa(int(b.imds.port)), "lone")
	cmd.Stderr = nil                            // it is killed at the end, its complaint is expected
	_, stdout := startPiped(t, cmd, b.cg.Start) // stdin kept open: the child waits on it
	expectLine(t, stdout, "connected")
	evs := b.ev.waitFor(t, "the connect, with no traffic after it", count(audit.EventConnect, byPID(cmd.Process.Pid), 1))
	if n := len(filter(evs, audit.EventExec, byPID(cmd.Process.Pid))); n != 1 {
		t.Errorf("%d exec records of the child, want 1", n)
	}
}

// TestConnectFromOwnNetworkNamespace: a caller in a network namespace of its own is reported
// with that namespace's cookie, not the host's, and without the host flag.
func TestConnectFromOwnNetworkNamespace(t *testing.T) {
	if !netnsKnown() {
		t.Skip("the agent cannot name its network namespace here (no SO_NETNS_COOKIE before Linux 5.14, and not in the initial one): no cookies are recorded")
	}
	b := newBed(t, Options{})
	marker := "netns-" + strconv.Itoa(os.Getpid())
	own := child("send-exit", "127.0.0.1:"+strconv.Itoa(int(b.imds.port)), marker)
	own.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	own.Stderr = nil // its connect fails: loopback is down in a new namespace
	if err := b.cg.Start(own); err != nil {
		t.Fatal(err)
	}
	_ = own.Wait()
	host := child("get", b.imds.url("127.0.0.1"), marker)
	b.run(t, host)
	evs := b.ev.waitFor(t, "both connects", func(evs []audit.Event) bool {
		return count(audit.EventConnect, byPID(own.Process.Pid), 1)(evs) && count(audit.EventConnect, byPID(host.Process.Pid), 1)(evs)
	})
	o := filter(evs, audit.EventConnect, byPID(own.Process.Pid))[0]
	h := filter(evs, audit.EventConnect, byPID(host.Process.Pid))[0]
	if o.NetnsCookie == 0 || o.HostNetns || o.NetnsCookie == h.NetnsCookie || !h.HostNetns || h.NetnsCookie == 0 {
		t.Errorf("own namespace: cookie %d host %v; host namespace: cookie %d host %v; want two different cookies, only the second the host's",
			o.NetnsCookie, o.HostNetns, h.NetnsCookie, h.HostNetns)
	}
}

// TestHostNetnsNamedByPath: Options.HostNetns names another namespace as the host's (the demo's
// simulated instance); a caller in the agent's own namespace is then in a namespace of its own.
func TestHostNetnsNamedByPath(t *testing.T) {
	if _, err := socketNetnsCookie(); err != nil {
		t.Skipf("this kernel cannot name a namespace other than the initial one (SO_NETNS_COOKIE, Linux 5.14): %v", err)
	}
	path := netnsHolder(t)
	other, own := hostNetns(path), hostNetns("")
	if other.known != 1 || other.cookie == 0 || other.cookie == own.cookie {
		t.Fatalf("cookie of %s %+v, of the agent's own %+v; want two different ones", path, other, own)
	}
	b := newBed(t, Options{HostNetns: path})
	cmd := child("get", b.imds.url("127.0.0.1"), "netns-path")
	b.run(t, cmd)
	evs := b.ev.waitFor(t, "the connect", count(audit.EventConnect, byPID(cmd.Process.Pid), 1))
	if c := filter(evs, audit.EventConnect, byPID(cmd.Process.Pid))[0]; c.NetnsCookie != own.cookie || c.HostNetns {
		t.Errorf("connect with cookie %d, host %v; want %d, not the host's", c.NetnsCookie, c.HostNetns, own.cookie)
	}
}

// TestNetnsUnknownRecordsNoCookie: where the agent cannot name its own network namespace, the
// kernel side records no cookie and claims nothing about the host's namespace.
func TestNetnsUnknownRecordsNoCookie(t *testing.T) {
	b := newBed(t, Options{netnsUnknown: true})
	cmd := child("get", b.imds.url("127.0.0.1"), "netns-unknown")
	b.run(t, cmd)
	evs := b.ev.waitFor(t, "the connect", count(audit.EventConnect, byPID(cmd.Process.Pid), 1))
	if c := filter(evs, audit.EventConnect, byPID(cmd.Process.Pid))[0]; c.NetnsCookie != 0 || c.HostNetns {
		t.Errorf("connect with cookie %d, host %v; want neither", c.NetnsCookie, c.HostNetns)
	}
}

// TestParentNetnsIsHost: Options.HostNetns naming the namespace the test started in (under
// netguard, its parent's: in the test VMs the initial one, the host init's, which is what an
// agent in a pod is given) is named on every kernel: by its cookie from 5.14, before that as the
// initial one. A caller there is the host's; one in the test's private namespace is not. The
// caller in the parent's namespace only connects to loopback and sends nothing.
func TestParentNetnsIsHost(t *testing.T) {
	if !netguard.Active() {
		t.Skip("the test runs in the machine's network namespace (not under netguard): no other namespace to tell apart")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		privtest.Unavailable(t, "nsenter (util-linux) not found: "+err.Error())
	}
	parent := "/proc/" + strconv.Itoa(os.Getppid()) + "/ns/net"
	if id := hostNetns(parent); id.known != 1 {
		t.Fatalf("the namespace the test started in (%s) is not named: %+v", parent, id)
	}
	b := newBed(t, Options{HostNetns: parent})
	addr := "127.0.0.1:" + strconv.Itoa(int(b.imds.port))
	own := child("connect-exit", addr)
	b.run(t, own)
	host := child("connect-exit", addr)
	host.Args = append([]string{nsenter, "--net=" + parent, "--"}, host.Args...)
	host.Path = nsenter
	b.run(t, host)
	evs := b.ev.waitFor(t, "both connects", func(evs []audit.Event) bool {
		return count(audit.EventConnect, byPID(own.Process.Pid), 1)(evs) && count(audit.EventConnect, byPID(host.Process.Pid), 1)(evs)
	})
	o := filter(evs, audit.EventConnect, byPID(own.Process.Pid))[0]
	h := filter(evs, audit.EventConnect, byPID(host.Process.Pid))[0]
	if o.NetnsCookie == 0 || o.HostNetns || h.NetnsCookie == 0 || !h.HostNetns || o.NetnsCookie == h.NetnsCookie {
		t.Errorf("test's namespace: cookie %d host %v; parent's namespace: cookie %d host %v; want two different cookies, only the second the host's",
			o.NetnsCookie, o.HostNetns, h.NetnsCookie, h.HostNetns)
	}
}

// TestInitNetnsFromHostProc: before Linux 5.14 (no SO_NETNS_COOKIE) the host's namespace is
// named only when it is the initial one. An agent in a pod without hostPID and hostNetwork,
// given the host's /proc, finds the host's init in that /proc, not in its own.
func TestInitNetnsFromHostProc(t *testing.T) {
	var (
		initPID = nsID{dev: 4, ino: 0xEFFFFFFC}
		podPID  = nsID{dev: 4, ino: 4026532300}
		initNet = nsID{dev: 4, ino: 4026531840}
		podNet  = nsID{dev: 4, ino: 4026532301}
	)
	pod := map[string]nsID{
		"/proc/1/ns/pid": podPID, "/proc/1/ns/net": podNet, "/proc/thread-self/ns/net": podNet,
		"/host/proc/1/ns/pid": initPID, "/host/proc/1/ns/net": initNet, "/host/proc/77/ns/net": podNet,
	}
	host := map[string]nsID{"/proc/1/ns/pid": initPID, "/proc/1/ns/net": initNet,
		"/proc/thread-self/ns/net": initNet, "/proc/9/ns/net": podNet}
	stat := func(m map[string]nsID) func(string) (nsID, error) {
		return func(p string) (nsID, error) {
			if id, ok := m[p]; ok {
				return id, nil
			}
			return nsID{}, os.ErrNotExist
		}
	}
	for _, tt := range []struct {
		name  string
		files map[string]nsID
		path  string
		want  bool
	}{
		{"pod, host's init through the host's /proc", pod, "/host/proc/1/ns/net", true},
		{"pod, its own namespace", pod, "/proc/thread-self/ns/net", false},
		{"pod, another process of the host's /proc", pod, "/host/proc/77/ns/net", false},
		{"pod, a path that does not exist", pod, "/host/proc/2/ns/net", false},
		{"host, its own namespace", host, "/proc/thread-self/ns/net", true},
		{"host, init's", host, "/proc/1/ns/net", true},
		{"host, a namespace of its own", host, "/proc/9/ns/net", false},
		{"/proc of a pid namespace that is not the initial one", map[string]nsID{
			"/other/1/ns/pid": podPID, "/other/1/ns/net": podNet}, "/other/1/ns/net", false},
	} {
		if got := initNetns(tt.path, stat(tt.files)); got != tt.want {
			t.Errorf("%s: initNetns(%s) = %v, want %v", tt.name, tt.path, got, tt.want)
		}
	}
}

// netnsKnown reports whether the agent names its network namespace here.
func netnsKnown() bool { return hostNetns("").known == 1 }

// TestSocketConnectedBeforeAttach: a connection opened before the agent existed is still
// reported, by address and port, with no caller identity.
func TestSocketConnectedBeforeAttach(t *testing.T) {
	b := newBed(t, Options{})
	// Re-create the agent so the child's connect happens while nothing is attached.
	b.agent.Close()
	marker := "early-" + strconv.Itoa(os.Getpid())
	cmd := child("hold", "127.0.0.1:"+strconv.Itoa(int(b.imds.port)), marker)
	stdin, out := startPiped(t, cmd, b.cg.Start)
	expectLine(t, out, "connected")
	agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), Port: b.imds.port})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Attach(b.cg.Path()); err != nil {
		agent.Close()
		t.Fatal(err)
	}
	ev := collect(t, agent)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("child got %q, %v", line, err)
	}
	evs := ev.waitFor(t, "send and recv of the early socket", func(evs []audit.Event) bool {
		return count(audit.EventSend, hasData(marker), 1)(evs) && count(audit.EventRecv, nil, 1)(evs)
	})
	send := filter(evs, audit.EventSend, hasData(marker))[0]
	if send.PID != 0 || send.Comm != "" || send.Cookie == 0 || send.Remote.Port() != b.imds.port || !send.NoConnect || send.NetnsCookie != 0 {
		t.Errorf("send on the early socket = %+v; want pid 0 and no comm (caller unknown), a cookie, the IMDS port", send)
	}
	if n := len(filter(evs, audit.EventConnect, nil)); n != 0 {
		t.Errorf("%d connect events, want none", n)
	}
}

// TestConnectsAreAllowedAndOnlyIMDSIsReported connects every way a program can (IPv4, IPv6,
// IPv4-mapped on a dual-stack socket, UDP) to the IMDS port and to another port: every
// connect() succeeds, and only the TCP connections to IMDS are reported.
func TestConnectsAreAllowedAndOnlyIMDSIsReported(t *testing.T) {
	b := newBed(t, Options{})
	other := startFakeIMDS(t)
	cmd := child("connects", strconv.Itoa(int(b.imds.port)), strconv.Itoa(int(other.port)))
	b.run(t, cmd) // fails on any refused connect
	pid := cmd.Process.Pid
	evs := b.ev.waitFor(t, "three connects and the mapped send", func(evs []audit.Event) bool {
		return count(audit.EventConnect, byPID(pid), 3)(evs) && count(audit.EventSend, hasData("mapped"), 1)(evs)
	})
	var remotes []string
	for _, e := range filter(evs, audit.EventConnect, byPID(pid)) {
		remotes = append(remotes, e.Remote.String())
	}
	p := strconv.Itoa(int(b.imds.port))
	want := []string{"127.0.0.1:" + p, "[::1]:" + p, "127.0.0.1:" + p} // the last is ::ffff:127.0.0.1 unmapped
	if !slices.Equal(remotes, want) {
		t.Errorf("connect events to %q, want %q", remotes, want)
	}
	for _, e := range evs {
		if e.Remote.IsValid() && e.Remote.Port() != b.imds.port {
			t.Errorf("event for unrelated traffic: %+v", e)
		}
	}
	if mapped := filter(evs, audit.EventSend, hasData("mapped"))[0]; mapped.PID != uint32(pid) || !mapped.Remote.Addr().Is4() || !mapped.V4Mapped {
		t.Errorf("send on the v4-mapped socket = %+v; want pid %d and an IPv4 remote", mapped, pid)
	}
}

// TestManyRequestsNoLoss: a few hundred requests, keep-alive and new connections mixed, all
// reported, none lost.
func TestManyRequestsNoLoss(t *testing.T) {
	b := newBed(t, Options{})
	const n = 300
	marker := "many-" + strconv.Itoa(os.Getpid())
	cmd := child("many", b.imds.url("127.0.0.1"), marker, strconv.Itoa(n))
	var out strings.Builder
	cmd.Stdout = &out
	b.run(t, cmd)
	var dials int
	if _, err := fmt.Sscanf(out.String(), "dials %d", &dials); err != nil || dials < n/10 {
		t.Fatalf("child printed %q; want \"dials N\" with N >= %d", out.String(), n/10)
	}
	t.Logf("the child opened %d connections for %d requests", dials, n)
	evs := b.ev.waitFor(t, "all requests", count(audit.EventSend, hasData(marker), n))
	// A segment the kernel retransmits (a loaded machine) passes the egress hook again and is
	// reported again, with the same socket and sequence number; the auditor drops such
	// duplicates. So requests are counted as distinct (cookie, seq) pairs.
	type segment struct {
		cookie uint64
		seq    uint32
	}
	distinct := map[segment]bool{}
	for _, e := range filter(evs, audit.EventSend, hasData(marker)) {
		distinct[segment{e.Cookie, e.Seq}] = true
	}
	if len(distinct) != n {
		t.Errorf("%d distinct request segments, want %d", len(distinct), n)
	}
	if got := len(filter(evs, audit.EventRecv, nil)); got < n {
		t.Errorf("%d recv events, want at least %d", got, n)
	}
	// One per connection the child opened: a new one every 10 requests, and now and then one
	// more when Go's transport dials before the last connection is back in its pool.
	if got := len(filter(evs, audit.EventConnect, nil)); got != dials {
		t.Errorf("%d connect events, want %d (the connections the child opened)", got, dials)
	}
	if lost := b.agent.Lost(); lost != 0 || len(filter(evs, audit.EventLost, nil)) != 0 {
		t.Errorf("lost %d records", lost)
	}
}

// TestFeaturesAndDetach checks what Features reports after Attach, and that Close detaches every
// cgroup program.
func TestFeaturesAndDetach(t *testing.T) {
	b := newBed(t, Options{})
	f := b.agent.Features()
	if f.Cgroup != b.cg.Path() || f.AttachMode != "bpf_link" || !f.Exec || !f.BTF || len(f.Programs) != len(programs) || f.CgroupMounted {
		t.Errorf("Features = %+v", f)
	}
	for _, line := range []string{"cgroup:          " + b.cg.Path(), "attach mode:     bpf_link", "exec tracing:    yes", "cgroup/connect4"} {
		if !strings.Contains(f.String(), line) {
			t.Errorf("Features.String() lacks %q:\n%s", line, f)
		}
	}
	attached := func() int {
		n := 0
		for _, at := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect,
			ebpf.AttachCGroupInetEgress, ebpf.AttachCGroupInetIngress, ebpf.AttachCgroupInetSockRelease} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: b.cg.FD(), Attach: at})
			if err != nil {
				t.Fatal(err)
			}
			n += len(res.Programs)
		}
		return n
	}
	if n := attached(); n != 5 {
		t.Errorf("%d cgroup programs attached, want 5", n)
	}
	if err := b.agent.Attach(b.cg.Path()); err == nil || !strings.Contains(err.Error(), "already attached") {
		t.Errorf("second Attach = %v, want an already-attached error", err)
	}
	if err := b.agent.Close(); err != nil {
		t.Fatal(err)
	}
	if n := attached(); n != 0 {
		t.Errorf("%d cgroup programs still attached after Close", n)
	}
}

// TestAttachErrors: a missing or wrong cgroup path is refused with a message that says why, and
// leaves nothing attached.
func TestAttachErrors(t *testing.T) {
	b := newBed(t, Options{})
	b.agent.Close()
	agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), Port: b.imds.port, NoExec: true})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	for path, want := range map[string]string{
		"/nonexistent/imdsv2-cgroup": `cgroup "/nonexistent/imdsv2-cgroup" does not exist`,
		t.TempDir():                  "not on a cgroup file system",
		"/proc/self/status":          "is not a directory",
	} {
		err := agent.Attach(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Attach(%q) = %v, want an error containing %q", path, err, want)
		}
	}
	if f := agent.Features(); f.Cgroup != "" || len(f.Programs) != 0 || f.Exec || f.ExecSkipped != "turned off (NoExec)" {
		t.Errorf("Features after failed attaches = %+v", f)
	}
}
