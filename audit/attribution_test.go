package audit_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/replay"
)

const kubeID = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

func TestPreexistingConnectionFromProc(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	// The kernel side saw no connect: no pid. The socket 10.0.0.5:40001 is
	// held by pid 100 in the fake /proc.
	c := r.Preexisting(replay.Proc{})
	c.Send(replay.GetV1("/latest/meta-data/", "curl/7.88.1"))
	c.Recv(replay.Answer(200, 3), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 1 {
		t.Fatalf("%+v", got)
	}
	p := got[0].Process
	if p.PID != 100 || !p.Preexisting || p.Source != audit.SourceProc || p.Exe != "/usr/bin/curl" ||
		p.Cmdline != "curl -s http://169.254.169.254/latest/meta-data/" || p.UID != 1000 || p.User != "alice" ||
		p.ID != dockerID || p.Runtime != "docker" || p.Unit != "docker-"+dockerID+".scope" {
		t.Fatalf("%+v", p)
	}
	if len(p.Parents) != 3 || p.Parents[0].PID != 95 || p.Parents[1].PID != 90 || p.Parents[2].PID != 1 ||
		!strings.HasPrefix(p.Parents[0].Cmdline, "/bin/sh -c 'while true") || p.Parents[2].Exe != "/usr/lib/systemd/systemd" {
		t.Fatalf("parents: %+v", p.Parents)
	}
}

func TestShortLivedProcessFromExecRecords(t *testing.T) {
	h := newHarness(t, audit.Options{})
	h.table.cgroups[4711] = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e4c2a_6d1f_4f0e_9a43_0c1d2e3f4a5b.slice/cri-containerd-" + kubeID + ".scope"
	r := replay.New(t0)
	shell := replay.Proc{PID: 4241, PPID: 1, UID: 0, Comm: "sh", CgroupID: 4711}
	app := replay.Proc{PID: 4242, PPID: 4241, UID: 0, Comm: "python3", CgroupID: 4711}
	r.Exec(shell, "/bin/sh", "sh", "-c", "python3 /opt/get_creds.py --role app")
	r.Advance(time.Millisecond)
	r.Exec(app, "/usr/bin/python3.11", "python3", "/opt/get_creds.py", "--role", "app")
	r.Advance(time.Millisecond)
	c := r.Connect(app)
	c.Send(replay.GetV1("/latest/meta-data/iam/security-credentials/app", "Boto3/1.9.0 Python/3.11 Linux/6.1 Botocore/1.12.0"))
	c.Recv(replay.Answer(200, 40), 64)
	c.Close()
	r.Exit(app)
	r.Exit(shell)
	h.feed(r)

	got := h.requests()
	if len(got) != 1 {
		t.Fatalf("%+v", got)
	}
	p := got[0].Process
	if p.PID != 4242 || p.Source != audit.SourceExec || p.Exe != "/usr/bin/python3.11" ||
		p.Cmdline != "python3 /opt/get_creds.py --role app" || p.User != "root" ||
		p.ID != kubeID || p.Runtime != "containerd" || p.PodUID != "1b4e4c2a-6d1f-4f0e-9a43-0c1d2e3f4a5b" {
		t.Fatalf("%+v", p)
	}
	if len(p.Parents) != 2 || p.Parents[0].Cmdline != "sh -c 'python3 /opt/get_creds.py --role app'" ||
		p.Parents[1].Exe != "/usr/lib/systemd/systemd" {
		t.Fatalf("parents: %+v", p.Parents)
	}
	if sdk := got[0].SDK; sdk == nil || sdk.Product != "botocore" || !sdk.BelowMin {
		t.Fatalf("sdk: %+v", sdk)
	}
}

// TestNetworkFromNamespaceCookie: where the kernel read the caller's network namespace at
// connect, it alone says whether the caller has a network namespace of its own; the local
// address decides only where the kernel did not.
func TestNetworkFromNamespaceCookie(t *testing.T) {
	replayLocal := netip.MustParseAddr("10.0.0.5") // every replay connection's local address
	other := netip.MustParseAddr("192.0.2.1")
	for _, tt := range []struct {
		name            string
		hostAddrs       []netip.Addr
		netns           uint64
		hostNetns       bool
		wantOther, host bool
	}{
		{"own namespace, host's address", []netip.Addr{replayLocal}, 7, false, true, false},
		{"host namespace, foreign address", []netip.Addr{other}, 7, true, false, true},
		{"no cookie, foreign address", []netip.Addr{other}, 0, false, true, false},
		{"no cookie, host's address", []netip.Addr{replayLocal}, 0, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, audit.Options{HostAddrs: tt.hostAddrs})
			r := replay.New(t0)
			c := r.Connect(curlProc)
			evs := r.Events()
			evs[len(evs)-1].NetnsCookie, evs[len(evs)-1].HostNetns = tt.netns, tt.hostNetns
			c.Send(replay.GetV1("/latest/meta-data/", "curl/8.5.0"))
			c.Recv(replay.Answer(200, 3), 64)
			h.feed(r)
			got := h.requests()
			if len(got) != 1 {
				t.Fatalf("%+v", got)
			}
			if p := got[0].Process; p.OtherNetwork != tt.wantOther || p.HostNetwork != tt.host || p.LocalAddr != "10.0.0.5" {
				t.Errorf("other network %v, host network %v, local %q; want %v, %v, 10.0.0.5", p.OtherNetwork, p.HostNetwork, p.LocalAddr, tt.wantOther, tt.host)
			}
		})
	}
}

// TestArgvFaultTakesArgumentsFromProc: the kernel named the executable but could not read
// argv (ArgvFault); the arguments come from /proc while the process lives.
func TestArgvFaultTakesArgumentsFromProc(t *testing.T) {
	h := newHarness(t, audit.Options{})
	h.table.extra[4242] = proc.Process{PID: 4242, PPID: 4241, Exe: "/usr/bin/python3.11",
		Cmdline: []string{"python3", "/opt/app.py"}, Started: t0.Add(-time.Second)}
	r := replay.New(t0)
	r.Exec(goProc, "/usr/bin/python3.11")
	evs := r.Events()
	evs[len(evs)-1].ArgvFault = true
	r.Advance(time.Millisecond)
	c := r.Connect(goProc)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	h.feed(r)
	p := h.requests()[0].Process
	if p.Source != audit.SourceExec || p.Exe != "/usr/bin/python3.11" || p.Cmdline != "python3 /opt/app.py" {
		t.Fatalf("%+v", p)
	}
}

func TestPIDReuseIsNotAttributed(t *testing.T) {
	h := newHarness(t, audit.Options{})
	// A process with the event's pid exists now, but it started after the
	// request: it is a different process.
	h.table.extra[4242] = proc.Process{PID: 4242, PPID: 1, Exe: "/usr/bin/other", Cmdline: []string{"other"},
		Started: t0.Add(time.Hour)}
	r := replay.New(t0)
	c := r.Connect(goProc)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	h.feed(r)
	p := h.requests()[0].Process
	if p.Source != audit.SourceKernel || p.Exe != "" || p.Comm != "app" {
		t.Fatalf("%+v", p)
	}
}

// TestExecRecordOfReusedPIDIsDropped: pid 4242 executed /usr/bin/old and sent a request, and
// its exit was never reported (the kernel's table evicted its record); an hour later another
// process holds pid 4242, forked without exec, and sends a request. The old exec record must
// not name it: /proc says it started after that exec. The old request keeps its name.
func TestExecRecordOfReusedPIDIsDropped(t *testing.T) {
	h := newHarness(t, audit.Options{})
	later := t0.Add(time.Hour)
	h.table.extra[4242] = proc.Process{PID: 4242, PPID: 1, Comm: "worker", Exe: "/usr/bin/new",
		Cmdline: []string{"new", "--worker"}, Started: later}
	r := replay.New(t0)
	old := replay.Proc{PID: 4242, PPID: 1, Comm: "old"}
	r.Exec(old, "/usr/bin/old", "old", "--serve")
	r.Advance(time.Millisecond)
	c := r.Connect(old)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	c.Close()
	r.Advance(time.Hour + time.Minute)
	c = r.Connect(replay.Proc{PID: 4242, PPID: 1, Comm: "worker"})
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	h.feed(r)
	got := h.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2: %+v", len(got), got)
	}
	if p := got[0].Process; p.Source != audit.SourceExec || p.Exe != "/usr/bin/old" || p.Cmdline != "old --serve" {
		t.Errorf("first request: %+v; want the old image's exec record", p)
	}
	if p := got[1].Process; p.Source != audit.SourceProc || p.Exe != "/usr/bin/new" || p.Cmdline != "new --worker" {
		t.Errorf("request of the reused pid: %+v; want the new process from /proc", p)
	}
}

// TestParentPIDReused: a deploy script started a child and exited; its pid went to another
// process, which executed a program of its own. When the child calls IMDS, its exec record
// names the parent's pid and start: the new holder of that pid, live in /proc or known by
// its exec record, started later and is not named as the parent. With the parent still there,
// it is.
func TestParentPIDReused(t *testing.T) {
	for _, reused := range []bool{false, true} {
		t.Run(fmt.Sprintf("reused=%v", reused), func(t *testing.T) {
			h := newHarness(t, audit.Options{})
			r := replay.New(t0)
			// Starts after boot; /proc counts them in ticks of 10 ms.
			started := 100*time.Second + 9*time.Millisecond // tick 10000
			parent := replay.Proc{PID: 3300, PPID: 1, Comm: "deploy", Start: started}
			child := replay.Proc{PID: 3301, PPID: 3300, Comm: "curl", Start: 101 * time.Second, ParentStart: started}
			r.Exec(parent, "/usr/local/bin/deploy", "deploy", "--stage", "prod")
			r.Advance(time.Second)
			r.Exec(child, "/usr/bin/curl", "curl", "http://169.254.169.254/latest/meta-data/")
			if !reused {
				// Live, and /proc's start (ticks of 10 ms) is the one the child names.
				h.table.extra[3300] = proc.Process{PID: 3300, PPID: 1, Comm: "deploy", Exe: "/usr/local/bin/deploy",
					Cmdline: []string{"deploy", "--stage", "prod"}, StartTime: 10000, Started: t0}
			}
			if reused {
				r.Exit(parent)
				r.Advance(time.Minute)
				other := replay.Proc{PID: 3300, PPID: 1, Comm: "intruder", Start: 161 * time.Second, ParentStart: time.Second}
				r.Exec(other, "/usr/bin/intruder", "intruder")
				h.table.extra[3300] = proc.Process{PID: 3300, PPID: 1, Comm: "intruder", Exe: "/usr/bin/intruder",
					Cmdline: []string{"intruder"}, StartTime: 16100, Started: r.Now()}
			}
			r.Advance(time.Millisecond)
			c := r.Connect(child)
			c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
			c.Recv(replay.Answer(200, 1), 64)
			h.feed(r)
			p := h.requests()[0].Process
			for _, anc := range p.Parents {
				if anc.Comm == "intruder" || anc.Exe == "/usr/bin/intruder" {
					t.Fatalf("the pid's new holder is named as the parent: %+v", p.Parents)
				}
			}
			if !reused && (len(p.Parents) == 0 || p.Parents[0].Exe != "/usr/local/bin/deploy") {
				t.Fatalf("parents %+v; want the deploy script first", p.Parents)
			}
			if reused && len(p.Parents) != 0 {
				t.Errorf("parents %+v; want none (the parent is gone)", p.Parents)
			}
		})
	}
}

// TestSameTimeImagesKeepOrder: two exec records of a pid with the same time (a process's first
// exec is dated by its start, and so is a program executed by another of its threads after
// the first one's record was dropped) are two images in the order they came: the later one
// names the requests after it.
func TestSameTimeImagesKeepOrder(t *testing.T) {
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	first := replay.Proc{PID: 5100, PPID: 1, Comm: "wrapper", Start: 50 * time.Second}
	r.Exec(first, "/usr/bin/wrapper", "wrapper", "exec", "--", "app")
	second := first
	second.Comm = "app"
	r.Exec(second, "/usr/bin/app", "app")
	r.Advance(time.Millisecond)
	c := r.Connect(second)
	c.Send(replay.GetV1("/latest/meta-data/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	h.feed(r)
	if got := h.requests()[0].Process; got.Exe != "/usr/bin/app" {
		t.Fatalf("%+v; want the image executed last", got)
	}
}

func TestExecReplacesImage(t *testing.T) {
	// sh -c 'exec curl ...': the same pid runs two images; the request is
	// attributed to the one running when it was sent.
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	p := replay.Proc{PID: 5000, PPID: 1, Comm: "sh"}
	r.Exec(p, "/bin/sh", "sh", "-c", "exec curl http://x/")
	r.Advance(time.Millisecond)
	p.Comm = "curl"
	r.Exec(p, "/usr/bin/curl", "curl", "http://x/")
	r.Advance(time.Millisecond)
	c := r.Connect(p)
	c.Send(replay.GetV1("/", "curl/8"))
	c.Recv(replay.Answer(200, 1), 64)
	h.feed(r)
	if got := h.requests()[0].Process; got.Exe != "/usr/bin/curl" || got.Cmdline != "curl http://x/" {
		t.Fatalf("%+v", got)
	}
}
