//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/kfeatures"
)

// capability numbers missing from older x/sys releases.
const (
	capPerfmon = 38
	capBPF     = 39
)

// requirement is one thing of the kernel the programs use: a program type (prog alone), an
// attach type or a helper of a program type, or a map type; how people call it, and the
// release that brought it ("" where it varies with the program type). A helper that works on
// one map type (onMap) is not named when the kernel lacks the map type itself.
type requirement struct {
	prog        ebpf.ProgramType
	attach      ebpf.AttachType
	helper      asm.BuiltinFunc
	mapType     ebpf.MapType
	onMap       ebpf.MapType
	name, since string
}

// requirements in the order they are named: the big pieces first.
var requirements = []requirement{
	{mapType: ebpf.RingBuf, name: "the BPF ring buffer", since: "5.8"},
	{prog: ebpf.CGroupSockAddr, name: "cgroup sock_addr programs", since: "4.17"},
	{prog: ebpf.CGroupSKB, name: "cgroup_skb programs", since: "4.10"},
	{prog: ebpf.CGroupSock, name: "cgroup sock programs", since: "4.10"},
	{prog: ebpf.CGroupSock, attach: ebpf.AttachCgroupInetSockRelease, name: "the cgroup sock_release hook", since: "5.9"},
	{mapType: ebpf.SkStorage, name: "socket-local storage maps", since: "5.2"},
	{mapType: ebpf.LRUHash, name: "LRU hash maps", since: "4.10"},
	{mapType: ebpf.PerCPUArray, name: "per-CPU array maps", since: "4.6"},
	{mapType: ebpf.CGroupArray, name: "cgroup array maps", since: "4.8"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetSocketCookie, name: "bpf_get_socket_cookie in connect hooks"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetCurrentPidTgid, name: "bpf_get_current_pid_tgid in connect hooks"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetCurrentUidGid, name: "bpf_get_current_uid_gid in connect hooks"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetCurrentComm, name: "bpf_get_current_comm in connect hooks"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetCurrentCgroupId, name: "bpf_get_current_cgroup_id", since: "4.18"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnRingbufReserve, name: "bpf_ringbuf_reserve", since: "5.8"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnGetNetnsCookie, name: "bpf_get_netns_cookie in connect hooks", since: "5.7"},
	{prog: ebpf.CGroupSockAddr, helper: asm.FnSkStorageGet, onMap: ebpf.SkStorage, name: "bpf_sk_storage_get in connect hooks", since: "5.3"},
	{prog: ebpf.CGroupSKB, helper: asm.FnSkbLoadBytes, name: "bpf_skb_load_bytes in cgroup_skb programs"},
	{prog: ebpf.CGroupSKB, helper: asm.FnGetSocketCookie, name: "bpf_get_socket_cookie in cgroup_skb programs"},
	{prog: ebpf.CGroupSKB, helper: asm.FnSkStorageGet, onMap: ebpf.SkStorage, name: "bpf_sk_storage_get in cgroup_skb programs", since: "5.2"},
	{prog: ebpf.CGroupSKB, helper: asm.FnKtimeGetBootNs, name: "bpf_ktime_get_boot_ns", since: "5.8"},
	{prog: ebpf.CGroupSKB, helper: asm.FnSkFullsock, name: "bpf_sk_fullsock in cgroup_skb programs", since: "5.1"},
	{prog: ebpf.CGroupSKB, helper: asm.FnRingbufQuery, onMap: ebpf.RingBuf, name: "bpf_ringbuf_query", since: "5.8"},
	{prog: ebpf.CGroupSock, helper: asm.FnGetSocketCookie, name: "bpf_get_socket_cookie in the sock_release hook"},
	{prog: ebpf.CGroupSock, helper: asm.FnSkStorageGet, onMap: ebpf.SkStorage, name: "bpf_sk_storage_get in the sock_release hook", since: "5.9"},
}

// isProgramType reports whether r is a program type alone.
func (r requirement) isProgramType() bool {
	return r.prog != ebpf.UnspecifiedProgram && r.attach == ebpf.AttachNone && r.helper == asm.FnUnspec
}

func (r requirement) probe(k kfeatures.Kernel) error {
	switch {
	case r.mapType != ebpf.UnspecifiedMap:
		return k.MapType(r.mapType)
	case r.helper != asm.FnUnspec:
		return k.Helper(r.prog, r.helper)
	case r.attach != ebpf.AttachNone:
		return k.AttachType(r.prog, r.attach)
	}
	return k.ProgramType(r.prog)
}

// Check reports whether this process may load the auditor and whether the kernel has what its
// programs use. It returns nil or a *MissingError that names each missing privilege or
// feature. Load calls it first.
func Check() error {
	k := kfeatures.Running()
	if missing := missingPrivileges(k); len(missing) > 0 {
		// Feature probes need the same privileges; probing now would only add noise.
		return &MissingError{Privileges: missing}
	}
	e := &MissingError{Kernel: k.Release()}
	lacks := map[ebpf.ProgramType]bool{}
	lacksMap := map[ebpf.MapType]bool{}
	for _, r := range requirements {
		if !r.isProgramType() && lacks[r.prog] || r.onMap != ebpf.UnspecifiedMap && lacksMap[r.onMap] {
			continue // the program or map type says it all
		}
		err := r.probe(k)
		if err == nil {
			continue
		}
		f := Feature{Name: r.name, Since: r.since}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			f.ProbeErr = err.Error()
		}
		e.Features = append(e.Features, f)
		if r.isProgramType() {
			lacks[r.prog] = true
		}
		if r.mapType != ebpf.UnspecifiedMap {
			lacksMap[r.mapType] = true
		}
	}
	if len(e.Features) > 0 {
		return e
	}
	return nil
}

// missingPrivileges compares the effective capabilities with what loading and attaching need.
func missingPrivileges(k kfeatures.Kernel) []string {
	caps, err := k.Capabilities()
	if err != nil {
		return []string{fmt.Sprintf("a capability set it can read (capget: %v)", err)}
	}
	has := func(c int) bool { return caps&(1<<uint(c)) != 0 }
	admin := has(unix.CAP_SYS_ADMIN)
	var missing []string
	if !admin && !has(capBPF) {
		missing = append(missing, "CAP_BPF (or CAP_SYS_ADMIN) to load BPF programs and maps")
	}
	if !admin && !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON (or CAP_SYS_ADMIN) to read argv and attach tracepoints")
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN to attach cgroup packet programs")
	}
	return missing
}
