//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// capability numbers missing from older x/sys releases.
const (
	capPerfmon = 38
	capBPF     = 39
)

// Check reports whether this process may load the auditor and whether the kernel has what its
// programs use. It returns nil or a *MissingError that names each missing privilege or feature
// and what it is for. Load calls it first.
func Check() error {
	if missing := missingPrivileges(); len(missing) > 0 {
		// Feature probes need the same privileges; probing now would only add noise.
		return &MissingError{Missing: missing}
	}
	var missing []string
	probe := func(err error, what string) {
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrNotSupported):
			missing = append(missing, what)
		default:
			missing = append(missing, fmt.Sprintf("%s (probe failed: %v)", what, err))
		}
	}
	for _, p := range []struct {
		t    ebpf.ProgramType
		what string
	}{
		{ebpf.CGroupSockAddr, "program type cgroup sock_addr (Linux 4.17): the connect4/connect6 hooks"},
		{ebpf.CGroupSKB, "program type cgroup_skb (Linux 4.10): the packet hooks"},
		{ebpf.CGroupSock, "program type cgroup sock (Linux 4.10): the socket release hook"},
		{ebpf.RawTracepoint, "program type raw_tracepoint (Linux 4.17): exec/exit tracking"},
	} {
		probe(features.HaveProgramType(p.t), p.what)
	}
	for _, m := range []struct {
		t    ebpf.MapType
		what string
	}{
		{ebpf.RingBuf, "map type ringbuf (Linux 5.8): the event channel"},
		{ebpf.LRUHash, "map type lru_hash (Linux 4.10): the socket table"},
		{ebpf.PerCPUArray, "map type percpu_array: the lost-record counter"},
		{ebpf.CGroupArray, "map type cgroup_array: exec filtering by cgroup"},
	} {
		probe(features.HaveMapType(m.t), m.what)
	}
	for _, h := range []struct {
		t    ebpf.ProgramType
		fn   asm.BuiltinFunc
		what string
	}{
		{ebpf.CGroupSockAddr, asm.FnGetSocketCookie, "bpf_get_socket_cookie in connect hooks"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentPidTgid, "bpf_get_current_pid_tgid in connect hooks (the caller's pid)"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentUidGid, "bpf_get_current_uid_gid in connect hooks"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentComm, "bpf_get_current_comm in connect hooks"},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentCgroupId, "bpf_get_current_cgroup_id in connect hooks"},
		{ebpf.CGroupSockAddr, asm.FnRingbufReserve, "bpf_ringbuf_reserve in connect hooks"},
		{ebpf.CGroupSKB, asm.FnSkbLoadBytes, "bpf_skb_load_bytes in cgroup_skb"},
		{ebpf.CGroupSKB, asm.FnGetSocketCookie, "bpf_get_socket_cookie in cgroup_skb"},
		{ebpf.CGroupSKB, asm.FnKtimeGetBootNs, "bpf_ktime_get_boot_ns (Linux 5.8)"},
		{ebpf.CGroupSock, asm.FnGetSocketCookie, "bpf_get_socket_cookie in the sock_release hook"},
	} {
		probe(features.HaveProgramHelper(h.t, h.fn), "helper "+h.what)
	}
	if len(missing) > 0 {
		return &MissingError{Missing: missing}
	}
	return nil
}

// missingPrivileges compares the effective capabilities with what loading and attaching need.
func missingPrivileges() []string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return []string{fmt.Sprintf("could not read this process's capabilities: %v", err)}
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	admin := has(unix.CAP_SYS_ADMIN)
	var missing []string
	if !admin && !has(capBPF) {
		missing = append(missing, "CAP_BPF (or CAP_SYS_ADMIN): load BPF programs and maps; run as root")
	}
	if !admin && !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON (or CAP_SYS_ADMIN): read process memory for argv and attach tracepoints")
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN: attach cgroup packet programs")
	}
	return missing
}
