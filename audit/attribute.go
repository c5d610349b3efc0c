package audit

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/imdsv2/imdsv2/audit/proc"
)

// execRecord is a process image as the exec event captured it in the
// kernel, so that a process that sends one request and exits at once is
// still named by its full command line.
type execRecord struct {
	pid, ppid uint32
	comm, exe string
	cmdline   string // joined, redacted by structure and the tokens known at exec time
	argvFault bool   // the kernel could not read argv: cmdline is empty
	cgroupID  uint64
	at        time.Time // exec time (a first exec: the process's start, see Event.Time)
	exited    time.Time // zero while running
	// start and parentStart are when the process and its parent started, after boot
	// (Event.Start, Event.ParentStart); 0 where the source did not say.
	start, parentStart time.Duration
}

// execCache holds exec records keyed by (pid, exec time). It is bounded:
// when full, the record that exited first goes, else the oldest.
type execCache struct {
	max   int
	n     int
	byPID map[uint32][]*execRecord // sorted by exec time
}

func newExecCache(limit int) *execCache {
	return &execCache{max: limit, byPID: make(map[uint32][]*execRecord)}
}

func (c *execCache) add(r *execRecord) {
	if c.n >= c.max {
		c.evict()
	}
	list := c.byPID[r.pid]
	// After records of the same time: the one added last is the newer image.
	i := sort.Search(len(list), func(i int) bool { return list[i].at.After(r.at) })
	c.byPID[r.pid] = slices.Insert(list, i, r)
	c.n++
}

// lookup returns the image pid ran at time t: the latest exec at or before t
// that had not exited before t. A zero t means the latest.
func (c *execCache) lookup(pid uint32, t time.Time) *execRecord {
	list := c.byPID[pid]
	for i := len(list) - 1; i >= 0; i-- {
		r := list[i]
		if t.IsZero() || !r.at.After(t) {
			if !r.exited.IsZero() && !t.IsZero() && r.exited.Before(t) {
				return nil
			}
			return r
		}
	}
	return nil
}

// exit marks pid's latest image exited at t.
func (c *execCache) exit(pid uint32, t time.Time) {
	if list := c.byPID[pid]; len(list) > 0 && list[len(list)-1].exited.IsZero() {
		list[len(list)-1].exited = t
	}
}

// prune drops records of processes that exited before t: requests they sent
// were attributed long ago and their children have been reparented.
func (c *execCache) prune(before time.Time) {
	for pid, list := range c.byPID {
		kept := list[:0]
		for _, r := range list {
			if r.exited.IsZero() || !r.exited.Before(before) {
				kept = append(kept, r)
			}
		}
		clear(list[len(kept):])
		c.n -= len(list) - len(kept)
		if len(kept) == 0 {
			delete(c.byPID, pid)
		} else {
			c.byPID[pid] = kept
		}
	}
}

// evict removes one record: the earliest exited, else the earliest exec.
func (c *execCache) evict() {
	var victim *execRecord
	better := func(r *execRecord) bool {
		if victim == nil {
			return true
		}
		if r.exited.IsZero() != victim.exited.IsZero() {
			return !r.exited.IsZero()
		}
		if !r.exited.IsZero() {
			return r.exited.Before(victim.exited)
		}
		return r.at.Before(victim.at)
	}
	for _, list := range c.byPID {
		for _, r := range list {
			if better(r) {
				victim = r
			}
		}
	}
	if victim == nil {
		return
	}
	list := c.byPID[victim.pid]
	i := slices.Index(list, victim)
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(c.byPID, victim.pid)
	} else {
		c.byPID[victim.pid] = list
	}
	c.n--
}

// identity is what the socket events carried about the process that opened
// a connection.
type identity struct {
	pid, ppid, uid uint32
	comm           string
	cgroupID       uint64
	netns          uint64 // network namespace cookie, 0 when not known
	hostNetns      bool   // netns is the host's
	preexisting    bool
}

func eventIdentity(ev Event) identity {
	return identity{pid: ev.PID, ppid: ev.PPID, uid: ev.UID, comm: ev.Comm, cgroupID: ev.CgroupID,
		netns: ev.NetnsCookie, hostNetns: ev.HostNetns}
}

// network decides, once per caller, whether it runs in a network namespace
// of its own (other) or, for certain, in the host's (host). The kernel's
// namespace cookie decides when it read one at connect; without it, a local
// address that is not one of the host's (Options.HostAddrs) says "its own",
// and nothing says "the host's" for certain.
func (a *Auditor) network(id identity, local netip.Addr) (other, host bool) {
	if id.netns != 0 {
		return !id.hostNetns, id.hostNetns
	}
	return local.IsValid() && !local.IsUnspecified() && len(a.hostAddrs) > 0 && !a.hostAddrs[local], false
}

// SocketOwnerFinder is implemented by process tables that can find the
// process holding a socket (*proc.Table reads /proc/net/tcp and fd links).
// The auditor uses it for connections whose connect it did not see, which
// the kernel side reports without a pid.
type SocketOwnerFinder interface {
	SocketOwner(local, remote netip.AddrPort) (uint32, error)
}

// attribute names the process id at time t: from its exec record when the
// kernel captured one, else from /proc (best effort: the process may have
// changed or gone), else from what the kernel events carried.
func (a *Auditor) attribute(id identity, local, remote netip.AddrPort, t time.Time) Process {
	if f, ok := a.table.(SocketOwnerFinder); ok && id.pid == 0 && local.IsValid() && remote.IsValid() {
		if pid, err := f.SocketOwner(local, remote); err == nil {
			id.pid = pid
		}
	}
	p := Process{PID: id.pid, PPID: id.ppid, UID: id.uid, Comm: clean(id.comm, maxNameBytes),
		Source: SourceKernel, Preexisting: id.preexisting}
	cgroupID := id.cgroupID
	var cgroups []string
	r, pr, live := a.image(id.pid, 0, t)
	if r != nil {
		p.Exe, p.Cmdline, p.Source = r.exe, a.known.scrub(r.cmdline), SourceExec
		if p.PPID == 0 {
			p.PPID = r.ppid
		}
		if p.Comm == "" {
			p.Comm = r.comm
		}
		if cgroupID == 0 {
			cgroupID = r.cgroupID
		}
	}
	if live {
		if p.Source == SourceKernel {
			p.Exe, p.Cmdline, p.Source = clean(pr.Exe, maxPathBytes), joinArgs(pr.Cmdline, a.known), SourceProc
			if p.Comm == "" {
				p.Comm = clean(pr.Comm, maxNameBytes)
			}
			if id.uid == 0 && id.comm == "" {
				p.UID = pr.UID
			}
		}
		if r != nil && r.argvFault {
			// The exec record names the executable, /proc the arguments the kernel could not read.
			p.Cmdline = joinArgs(pr.Cmdline, a.known)
		}
		if p.PPID == 0 {
			p.PPID = pr.PPID
		}
		cgroups = pr.Cgroups
	}
	if name, err := a.table.UserName(p.UID); err == nil {
		p.User = clean(name, maxNameBytes)
	}
	if cgroupID != 0 {
		if path, err := a.table.CgroupPath(cgroupID); err == nil {
			cgroups = append([]string{path}, cgroups...)
		}
	}
	if len(cgroups) > 0 {
		p.Cgroup = clean(cgroups[0], maxPathBytes)
		c := proc.ContainerFromCgroups(cgroups)
		p.Container = proc.Container{ID: clean(c.ID, maxNameBytes), Runtime: c.Runtime,
			PodUID: clean(c.PodUID, maxNameBytes), Unit: clean(c.Unit, maxNameBytes)}
	}
	var parentStart time.Duration
	if r != nil {
		parentStart = r.parentStart
	}
	p.Parents = a.parents(p.PID, p.PPID, parentStart, t)
	l := local.Addr().Unmap()
	if l.IsValid() && !l.IsUnspecified() {
		p.LocalAddr = l.String()
	}
	p.OtherNetwork, p.HostNetwork = a.network(id, l)
	return p
}

// image returns what names pid at time t: its exec record, and the process
// /proc has under that pid when it was already running at t (live). An exec
// record of another process than the live one (otherProcess) is of an earlier
// holder of the pid whose exit was never reported (the kernel's table evicted
// its record): the pid was reused by a process that has not executed since,
// else its own, newer record would be the one found. Such a record is dropped,
// and marked exited when the new process started. start, when not 0, is the
// start the caller knows the process by (a child's record names its parent's):
// a record or a live process of another start is not it.
func (a *Auditor) image(pid uint32, start time.Duration, t time.Time) (r *execRecord, pr proc.Process, live bool) {
	r = a.execs.lookup(pid, t)
	pr, live = a.liveProcess(pid, t)
	if r != nil && live && otherProcess(r, pr) {
		if r.exited.IsZero() && !pr.Started.IsZero() {
			r.exited = pr.Started
		}
		r = nil
	}
	if start != 0 {
		if r != nil && r.start != 0 && r.start != start {
			r = nil
		}
		if live && pr.StartTime != 0 && !pr.StartedAt(start) {
			live = false
		}
	}
	return r, pr, live
}

// otherProcess reports whether exec record r is of another process than pr, a live holder of
// its pid: by their starts where both are known (the kernel's own clock, to the tick), else by
// wall-clock times (pr started after r's exec).
func otherProcess(r *execRecord, pr proc.Process) bool {
	if r.start != 0 && pr.StartTime != 0 {
		return !pr.StartedAt(r.start)
	}
	return !pr.Started.IsZero() && pr.Started.After(r.at.Add(startSlack))
}

// startSlack is how far /proc's start times may be off: they have a 10 ms
// tick and the boot time a one-second resolution.
const startSlack = time.Second

// liveProcess reads pid from the process table and rejects a process that
// started after t: the pid was reused.
func (a *Auditor) liveProcess(pid uint32, t time.Time) (proc.Process, bool) {
	if pid == 0 {
		return proc.Process{}, false
	}
	pr, err := a.table.Process(pid)
	if err != nil {
		return pr, false
	}
	if !pr.Started.IsZero() && !t.IsZero() && pr.Started.After(t.Add(startSlack)) {
		return pr, false
	}
	return pr, true
}

// parents walks the parent chain from ppid, ParentDepth levels at most. start, when known, is
// when the parent started (the child's exec record says): a process that holds ppid now but
// started at another time is a later holder of the pid, not the parent, and the walk stops.
func (a *Auditor) parents(pid, ppid uint32, start time.Duration, t time.Time) []Ancestor {
	var out []Ancestor
	seen := map[uint32]bool{pid: true}
	for len(out) < a.opts.ParentDepth && ppid != 0 && !seen[ppid] {
		seen[ppid] = true
		anc := Ancestor{PID: ppid}
		next := uint32(0)
		r, pr, live := a.image(ppid, start, t)
		if start != 0 && r == nil && !live {
			break // the parent is gone and its pid is another process's
		}
		start = 0
		if r != nil {
			anc.Comm, anc.Exe, anc.Cmdline, next = r.comm, r.exe, a.known.scrub(r.cmdline), r.ppid
			start = r.parentStart
		}
		if live {
			if anc.Exe == "" && anc.Cmdline == "" {
				anc.Comm, anc.Exe, anc.Cmdline = clean(pr.Comm, maxNameBytes), clean(pr.Exe, maxPathBytes), joinArgs(pr.Cmdline, a.known)
			}
			if next == 0 {
				next = pr.PPID
			}
		}
		out = append(out, anc)
		ppid = next
	}
	return out
}

// onExec records an exec event.
func (a *Auditor) onExec(ev Event, t time.Time) {
	args := ev.Args
	a.execs.add(&execRecord{
		pid: ev.PID, ppid: ev.PPID,
		comm: clean(ev.Comm, maxNameBytes), exe: clean(ev.Exe, maxPathBytes), cmdline: joinArgs(args, a.known),
		argvFault: ev.ArgvFault, cgroupID: ev.CgroupID, at: t, start: ev.Start, parentStart: ev.ParentStart,
	})
}
