//go:build linux

package kfeatures

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Kernel answers what package bpf asks of the kernel. Each feature probe returns nil, an error
// wrapping ebpf.ErrNotSupported when the kernel lacks the feature, or another error when the
// probe itself failed.
type Kernel interface {
	// Release is the kernel's release (uname -r).
	Release() string
	// Capabilities returns this process's effective capability set, one bit per capability.
	Capabilities() (uint64, error)
	ProgramType(ebpf.ProgramType) error
	// AttachType tells whether a program of type t can be loaded for attach type a (the
	// cgroup sock_release hook came in 5.9, years after its program type).
	AttachType(t ebpf.ProgramType, a ebpf.AttachType) error
	MapType(ebpf.MapType) error
	Helper(ebpf.ProgramType, asm.BuiltinFunc) error
}

var (
	mu   sync.Mutex
	fake Kernel
)

// Running returns the kernel this process runs on, or the fake a test put in its place.
func Running() Kernel {
	mu.Lock()
	defer mu.Unlock()
	if fake != nil {
		return fake
	}
	return running{}
}

// Fake puts k in the place of the running kernel until the test ends. Tests that use it must
// not run in parallel with tests that load the auditor.
func Fake(t testing.TB, k Kernel) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if fake != nil {
		t.Fatal("kfeatures.Fake: a fake kernel is in place already")
	}
	fake = k
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		fake = nil
	})
}

// running asks the kernel this process runs on.
type running struct{}

func (running) Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (running) Capabilities() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

func (running) ProgramType(t ebpf.ProgramType) error { return features.HaveProgramType(t) }

func (running) MapType(t ebpf.MapType) error { return features.HaveMapType(t) }

func (running) Helper(t ebpf.ProgramType, fn asm.BuiltinFunc) error {
	return features.HaveProgramHelper(t, fn)
}

// AttachType loads the smallest program of type t for attach type a ("return 1"); a kernel
// that does not know the attach type refuses it with EINVAL.
func (running) AttachType(t ebpf.ProgramType, a ebpf.AttachType) error {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type: t, AttachType: a, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	}, ebpf.ProgramOptions{LogDisabled: true})
	switch {
	case err == nil:
		return prog.Close()
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.E2BIG):
		return fmt.Errorf("%w: %v", ebpf.ErrNotSupported, err)
	}
	return err
}

// Without is a fake kernel with the given release that has every feature but the ones listed;
// a helper of a program type it lacks is missing too. This process has every capability.
type Without struct {
	KernelRelease string
	ProgramTypes  []ebpf.ProgramType
	AttachTypes   []ebpf.AttachType
	MapTypes      []ebpf.MapType
	Helpers       []asm.BuiltinFunc
}

func (w Without) Release() string { return w.KernelRelease }

func (Without) Capabilities() (uint64, error) { return ^uint64(0), nil }

func (w Without) ProgramType(t ebpf.ProgramType) error {
	return missing(slices.Contains(w.ProgramTypes, t))
}

func (w Without) AttachType(t ebpf.ProgramType, a ebpf.AttachType) error {
	return missing(slices.Contains(w.ProgramTypes, t) || slices.Contains(w.AttachTypes, a))
}

func (w Without) MapType(t ebpf.MapType) error { return missing(slices.Contains(w.MapTypes, t)) }

func (w Without) Helper(t ebpf.ProgramType, fn asm.BuiltinFunc) error {
	return missing(slices.Contains(w.ProgramTypes, t) || slices.Contains(w.Helpers, fn))
}

func missing(b bool) error {
	if b {
		return ebpf.ErrNotSupported
	}
	return nil
}

// AmazonLinux2 is Amazon Linux 2's older kernel, 4.14: cgroup_skb and cgroup sock programs,
// but no cgroup sock_addr (4.17), raw tracepoint (4.17) or BTF tracing programs (5.5, not in
// the list: nothing probes them, exec tracing is optional), no sock_release hook
// (5.9), no ring buffer (5.8), no socket-local storage (5.2), no bpf_get_current_cgroup_id
// (4.18), bpf_sk_fullsock (5.1) or bpf_ktime_get_boot_ns (5.8).
var AmazonLinux2 = Without{
	KernelRelease: "4.14.355-275.570.amzn2.x86_64",
	ProgramTypes:  []ebpf.ProgramType{ebpf.CGroupSockAddr, ebpf.RawTracepoint},
	AttachTypes:   []ebpf.AttachType{ebpf.AttachCgroupInetSockRelease},
	MapTypes:      []ebpf.MapType{ebpf.RingBuf, ebpf.SkStorage},
	Helpers:       []asm.BuiltinFunc{asm.FnGetCurrentCgroupId, asm.FnKtimeGetBootNs, asm.FnRingbufReserve, asm.FnSkStorageGet, asm.FnSkFullsock, asm.FnRingbufQuery},
}
