//go:build linux && (amd64 || arm64)

package bpf

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/mountinfo"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// cgroupAttachTypes are the attach types of the cgroup programs.
var cgroupAttachTypes = []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect,
	ebpf.AttachCGroupInetEgress, ebpf.AttachCGroupInetIngress, ebpf.AttachCgroupInetSockRelease}

// attachedTo counts the programs of the given ids attached to the cgroup open at fd.
func attachedTo(t *testing.T, fd int, ids map[ebpf.ProgramID]bool) int {
	t.Helper()
	n := 0
	for _, at := range cgroupAttachTypes {
		res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: at})
		if err != nil {
			t.Fatalf("query the programs of cgroup fd %d: %v", fd, err)
		}
		for _, p := range res.Programs {
			if ids[p.ID] {
				n++
			}
		}
	}
	return n
}

// linksByCgroup counts the kernel's cgroup links of the given programs by cgroup id. A link
// to a removed cgroup is still listed (it holds the cgroup) until it is closed, so this sees
// what a query of the removed cgroup, which the kernel refuses, would have.
func linksByCgroup(t *testing.T, ids map[ebpf.ProgramID]bool) map[uint64]int {
	t.Helper()
	out := map[uint64]int{}
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || !ids[info.Program] || info.Type != link.CgroupType {
			continue
		}
		out[info.Cgroup().CgroupId]++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// programIDs returns the ids of the agent's loaded programs.
func programIDs(t *testing.T, a *Agent) map[ebpf.ProgramID]bool {
	t.Helper()
	ids := map[ebpf.ProgramID]bool{}
	for name, p := range a.coll.Programs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatalf("no id for program %s", name)
		}
		ids[id] = true
	}
	return ids
}

// TestCgroupRemovedAndCreatedAgain is what systemd does to the cgroup of a unit on every
// restart. The agent reports the cgroup it attached to, then the removal, then (once a cgroup
// is back at the path) the new cgroup, whose callers it sees, with every program moved: none
// stays on the old cgroup, and Close leaves none on the new one.
func TestCgroupRemovedAndCreatedAgain(t *testing.T) {
	privtest.Require(t)
	imds := startFakeIMDS(t)
	parent := cgroup.ForTest(t)
	unit := filepath.Join(parent.Path(), "app.service")
	mkdir := func() (fd int, id uint64) {
		t.Helper()
		if err := os.Mkdir(unit, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Open(unit, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fd) })
		id, err = cgroup.ID(unit)
		if err != nil {
			t.Fatal(err)
		}
		return fd, id
	}
	// caller runs a request from inside the cgroup open at fd and returns the pid.
	caller := func(fd int, marker string) int {
		t.Helper()
		cmd := child("get", imds.url("127.0.0.1"), marker)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		if err := cmd.Run(); err != nil {
			t.Fatalf("caller %s: %v", marker, err)
		}
		return cmd.Process.Pid
	}
	oldFD, oldID := mkdir()

	agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), Port: imds.port})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Attach(unit); err != nil {
		agent.Close()
		t.Fatal(err)
	}
	ids := programIDs(t, agent)
	ev := collect(t, agent)
	exec := agent.Features().Exec
	wantPath := hostPath(unit, "")

	marker1 := "before-" + strconv.Itoa(os.Getpid())
	pid1 := caller(oldFD, marker1)
	ev.waitFor(t, "the first caller", count(audit.EventSend, hasData(marker1), 1))

	// Removed: reported, and nothing stays on the old cgroup.
	if err := syscall.Rmdir(unit); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "the removal", count(audit.EventDetached, nil, 1))
	if links := linksByCgroup(t, ids); len(links) != 0 {
		t.Errorf("cgroup links left after the removal (cgroup id: count): %v", links)
	}

	// Created again: followed.
	newFD, newID := mkdir()
	ev.waitFor(t, "the new cgroup", count(audit.EventAttached, nil, 2))
	if n := attachedTo(t, newFD, ids); n != len(cgroupAttachTypes) {
		t.Errorf("%d programs attached to the new cgroup, want %d", n, len(cgroupAttachTypes))
	}
	marker2 := "after-" + strconv.Itoa(os.Getpid())
	pid2 := caller(newFD, marker2)
	evs := ev.waitFor(t, "the second caller and its exec", func(evs []audit.Event) bool {
		return count(audit.EventSend, hasData(marker2), 1)(evs) && count(audit.EventExec, byPID(pid2), 1)(evs)
	})

	// Removed and created again between two checks (a quick restart).
	if err := syscall.Rmdir(unit); err != nil {
		t.Fatal(err)
	}
	thirdFD, thirdID := mkdir()
	evs = ev.waitFor(t, "the third cgroup", count(audit.EventAttached, nil, 3))
	if links := linksByCgroup(t, ids); len(links) != 1 || links[thirdID] != len(cgroupAttachTypes) {
		t.Errorf("cgroup links (cgroup id: count) %v, want only %d on the third cgroup %d", links, len(cgroupAttachTypes), thirdID)
	}

	// The order: attached (old), the first caller, detached (old), attached (new), the second
	// caller, detached (new), attached (third).
	type step struct {
		kind   audit.EventKind
		id     uint64
		reason string
	}
	want := []step{{audit.EventAttached, oldID, ""}, {audit.EventSend, oldID, ""}, {audit.EventDetached, oldID, reasonRemoved},
		{audit.EventAttached, newID, ""}, {audit.EventSend, newID, ""}, {audit.EventDetached, newID, reasonRecreated},
		{audit.EventAttached, thirdID, ""}}
	var got []step
	for _, e := range evs {
		switch {
		case e.Kind == audit.EventAttached || e.Kind == audit.EventDetached:
			if e.Watch == nil || e.Watch.CgroupID != e.CgroupID || e.Watch.Path != wantPath || e.Watch.HostRoot || e.Watch.ExecTracing != exec {
				t.Errorf("%s event: %+v, watch %+v; want path %q, exec tracing %v", e.Kind, e, e.Watch, wantPath, exec)
				continue
			}
			got = append(got, step{e.Kind, e.CgroupID, e.Watch.Reason})
		case e.Kind == audit.EventSend && (hasData(marker1)(e) || hasData(marker2)(e)):
			got = append(got, step{e.Kind, e.CgroupID, ""})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("steps %+v, want %+v\n%s", got, want, dump(evs))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if evs[0].Kind != audit.EventAttached {
		t.Errorf("first event %s, want attached", evs[0].Kind)
	}
	if e := filter(evs, audit.EventExec, byPID(pid2)); exec && (len(e) != 1 || e[0].CgroupID != newID) {
		t.Errorf("exec of the caller in the new cgroup: %+v, want one with cgroup %d", e, newID)
	}
	if e := filter(evs, audit.EventExec, byPID(pid1)); exec && len(e) != 1 {
		t.Errorf("exec of the caller in the old cgroup: %+v", e)
	}
	if err := agent.Close(); err != nil {
		t.Fatal(err)
	}
	if n := attachedTo(t, thirdFD, ids); n != 0 {
		t.Errorf("%d programs still attached after Close", n)
	}
	if links := linksByCgroup(t, ids); len(links) != 0 {
		t.Errorf("cgroup links left after Close: %v", links)
	}
}

// TestAttachedEventDescribesTheCgroup: the first event names the cgroup as the host sees it.
func TestAttachedEventDescribesTheCgroup(t *testing.T) {
	b := newBed(t, Options{NoExec: true})
	evs := b.ev.waitFor(t, "the attached event", count(audit.EventAttached, nil, 1))
	root, err := cgroup.Mountpoint()
	if err != nil {
		t.Fatal(err)
	}
	want := &audit.Watch{Path: "/" + strings.TrimPrefix(strings.TrimPrefix(b.cg.Path(), root), "/"), CgroupID: b.cg.ID()}
	if e := evs[0]; e.Kind != audit.EventAttached || e.Time.IsZero() || e.CgroupID != b.cg.ID() || e.Watch == nil || *e.Watch != *want {
		t.Errorf("first event %+v, watch %+v; want attached, %+v", e, e.Watch, want)
	}
}

func TestHostPathIn(t *testing.T) {
	mounts := []mountinfo.Mount{
		{Root: "/", Point: "/sys/fs/cgroup/unified", FSType: "cgroup2"},
		{Root: "/", Point: "/sys/fs/cgroup", FSType: "tmpfs"},
		{Root: "/kubepods/pod1", Point: "/host/pod", FSType: "cgroup2"},
		{Root: "/../..", Point: "/outside", FSType: "cgroup2"},
	}
	for dir, want := range map[string]string{
		"/sys/fs/cgroup/unified":                        "/",
		"/sys/fs/cgroup/unified/system.slice/a.service": "/system.slice/a.service",
		"/sys/fs/cgroup/unified/../unified/x":           "/x",
		"/host/pod/ctr":                                 "/kubepods/pod1/ctr",
		"/host/pod":                                     "/kubepods/pod1",
		"/outside/x":                                    "/../../x",
		"/outside":                                      "/../..",
		"/sys/fs/cgroup/cpu":                            "/sys/fs/cgroup/cpu",
		"/sys/fs/cgroup/unifiedx":                       "/sys/fs/cgroup/unifiedx",
	} {
		if got := hostPathIn(mounts, dir); got != want {
			t.Errorf("hostPathIn(%q) = %q, want %q", dir, got, want)
		}
	}
	if got := hostPath("/host/sys/fs/cgroup/kubepods/x", "/host/sys/fs/cgroup/"); got != "/kubepods/x" {
		t.Errorf("hostPath under HostCgroup = %q", got)
	}
}
