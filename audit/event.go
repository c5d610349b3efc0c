package audit

import (
	"context"
	"net/netip"
	"time"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds. The numeric values are part of the contract with the bpf
// converter; append new kinds at the end.
const (
	// EventConnect: a socket connected to an IMDS address.
	EventConnect EventKind = iota + 1
	// EventSend: payload bytes leaving on a tracked socket (a request, or part of one).
	EventSend
	// EventRecv: payload bytes arriving on a tracked socket (an answer, or part of one).
	EventRecv
	// EventExec: a process executed a program (Exe, Args captured in the
	// kernel). Time is the exec's (a first exec: the process's start, see
	// Event.Time); the bpf source reports it only for a process that connects
	// to IMDS and for its ancestors, just before that EventConnect, so it may
	// come after events of later times.
	EventExec
	// EventExit: a process exited (PID is the thread group id; its last
	// thread exited). The bpf source reports it only for processes whose
	// EventExec it reported.
	EventExit
	// EventLost: the kernel side dropped Lost records since its last report.
	EventLost
	// EventClose: a tracked socket was released (Cookie set). An extension of
	// the contract in COMMON.md; sources that cannot see closes may omit it,
	// the auditor then ages idle sockets out.
	EventClose
	// EventAttached: the source started watching the cgroup in Event.Watch: at
	// start, and again after the watched cgroup was removed and re-created.
	// Coverage (audit.Coverage) begins or resumes here.
	EventAttached
	// EventDetached: the source stopped seeing the cgroup in Event.Watch
	// (removed; Watch.Reason says why). Nothing of it is seen until the next
	// EventAttached: the time between them is a gap in coverage.
	EventDetached
)

// String returns the lower-case name of the kind ("send", "recv", ...).
func (k EventKind) String() string {
	switch k {
	case EventConnect:
		return "connect"
	case EventSend:
		return "send"
	case EventRecv:
		return "recv"
	case EventExec:
		return "exec"
	case EventExit:
		return "exit"
	case EventLost:
		return "lost"
	case EventClose:
		return "close"
	case EventAttached:
		return "attached"
	case EventDetached:
		return "detached"
	}
	return "unknown"
}

// Event is one record from the kernel side of the auditor, converted to Go
// values. Fields that do not apply to a kind are zero.
type Event struct {
	Kind EventKind
	// Time is when it happened; for an EventExec, a process's first exec is
	// dated by its start (its fork, as /proc shows it), a later one by the
	// exec itself.
	Time time.Time

	// Cookie is the socket cookie; 0 for exec and process exit events.
	Cookie uint64

	PID, TID, PPID, UID, GID uint32
	CgroupID                 uint64
	Comm                     string

	// Start and ParentStart are when the process and its parent (PPID, at
	// the exec) started, as time since boot: the clock /proc's start times
	// count in ticks (EventExec; 0 where the source does not know). A
	// process with PPID's pid but another start is a later holder of that
	// pid, not the parent.
	Start, ParentStart time.Duration

	// NetnsCookie is the cookie of the network namespace of the caller's
	// socket, read in the kernel at connect (EventConnect and the events of
	// that socket); 0 where it is not known: exec and exit, a socket whose
	// connect was not seen, a source that cannot read it.
	NetnsCookie uint64
	// HostNetns says that namespace is the host's (the bpf agent's own, or
	// the initial one on kernels that cannot name the agent's); with a
	// NetnsCookie and without HostNetns, the caller has a network namespace
	// of its own (a container on a bridge, a pod). Meaningless without a
	// NetnsCookie.
	HostNetns bool

	// What the kernel side flagged about the event.
	//
	// NoConnect: the socket's connect was not seen (it predates the agent,
	// or the kernel's socket table evicted it): no caller identity, PID 0.
	NoConnect bool
	// Truncated: Data (EventSend, EventRecv) or Args (EventExec) hold less
	// than the kernel saw.
	Truncated bool
	// V4Mapped: the socket reached the IPv4 endpoint at an IPv4-mapped IPv6
	// address (connect6 of a dual-stack socket); Remote is unmapped.
	V4Mapped bool
	// ArgvFault: EventExec's argv could not be read from the new process's
	// memory; Args is empty.
	ArgvFault bool

	// Local and Remote are the socket's addresses; Remote is the IMDS side.
	Local, Remote netip.AddrPort

	// Seq is the TCP sequence number of the first Data byte (EventSend, EventRecv).
	Seq uint32
	// Data holds the captured payload bytes; it may be shorter than DataLen,
	// the payload bytes on the wire from Seq on that the event stands for. A
	// packet over a record's capacity (2 KiB from the bpf agent) comes as
	// several events, each with its own Seq; the last one's DataLen runs to
	// the end of the packet. For EventExec, DataLen is the length of the
	// process's argv (Args holds what was captured of it; Truncated says it
	// was cut).
	Data    []byte
	DataLen uint32

	// TTL is the IP TTL (IPv6 hop limit) of an EventRecv packet as received.
	TTL uint8

	// Exe and Args describe an EventExec (argv captured in the kernel).
	Exe  string
	Args []string

	// Lost is, for EventLost, the number of records dropped since the last report.
	Lost uint64

	// Watch is, for EventAttached and EventDetached, the cgroup concerned.
	Watch *Watch
}

// Watch describes the cgroup a source watches, as the host sees it.
type Watch struct {
	// Path is the cgroup's path relative to the root of the host's cgroup2
	// hierarchy, starting with "/" ("/" is the root itself).
	Path string `json:"path"`
	// CgroupID is the cgroup's id (its inode number in the cgroup2 file system).
	CgroupID uint64 `json:"cgroup_id"`
	// HostRoot says Path is the root of the host's cgroup2 hierarchy: every
	// process and container of the host is below it.
	HostRoot bool `json:"host_root"`
	// ExecTracing says exec and exit of the watched processes are traced
	// (command lines of short-lived callers are captured in the kernel).
	ExecTracing bool `json:"exec_tracing"`
	// Reason says, for EventDetached, why watching stopped.
	Reason string `json:"reason,omitempty"`
}

// Source delivers events in the order the kernel produced them. Next blocks
// until an event is available or ctx is done, and returns io.EOF at the end
// of a finite source.
type Source interface {
	Next(ctx context.Context) (Event, error)
}

// The IMDS endpoints, for sources that filter and for tests that build events.
// They are internal/imdsfacts' AddrV4 and AddrV6, kept here as public API.
var (
	// IMDSAddrV4 is the IPv4 address of the instance metadata service.
	IMDSAddrV4 = imdsfacts.AddrV4
	// IMDSAddrV6 is its IPv6 address (Nitro instances with HttpProtocolIpv6=enabled).
	IMDSAddrV6 = imdsfacts.AddrV6
)
