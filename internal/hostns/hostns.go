// Package hostns tells whether this process sees the host as the host does: whether it runs in
// the initial cgroup and pid namespaces, or was given the host's /proc and cgroup2 mount as
// paths (a Kubernetes DaemonSet's hostPath volumes). The auditor needs one or the other to watch
// the whole host: in a pod's own cgroup namespace the cgroup2 mount is the pod's cgroup, and in
// its own pid namespace /proc lists only the pod's processes while the kernel reports host pids.
package hostns

import (
	"errors"
	"fmt"
	"strings"
)

// Inode numbers of the initial namespaces, fixed by the kernel (PROC_CGROUP_INIT_INO and
// PROC_PID_INIT_INO in include/linux/proc_ns.h) since Linux 3.8 and 4.6.
const (
	InitialCgroupNSInode = 0xEFFFFFFB
	InitialPIDNSInode    = 0xEFFFFFFC
)

// Environment variables that set the host paths in the CLI (flags --host-proc and --host-cgroup).
const (
	EnvProc   = "IMDSV2_HOST_PROC"
	EnvCgroup = "IMDSV2_HOST_CGROUP"
)

// Facts are what the coverage record keeps about where the agent ran.
type Facts struct {
	// InitialCgroupNS: the agent ran in the host's (initial) cgroup namespace.
	InitialCgroupNS bool `json:"initial_cgroup_ns"`
	// InitialPIDNS: the agent ran in the host's (initial) pid namespace.
	InitialPIDNS bool `json:"initial_pid_ns"`
	// HostProc: the host's /proc was given (--host-proc) and used for attribution.
	HostProc bool `json:"host_proc"`
	// HostCgroup: the host's cgroup2 mount was given (--host-cgroup) and used to attach and to
	// name cgroups.
	HostCgroup bool `json:"host_cgroup"`
}

// HostPaths reports whether any host path was given.
func (f Facts) HostPaths() bool { return f.HostProc || f.HostCgroup }

// SeesHost reports whether the agent saw the host as the host does: the host's cgroup2
// hierarchy (initial cgroup namespace, or the host's mount given) and the host's processes
// (initial pid namespace, or the host's /proc given). Without it, a watch of "the whole host"
// is a watch of the agent's own container.
func (f Facts) SeesHost() bool {
	return (f.InitialCgroupNS || f.HostCgroup) && (f.InitialPIDNS || f.HostProc)
}

// Paths are the host's /proc and cgroup2 mount as this process sees them; "" means this
// process's own (/proc, and the cgroup2 mount in /proc/self/mountinfo).
type Paths struct {
	Proc   string
	Cgroup string
}

// PathsFromEnv returns the paths set in IMDSV2_HOST_PROC and IMDSV2_HOST_CGROUP.
func PathsFromEnv(getenv func(string) string) Paths {
	return Paths{Proc: getenv(EnvProc), Cgroup: getenv(EnvCgroup)}
}

// ErrNotHost is wrapped by the error of RequireHost.
var ErrNotHost = errors.New("hostns: the agent does not see the host")

// RequireHost returns nil when f.SeesHost(), and otherwise an error wrapping ErrNotHost that
// says which namespace is private and what a container or DaemonSet needs to watch the host.
func RequireHost(f Facts) error {
	if f.SeesHost() {
		return nil
	}
	var what []string
	if !f.InitialCgroupNS && !f.HostCgroup {
		what = append(what, "its own cgroup namespace (watching the root of the cgroup2 mount here would watch only this container's cgroup)")
	}
	if !f.InitialPIDNS && !f.HostProc {
		what = append(what, "its own pid namespace (/proc here does not list the host's processes, so callers cannot be named)")
	}
	return fmt.Errorf("%w: this process runs in %s. To audit the whole host from a container, give it the host's view:\n"+
		"  - Kubernetes DaemonSet: hostPID: true, or a hostPath volume of /proc mounted at /host/proc and --host-proc /host/proc (%s);\n"+
		"    a hostPath volume of /sys/fs/cgroup mounted read-only at /host/sys/fs/cgroup and --host-cgroup /host/sys/fs/cgroup (%s);\n"+
		"    securityContext privileged: true, or capabilities BPF, PERFMON, NET_ADMIN, SYS_ADMIN and SYS_RESOURCE;\n"+
		"  - docker run: --pid=host --cgroupns=host --privileged, or the same host paths and flags;\n"+
		"or pass --cgroup to audit one cgroup only (the verdict then covers that cgroup, not the instance)",
		ErrNotHost, strings.Join(what, " and "), EnvProc, EnvCgroup)
}
