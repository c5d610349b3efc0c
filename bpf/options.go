package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Limits of the kernel programs, from imds.c's enums (bpf2go generates them); Options are
// checked against them.
const (
	// MaxSendCapture is the largest Options.SendCapture: payload bytes kept per outgoing packet,
	// 64 KiB, enough for the largest GSO/TSO packet a single write of a header block becomes.
	// The kernel reports a packet as records of at most 2 KiB each (see imds.c, SEND_MAX).
	MaxSendCapture = int(imdsCaptureLimitCAPTURE_SEND_MAX)
	// MaxRecvCapture is the largest Options.RecvCapture: payload bytes kept per answer segment.
	MaxRecvCapture = int(imdsCaptureLimitCAPTURE_RECV_MAX)
	// DefaultRingBufferSize is the ring buffer size used when Options.RingBufferSize is 0: 4 MiB.
	DefaultRingBufferSize = int(imdsMapSizeMAP_RING_BUFFER)

	// defaultRecvCapture is Options.RecvCapture's default: the status line and a little more.
	defaultRecvCapture = int(imdsCaptureLimitCAPTURE_RECV_DEFAULT)
)

// Default endpoint of the instance metadata service: internal/imdsfacts' addresses,
// kept here as public API. bpf/imds.c has the same defaults; TestCDefaultsMatch
// compares them.
var (
	DefaultIPv4 = imdsfacts.AddrV4
	DefaultIPv6 = imdsfacts.AddrV6
)

// DefaultPort is the IMDS port.
const DefaultPort = imdsfacts.Port

// Options configure Load. The zero value audits the real IMDS endpoints with default limits.
type Options struct {
	// IPv4 is the IPv4 address of the service whose connections are audited.
	// Default 169.254.169.254. Tests point it at 127.0.0.1.
	IPv4 netip.Addr
	// IPv6 is the IPv6 address of the service. Default fd00:ec2::254. Tests use ::1.
	IPv6 netip.Addr
	// Port is the service's TCP port. Default 80.
	Port uint16

	// RingBufferSize is the size in bytes of the ring buffer that carries records to user
	// space: a power of two and a multiple of the page size. Default 4 MiB. A send record
	// takes up to 2.2 KiB of it until it is read; a 64 KiB packet takes 32 of them.
	RingBufferSize int
	// SendCapture is how many payload bytes of each outgoing packet are kept, 1 to
	// MaxSendCapture. Default MaxSendCapture (a header block of up to 64 KiB however it is
	// written; the bytes of a packet beyond it are reported as missing).
	SendCapture int
	// RecvCapture is how many payload bytes of each incoming segment are kept, 1 to
	// MaxRecvCapture. Default 64 (the status line and a little more; answers carry tokens
	// and credentials, which the auditor does not want).
	RecvCapture int

	// HostCgroup is the host's cgroup2 hierarchy as this process sees it, for an agent in a
	// container: the host's /sys/fs/cgroup (or /sys/fs/cgroup/unified on a hybrid host)
	// mounted at, e.g., /host/sys/fs/cgroup. Attach("") attaches there, a path given to Attach
	// must be below it, and the paths in EventAttached are relative to it. Default: the
	// cgroup2 mount listed in /proc/self/mountinfo (in a container with a cgroup namespace of
	// its own, that is only the container's cgroup). The CLI sets it from --host-cgroup or
	// IMDSV2_HOST_CGROUP.
	HostCgroup string

	// HostNetns is the network namespace whose callers count as the host's (their events say
	// HostNetns; any other namespace is a caller's own: a container on a bridge, a pod), as a
	// path: /proc/PID/ns/net, /run/netns/NAME. Default: the agent's own, which is the host's
	// when it runs on the host or in a container with host networking (agent.Start, given the
	// host's /proc, defaults it to the host's pid 1's). The demo and the test bed name their
	// simulated instance's.
	HostNetns string

	// netnsUnknown makes the kernel side record no network namespace cookie, as where the
	// agent cannot name its own namespace, for tests.
	netnsUnknown bool
	// execAll makes exec tracing behave as on the root of the hierarchy (every task watched,
	// no cgroup test), for tests, which never attach to the root.
	execAll bool

	// singleRecord loads the packet programs of kernels without BTF (one record of at most
	// 2 KiB per packet) on any kernel, for tests.
	singleRecord bool

	// NoExec leaves out the exec/exit tracepoints (no argv capture in the kernel).
	NoExec bool
	// RequireExec makes Load fail, instead of carrying on without them, when the exec/exit
	// tracepoints cannot be loaded (no kernel BTF, lockdown in confidentiality mode).
	RequireExec bool
}

// withDefaults returns o with zero fields replaced by their defaults, or an error naming the
// first bad field.
func (o Options) withDefaults() (Options, error) {
	if !o.IPv4.IsValid() {
		o.IPv4 = DefaultIPv4
	}
	if !o.IPv6.IsValid() {
		o.IPv6 = DefaultIPv6
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.RingBufferSize == 0 {
		o.RingBufferSize = DefaultRingBufferSize
	}
	if o.SendCapture == 0 {
		o.SendCapture = MaxSendCapture
	}
	if o.RecvCapture == 0 {
		o.RecvCapture = defaultRecvCapture
	}
	var errs []string
	if !o.IPv4.Is4() {
		errs = append(errs, fmt.Sprintf("IPv4 %s is not an IPv4 address", o.IPv4))
	}
	if !o.IPv6.Is6() || o.IPv6.Is4In6() || o.IPv6.Zone() != "" {
		errs = append(errs, fmt.Sprintf("IPv6 %s is not a plain IPv6 address", o.IPv6))
	}
	page := os.Getpagesize()
	if n := o.RingBufferSize; n < page || n&(n-1) != 0 || n > 1<<30 {
		errs = append(errs, fmt.Sprintf("RingBufferSize %d is not a power of two between the page size (%d) and 1 GiB", n, page))
	}
	if o.SendCapture < 1 || o.SendCapture > MaxSendCapture {
		errs = append(errs, fmt.Sprintf("SendCapture %d is outside 1..%d", o.SendCapture, MaxSendCapture))
	}
	if o.RecvCapture < 1 || o.RecvCapture > MaxRecvCapture {
		errs = append(errs, fmt.Sprintf("RecvCapture %d is outside 1..%d", o.RecvCapture, MaxRecvCapture))
	}
	if o.NoExec && o.RequireExec {
		errs = append(errs, "NoExec and RequireExec contradict each other")
	}
	if len(errs) > 0 {
		return o, errors.New("bpf: bad options: " + strings.Join(errs, "; "))
	}
	return o, nil
}

// Features says what Load and Attach found and chose; the CLI prints it (String) so that an
// operator knows exactly what is being watched and how.
type Features struct {
	// Kernel is the running kernel's release (uname -r).
	Kernel string
	// BTF reports whether kernel BTF (/sys/kernel/btf/vmlinux) was found; argv capture needs it.
	BTF bool
	// Exec reports whether the exec/exit tracepoints are loaded; ExecSkipped says why not.
	Exec        bool
	ExecSkipped string
	// Cgroup is the cgroup v2 directory the programs are attached to ("" before Attach).
	Cgroup string
	// CgroupMounted reports that Attach mounted the cgroup2 hierarchy itself (none was).
	CgroupMounted bool
	// AttachMode is how the cgroup programs are attached: "bpf_link" (detached when the
	// agent closes or dies) or "prog_attach" (BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI, on
	// kernels without cgroup links; detached by Close).
	AttachMode string
	// Programs lists what is attached, e.g. "cgroup/connect4 imds_connect4".
	Programs []string
	// RingBufferSize is the ring buffer's size in bytes.
	RingBufferSize int
	// SendCapture is how many payload bytes of each outgoing packet are kept: Options.SendCapture,
	// or at most 2 KiB on a kernel without BTF of its own (SendCaptureLimited says so), where a
	// header block over 2 KiB written at once is classed incomplete.
	SendCapture        int
	SendCaptureLimited string
	// Endpoint lists the audited addresses, e.g. "169.254.169.254:80 [fd00:ec2::254]:80".
	Endpoint string
}

// String renders the features for people: one "name: value" line each.
func (f Features) String() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-16s %s\n", k+":", v) }
	line("kernel", f.Kernel)
	line("endpoint", f.Endpoint)
	line("btf", yesNo(f.BTF))
	exec := yesNo(f.Exec)
	if !f.Exec && f.ExecSkipped != "" {
		exec += " (" + f.ExecSkipped + ")"
	}
	line("exec tracing", exec)
	cg := f.Cgroup
	if cg == "" {
		cg = "(not attached)"
	} else if f.CgroupMounted {
		cg += " (cgroup2 mounted by the agent)"
	}
	line("cgroup", cg)
	line("attach mode", f.AttachMode)
	line("programs", strings.Join(f.Programs, ", "))
	line("ring buffer", fmt.Sprintf("%d KiB", f.RingBufferSize>>10))
	send := fmt.Sprintf("%d bytes per packet", f.SendCapture)
	if f.SendCaptureLimited != "" {
		send += " (" + f.SendCaptureLimited + ")"
	}
	line("send capture", send)
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// MissingError says what this process or this kernel lacks to run the auditor: the
// privileges (then the kernel was not asked), or the kernel features.
type MissingError struct {
	// Privileges lists the missing capabilities, each with what it is for.
	Privileges []string
	// Kernel is the kernel's release (uname -r), when kernel features are missing.
	Kernel string
	// Features lists the missing kernel features, the big pieces first.
	Features []Feature
}

// Feature is a kernel feature the auditor needs.
type Feature struct {
	// Name is how people call it, e.g. "the BPF ring buffer".
	Name string
	// Since is the Linux release that brought it, e.g. "5.8"; "" where it varies.
	Since string
	// ProbeErr is set when the probe failed in an unexpected way (not "not supported").
	ProbeErr string
}

// MinKernel is the oldest Linux release the auditor runs on: the sock_release hook (5.9) is
// the newest feature it needs.
const MinKernel = "5.9"

// Error says in one sentence what is missing.
func (e *MissingError) Error() string {
	if len(e.Privileges) > 0 || len(e.Features) == 0 {
		return "this process may not load the auditor: it lacks " + joinAnd(e.Privileges) + "; run it as root"
	}
	names := make([]string, len(e.Features))
	for i, f := range e.Features {
		names[i] = f.Name
		switch {
		case f.ProbeErr != "":
			names[i] += " (probe failed: " + f.ProbeErr + ")"
		case f.Since != "":
			names[i] += " (" + f.Since + "+)"
		}
	}
	return fmt.Sprintf("this kernel (%s) cannot run the auditor: it lacks %s; the auditor needs Linux %s or later",
		e.Kernel, joinAnd(names), MinKernel)
}

// UnsupportedKernel reports whether the kernel, not this process's privileges, is what is
// missing: a kernel on which the agent cannot run at all. (Package ready asks it through an
// interface, without importing bpf.)
func (e *MissingError) UnsupportedKernel() bool { return len(e.Privileges) == 0 && len(e.Features) > 0 }

// joinAnd joins a, b and c as "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
