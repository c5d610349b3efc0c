//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/hostns"
)

// fallbackMount is where Attach mounts the cgroup2 hierarchy on a host that has none mounted.
const fallbackMount = "/run/imdsv2/cgroup2"

// Agent is the loaded auditor: its programs, maps and ring-buffer reader. Load creates it, Attach
// puts the programs on a cgroup, Next reads events, Close detaches and frees everything.
//
// Attach, Lost, Features and Close may be called from any goroutine; Next from one goroutine
// at a time.
type Agent struct {
	opts   Options
	coll   *ebpf.Collection
	reader *ringbuf.Reader
	boot   int64 // wall-clock ns at CLOCK_BOOTTIME zero

	// life is held for reading while Next or Lost use the maps and the reader, and taken for
	// writing by Close before it frees them; closed is set first, so they give up quickly.
	life   sync.RWMutex
	closed atomic.Bool

	mu        sync.Mutex  // guards the fields below
	execLinks []namedLink // the exec/exit tracepoints, attached once
	cgLinks   []namedLink // the cgroup programs, on the cgroup of cgroupFD
	cgroupFD  *os.File
	mounted   string
	features  Features
	lastLost  uint64
	watch     watchState

	// Used by Next only.
	rec          ringbuf.Record
	lostReported uint64
	lostChecked  time.Time
}

// program is one program of imds.c and where it goes.
type program struct {
	name   string // generated imdsProg* constant
	label  string // as in the ELF section, for people
	attach ebpf.AttachType
	exec   bool // BTF tracepoint of the exec/exit pair (tp_btf, attached by its section)
}

// programs in attach order: process tracking first (a process started right after Attach keeps
// its command line), socket release and packets next, connect last, so no connect is
// remembered without its packets being watched.
var programs = []program{
	{name: imdsProgImdsExec, label: "tp_btf/sched_process_exec", exec: true},
	{name: imdsProgImdsExit, label: "tp_btf/sched_process_exit", exec: true},
	{name: imdsProgImdsRelease, label: "cgroup/sock_release", attach: ebpf.AttachCgroupInetSockRelease},
	{name: imdsProgImdsIngress, label: "cgroup_skb/ingress", attach: ebpf.AttachCGroupInetIngress},
	{name: imdsProgImdsEgress, label: "cgroup_skb/egress", attach: ebpf.AttachCGroupInetEgress},
	{name: imdsProgImdsConnect4, label: "cgroup/connect4", attach: ebpf.AttachCGroupInet4Connect},
	{name: imdsProgImdsConnect6, label: "cgroup/connect6", attach: ebpf.AttachCGroupInet6Connect},
}

// Load checks privileges and kernel features, then loads the programs and maps into the kernel
// without attaching them. A *MissingError lists everything missing; a program the verifier
// refuses comes back with the verifier's whole log.
func Load(opts Options) (*Agent, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("bpf: raise RLIMIT_MEMLOCK for BPF maps (kernels before 5.11 charge it): %w", err)
	}
	f := Features{
		Kernel:         kernelRelease(),
		RingBufferSize: opts.RingBufferSize,
		Endpoint:       fmt.Sprintf("%s:%d [%s]:%d", opts.IPv4, opts.Port, opts.IPv6, opts.Port),
		AttachMode:     "(not attached)",
	}
	// The parsed kernel types serve the CO-RE relocations of the exec programs too: parsing
	// the kernel's BTF is most of the CPU a start costs, so it is done once.
	kernelTypes, btfErr := btf.LoadKernelSpec()
	f.BTF = btfErr == nil

	wantExec := !opts.NoExec
	switch {
	case opts.NoExec:
		f.ExecSkipped = "turned off (NoExec)"
	case btfErr != nil && !opts.RequireExec:
		wantExec = false
		f.ExecSkipped = fmt.Sprintf("no kernel BTF, argv capture needs it: %v", btfErr)
	case btfErr != nil:
		return nil, fmt.Errorf("bpf: exec tracing needs kernel BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux): %w", btfErr)
	}

	// A global function's context argument is checked against the kernel's own BTF: without
	// it, the packet programs are the ones that report one record per packet.
	single := btfErr != nil || opts.singleRecord
	f.SendCapture = opts.SendCapture
	if single {
		f.SendCapture = min(opts.SendCapture, singleRecordCapture)
		f.SendCaptureLimited = "no kernel BTF: header blocks over 2 KiB written at once are classed incomplete"
	}

	coll, err := loadCollection(opts, wantExec, single, kernelTypes)
	if err != nil && wantExec && !opts.RequireExec {
		// Lockdown in confidentiality mode refuses bpf_probe_read_kernel; carry on without
		// exec tracing rather than without an auditor, and say so.
		var retryErr error
		if coll, retryErr = loadCollection(opts, false, single, kernelTypes); retryErr == nil {
			wantExec = false
			f.ExecSkipped = "the kernel refused the exec/exit programs: " + firstLine(err)
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	f.Exec = wantExec

	reader, err := ringbuf.NewReader(coll.Maps[imdsMapEvents])
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("bpf: open the ring buffer: %w", err)
	}
	return &Agent{opts: opts, coll: coll, reader: reader, boot: bootOffset(), features: f}, nil
}

// hostNetnsID is the network namespace the kernel side counts as the host's (imds.c,
// host_netns and netns_known).
type hostNetnsID struct {
	cookie uint64 // 0: the initial namespace
	known  uint8  // 0: neither, the kernel side records no namespace cookie
}

// hostNetns names the network namespace the kernel side counts as the host's: the one at path
// (Options.HostNetns), or the agent's own (it runs on the host, or in a container with host
// networking). By its cookie (SO_NETNS_COOKIE, Linux 5.14), or, before 5.14, as the initial
// namespace when it is the network namespace of the host's init (initNetns). Otherwise it
// cannot be named, and the kernel side records no cookie.
func hostNetns(path string) hostNetnsID {
	if path == "" {
		path = "/proc/thread-self/ns/net"
		if c, err := socketNetnsCookie(); err == nil && c != 0 {
			return hostNetnsID{cookie: c, known: 1}
		}
	} else if c, err := netnsCookie(path); err == nil && c != 0 {
		return hostNetnsID{cookie: c, known: 1}
	}
	if initNetns(path, statNS) {
		return hostNetnsID{known: 1}
	}
	return hostNetnsID{}
}

// initNetns reports whether the network namespace at path is the initial one: that of pid 1
// of the initial pid namespace (the host's init, which never leaves it). Pid 1 is looked up in
// this process's /proc and, when path is "<proc>/1/ns/net", in that /proc (the host's, given to
// an agent in a pod with its own pid namespace).
func initNetns(path string, stat func(string) (nsID, error)) bool {
	target, err := stat(path)
	if err != nil {
		return false
	}
	roots := []string{"/proc"}
	if root, ok := strings.CutSuffix(path, "/1/ns/net"); ok && root != "/proc" {
		roots = append(roots, root)
	}
	for _, root := range roots {
		pid, err := stat(root + "/1/ns/pid")
		if err != nil || pid.ino != hostns.InitialPIDNSInode {
			continue
		}
		if net, err := stat(root + "/1/ns/net"); err == nil && net == target {
			return true
		}
	}
	return false
}

// nsID names a namespace by its nsfs device and inode.
type nsID struct{ dev, ino uint64 }

// statNS stats a namespace link.
func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// socketNetnsCookie returns the cookie of the calling thread's network namespace.
func socketNetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
}

// netnsCookie returns the cookie of the network namespace at path.
func netnsCookie(path string) (c uint64, err error) {
	err = inNetns(path, func() (err error) {
		c, err = socketNetnsCookie()
		return err
	})
	return c, err
}

// inNetns runs f on a thread that enters the network namespace at path and comes back (a
// thread that cannot come back is left to die with its goroutine). Sockets f opens stay in
// that namespace.
func inNetns(path string, f func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		err = f()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// singleRecordCapture is what the packet programs for kernels without BTF keep of a packet: one
// record's worth.
const singleRecordCapture = int(imdsCaptureLimitCAPTURE_RECORD_MAX)

// loadCollection sets the load-time variables and map sizes and loads the collection;
// kernelTypes, when not nil, is the kernel's BTF for CO-RE relocations, already parsed. single
// loads the packet programs that need no kernel BTF (one record per packet) under the names
// of the others.
func loadCollection(opts Options, exec, single bool, kernelTypes *btf.Spec) (*ebpf.Collection, error) {
	spec, err := loadImds()
	if err != nil {
		return nil, fmt.Errorf("bpf: read the embedded BPF object: %w", err)
	}
	spec.Maps[imdsMapEvents].MaxEntries = uint32(opts.RingBufferSize)
	if !exec {
		delete(spec.Programs, imdsProgImdsExec)
		delete(spec.Programs, imdsProgImdsExit)
		// Without the exec program the tables of exec records stay empty: no room for them
		// (they are the agent's largest maps: MAP_EXECS records of 512 bytes, MAP_EXECS_LONG
		// of 2.4 KiB, a byte per possible pid).
		spec.Maps[imdsMapExecs].MaxEntries = 1
		spec.Maps[imdsMapExecLong].MaxEntries = 1
		spec.Maps[imdsMapProcState].MaxEntries = 1
	}
	// Only one pair of packet programs is loaded: each is verified at every start.
	packets := map[string]string{imdsProgImdsEgress: imdsProgImdsEgressNobtf, imdsProgImdsIngress: imdsProgImdsIngressNobtf}
	for name, nobtf := range packets {
		if single {
			spec.Programs[name] = spec.Programs[nobtf]
		}
		delete(spec.Programs, nobtf)
	}
	netns := hostNetns(opts.HostNetns)
	if opts.netnsUnknown {
		netns = hostNetnsID{}
	}
	vars := []struct {
		name  string
		value any
	}{
		{imdsVarImdsIp4, opts.IPv4.As4()},
		{imdsVarImdsIp6, opts.IPv6.As16()},
		{imdsVarImdsPort, opts.Port},
		{imdsVarSendCapture, uint32(opts.SendCapture)},
		{imdsVarRecvCapture, uint32(opts.RecvCapture)},
		{imdsVarHostNetns, netns.cookie},
		{imdsVarNetnsKnown, netns.known},
		{imdsVarWakeBytes, uint32(opts.RingBufferSize / 64)},
	}
	for _, v := range vars {
		if err := spec.Variables[v.name].Set(v.value); err != nil {
			return nil, fmt.Errorf("bpf: set %s: %w", v.name, err)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes},
	})
	if err != nil {
		return nil, &LoadError{err: err}
	}
	return coll, nil
}

// LoadError is a program or map the kernel refused. Its message holds the whole verifier log,
// which is what anyone debugging it needs.
type LoadError struct{ err error }

// Error returns the error with the full verifier log, if there is one.
func (e *LoadError) Error() string {
	var ve *ebpf.VerifierError
	if errors.As(e.err, &ve) {
		return fmt.Sprintf("bpf: the kernel refused the programs: %v\nverifier log:\n%+v", e.err, ve)
	}
	return fmt.Sprintf("bpf: the kernel refused the programs: %v", e.err)
}

// Unwrap returns the underlying error (an *ebpf.VerifierError when the verifier refused).
func (e *LoadError) Unwrap() error { return e.err }

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Attach attaches the programs to the cgroup v2 directory cgroupPath and everything below it,
// with multi-attach so other programs there keep running. An empty path means the root of the
// host's cgroup2 hierarchy: Options.HostCgroup, or the mount found in /proc/self/mountinfo
// (mounted at /run/imdsv2/cgroup2 if absent), which covers every process and container on the
// host. Tests must pass a cgroup of their own. On error nothing stays attached.
//
// The first event Next returns after Attach is an EventAttached that describes the cgroup. If
// the cgroup is removed and a cgroup of the same path created again (systemd does that on
// every restart of a unit), Next reports an EventDetached, moves every program to the new
// cgroup and reports an EventAttached with the new id (see watch_linux.go).
func (a *Agent) Attach(cgroupPath string) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed.Load():
		return errors.New("bpf: Attach on a closed agent")
	case a.watch.dir != "":
		return fmt.Errorf("bpf: already attached to %s", a.features.Cgroup)
	}
	mounted := ""
	switch {
	case cgroupPath == "" && a.opts.HostCgroup != "":
		cgroupPath = a.opts.HostCgroup
	case cgroupPath == "":
		root, err := cgroup.Mountpoint()
		if errors.Is(err, cgroup.ErrNotMounted) {
			if err = cgroup.Mount(fallbackMount); err == nil {
				root, mounted = fallbackMount, fallbackMount
			}
		}
		if err != nil {
			return fmt.Errorf("bpf: find the cgroup2 hierarchy to attach to: %w", err)
		}
		cgroupPath = root
	case a.opts.HostCgroup != "":
		if _, ok := within(a.opts.HostCgroup, cgroupPath); !ok {
			return fmt.Errorf("bpf: attach: cgroup %s is not under the host's cgroup2 mount %s (HostCgroup); pass a directory below it", cgroupPath, a.opts.HostCgroup)
		}
	}
	defer func() {
		if err != nil && mounted != "" {
			_ = cgroup.Unmount(mounted)
		}
	}()
	if err := a.attachExec(); err != nil {
		return err
	}
	mode, err := a.attachCgroup(cgroupPath)
	if err != nil {
		closeLinks(a.execLinks)
		a.execLinks = nil
		return err
	}
	a.mounted = mounted
	a.features.Cgroup, a.features.CgroupMounted = cgroupPath, mounted != ""
	a.features.AttachMode, a.features.Programs = mode, nil
	for _, l := range append(append([]namedLink(nil), a.execLinks...), a.cgLinks...) {
		a.features.Programs = append(a.features.Programs, l.label)
	}
	a.startWatch(cgroupPath)
	return nil
}

// namedLink is an attached program and what to call it in messages.
type namedLink struct {
	link.Link
	label string
}

// closeLinks detaches links, last first.
func closeLinks(links []namedLink) error {
	var errs []error
	for i := len(links) - 1; i >= 0; i-- {
		if err := links[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("bpf: detach %s: %w", links[i].label, err))
		}
	}
	return errors.Join(errs...)
}

// attachExec attaches the exec/exit tracepoints, if they are loaded. They report nothing until
// attachCgroup names the cgroup whose tasks they watch. The caller holds mu.
func (a *Agent) attachExec() error {
	for _, p := range programs {
		prog := a.coll.Programs[p.name]
		if !p.exec || prog == nil {
			continue // exec/exit left out; Features says why
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			closeLinks(a.execLinks)
			a.execLinks = nil
			return fmt.Errorf("bpf: attach %s (%s): %w", p.label, p.name, err)
		}
		a.execLinks = append(a.execLinks, namedLink{l, p.label})
	}
	return nil
}

// attachCgroup opens the cgroup at path, points the exec filter at it and attaches the cgroup
// programs there, in the order of programs. It returns the attach mode. On error nothing of it
// stays attached. The caller holds mu.
func (a *Agent) attachCgroup(path string) (mode string, err error) {
	if err := cgroup.Check(path); err != nil {
		return "", fmt.Errorf("bpf: attach: %w", err)
	}
	dir, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("bpf: attach: open cgroup %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		dir.Close()
		return "", fmt.Errorf("bpf: attach: stat cgroup %s: %w", path, err)
	}
	var links []namedLink
	defer func() {
		if err != nil {
			closeLinks(links)
			_ = a.coll.Maps[imdsMapExecCgroup].Delete(uint32(0))
			_ = a.setExecAll(false)
			dir.Close()
		}
	}()
	// Execs are recorded for tasks under this cgroup; under the root, that is all of them.
	if err := a.coll.Maps[imdsMapExecCgroup].Put(uint32(0), uint32(dir.Fd())); err != nil {
		return "", fmt.Errorf("bpf: store the cgroup for exec filtering: %w", err)
	}
	if err := a.setExecAll(st.Ino == rootCgroupID || a.opts.execAll); err != nil {
		return "", err
	}
	// Every program goes to the directory opened above, whatever happens to the path
	// meanwhile, so that all of them sit on the cgroup whose id is reported.
	target := fmt.Sprintf("/proc/self/fd/%d", dir.Fd())
	for _, p := range programs {
		prog := a.coll.Programs[p.name]
		if p.exec || prog == nil {
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: target, Attach: p.attach, Program: prog})
		if err != nil {
			return "", fmt.Errorf("bpf: attach %s (%s) to %s: %w", p.label, p.name, path, err)
		}
		if mode == "" {
			mode = "prog_attach (BPF_F_ALLOW_MULTI)"
			if _, infoErr := l.Info(); infoErr == nil {
				mode = "bpf_link"
			}
		}
		links = append(links, namedLink{l, p.label})
	}
	a.cgLinks, a.cgroupFD = links, dir
	a.watch.id = st.Ino
	return mode, nil
}

// setExecAll tells the exec program whether every task is watched (exec_all).
func (a *Agent) setExecAll(all bool) error {
	v := uint32(0)
	if all {
		v = 1
	}
	if err := a.coll.Maps[imdsMapExecAll].Put(uint32(0), v); err != nil {
		return fmt.Errorf("bpf: store the exec filter's scope: %w", err)
	}
	return nil
}

// detachCgroup detaches the cgroup programs, clears the exec filter and lets go of the cgroup.
// The caller holds mu.
func (a *Agent) detachCgroup() error {
	err := closeLinks(a.cgLinks)
	a.cgLinks = nil
	if a.cgroupFD != nil {
		if derr := a.coll.Maps[imdsMapExecCgroup].Delete(uint32(0)); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) {
			err = errors.Join(err, fmt.Errorf("bpf: clear the exec filter's cgroup: %w", derr))
		}
		err = errors.Join(err, a.setExecAll(false))
		a.cgroupFD.Close()
		a.cgroupFD = nil
	}
	return err
}

// Features reports what Load and Attach found and chose.
func (a *Agent) Features() Features {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.features
	f.Programs = append([]string(nil), f.Programs...)
	return f
}

// Lost returns how many records the kernel could not put into the ring buffer since Load
// (summed over CPUs). If the counter cannot be read it returns the last value it read.
func (a *Agent) Lost() uint64 {
	a.life.RLock()
	defer a.life.RUnlock()
	return a.lost()
}

// lost is Lost for callers that hold life.
func (a *Agent) lost() uint64 {
	var n uint64
	var err error
	if !a.closed.Load() {
		n, err = a.readLost()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && n > a.lastLost {
		a.lastLost = n
	}
	return a.lastLost
}

func (a *Agent) readLost() (uint64, error) {
	var perCPU []uint64
	if err := a.coll.Maps[imdsMapLost].Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("bpf: read the lost-record counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Close detaches every program, stops Next (which then returns io.EOF) and frees the maps.
func (a *Agent) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	var errs []error
	// Closing the reader wakes a Next blocked in it, so that it lets go of life.
	if err := a.reader.Close(); err != nil {
		errs = append(errs, fmt.Errorf("bpf: close the ring buffer reader: %w", err))
	}
	a.life.Lock()
	defer a.life.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	errs = append(errs, a.detachCgroup(), closeLinks(a.execLinks))
	a.execLinks = nil
	a.coll.Close()
	if a.mounted != "" {
		if err := cgroup.Unmount(a.mounted); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// bootOffset returns the wall-clock time, in ns since the Unix epoch, at which CLOCK_BOOTTIME
// (the clock of bpf_ktime_get_boot_ns) was zero.
func bootOffset() int64 {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return before.UnixNano() - ts.Nano()
}
