// Package bpf is the kernel half of the imdsv2 auditor: eBPF programs that see every TCP
// conversation with the instance metadata service (IMDS) from the processes of a cgroup
// subtree, and the loader that puts them into the kernel and reads what they report.
//
// # Programs
//
// All programs live in imds.c and are compiled ahead of time (bpf2go, one committed object for
// every little-endian architecture), so running the auditor needs neither a compiler nor kernel
// headers:
//
//   - cgroup/connect4 and cgroup/connect6: a connect() to the IMDS address and port (also as
//     an IPv4-mapped IPv6 address) marks the socket, in socket-local storage, with the
//     caller's identity (pid, tid, uid, gid, comm, cgroup id and network namespace cookie, and
//     whether that namespace is the host's), and reports EventConnect;
//   - cgroup_skb/egress: every TCP segment with payload on such a socket is reported with its
//     sequence number and up to Options.SendCapture payload bytes (EventSend), a GSO/TSO
//     packet of up to 64 KiB as several events of at most 2 KiB, each with the sequence
//     number of its first byte, which the auditor's reassembler stitches together;
//   - cgroup_skb/ingress: every answer segment with payload is reported with its first
//     Options.RecvCapture bytes (the status line) and the IP TTL / IPv6 hop limit (EventRecv);
//   - cgroup/sock_release: a socket connected to IMDS is released (EventClose);
//   - BTF tracepoints (tp_btf) sched_process_exec and sched_process_exit: pid, parent, uid,
//     executable and argv, read in the kernel so that short-lived processes keep their command
//     line, only for tasks in the watched cgroup subtree (every task, with no cgroup test, when
//     it is the hierarchy's root). They are kept in a kernel table (LRU, 4096 processes, 368
//     bytes of executable and argv each; longer command lines whole in a second one of 1024)
//     until the process exits (its last thread), and reported (EventExec, dated by the process's
//     start for its first exec, by the exec for a later one, with the process's and its parent's
//     start) only when the process connects to IMDS, with its ancestors' (up to 8 processes,
//     while each parent's start is the one its child names), each once, before its
//     EventConnect; EventExit follows only for the processes reported. An exit learns from one
//     byte per pid whether its process has anything to clean up or report.
//
// Packets of sockets whose connect() was not seen (connected before the agent started) are
// still reported, matched by address and port, with no caller identity (PID 0).
//
// Records do not wake the reader up one by one (BPF_RB_NO_WAKEUP) until a burst fills 1/64 of
// the ring buffer; Next reads at least every 100 ms, so events reach it at most that late.
//
// Every program returns "allow" on every path: the auditor never changes the fate of a packet
// or a connect(). Nothing is reported for traffic that is not to or from IMDS. A record that
// does not fit into the ring buffer is counted (Agent.Lost) and reported as EventLost, never
// dropped silently.
//
// # Use
//
//	agent, err := bpf.Load(bpf.Options{})       // checks privileges and kernel features first
//	...
//	err = agent.Attach("")                      // "" = root of the cgroup2 hierarchy
//	defer agent.Close()                         // detaches everything
//	fmt.Println(agent.Features())               // what was attached, and how
//	for {
//		ev, err := agent.Next(ctx)               // agent is an audit.Source
//		...
//	}
//
// Tests must attach to a cgroup of their own (see internal/cgroup), never to the root.
//
// # What is watched
//
// The first event Next returns is an EventAttached whose Watch names the cgroup as the host
// sees it (path relative to the host's cgroup2 root, id, whether it is that root: id 1, and
// whether exec tracing is on). Next checks every second that the path is still that cgroup.
// When it was removed (systemd removes and creates again the cgroup of a unit on every
// restart), every program is detached from it and Next reports an EventDetached, dated when
// the cgroup was last seen; once a cgroup is back at the path, the programs are attached to it
// and an EventAttached with the new id follows. The time between the two is a gap in coverage.
// In a container, Options.HostCgroup names the host's cgroup2 mount.
//
// # Kernel requirements
//
// Linux 5.9 or later (ring buffer and bpf_ktime_get_boot_ns 5.8, the cgroup sock_release hook
// 5.9), cgroup v2 (mounted by Attach when
// absent), and for argv capture BTF at /sys/kernel/btf/vmlinux; without BTF, or under lockdown
// in confidentiality mode, the exec/exit programs are left out and Features says why. Without
// BTF the packet programs also keep only the first 2 KiB of each packet (the 64 KiB capture is
// a global BPF function, whose context argument the verifier checks against the kernel's BTF),
// so a header block over 2 KiB written at once is classed incomplete; Features says so too. Needs
// root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (plus CAP_SYS_RESOURCE before Linux 5.11,
// which charge BPF maps to the locked-memory limit).
package bpf
