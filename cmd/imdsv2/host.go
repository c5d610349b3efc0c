package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/imdsv2/imdsv2/internal/hostns"
)

// hostDoc is the part of the help of audit and ready about running in a container.
const hostDoc = `
Running in a container:
In a container or Kubernetes pod (its own cgroup and pid namespaces) the agent sees only its own
cgroup and processes. To watch the whole host it needs the host's view: hostPID: true (or the
host's /proc mounted, e.g. at /host/proc, and --host-proc /host/proc) and the host's cgroup2
mount (hostPath /sys/fs/cgroup mounted at /host/sys/fs/cgroup and --host-cgroup
/host/sys/fs/cgroup); with them it attaches at the root of the host's hierarchy and names callers
(command line, parents, user, cgroup, container, pod) as the host does. Without them, in a
namespace of its own and without --cgroup, it refuses to start and says what is missing.
`

// hostFlags are --host-proc and --host-cgroup: the host's /proc and cgroup2 mount as seen from
// a container.
type hostFlags struct {
	paths hostns.Paths
}

// register adds the flags to fs, with defaults from IMDSV2_HOST_PROC and IMDSV2_HOST_CGROUP.
func (h *hostFlags) register(fs *flag.FlagSet) {
	env := hostns.PathsFromEnv(os.Getenv)
	fs.StringVar(&h.paths.Proc, "host-proc", env.Proc,
		"`DIR` is the host's /proc as mounted in this container, e.g. /host/proc; callers are named from it (env "+hostns.EnvProc+"; default: /proc)")
	fs.StringVar(&h.paths.Cgroup, "host-cgroup", env.Cgroup,
		"`DIR` is the host's cgroup2 mount as mounted in this container, e.g. /host/sys/fs/cgroup; the agent attaches at its root (env "+hostns.EnvCgroup+"; default: the cgroup2 mount in /proc/self/mountinfo)")
}

// describeHost renders the facts for the start-up block, in the style of bpf.Features.String.
func describeHost(f hostns.Facts) string {
	return fmt.Sprintf("%-16s cgroup %s, pid %s; host paths: /proc %s, cgroup2 %s\n", "namespaces:",
		initial(f.InitialCgroupNS), initial(f.InitialPIDNS), given(f.HostProc), given(f.HostCgroup))
}

func initial(b bool) string {
	if b {
		return "initial"
	}
	return "own"
}

func given(b bool) string {
	if b {
		return "given"
	}
	return "not given"
}
