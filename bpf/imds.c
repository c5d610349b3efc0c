//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel half of the imdsv2 auditor: sees every TCP conversation with the
 * instance metadata service (IMDS) from the processes of one cgroup subtree,
 * and the exec/exit of those processes, and reports them through one ring
 * buffer. User space (package audit) reassembles and classifies the requests.
 *
 *   cgroup/connect4, cgroup/connect6  connect() to IMDS: mark the socket with
 *                                     the caller's identity (socket storage),
 *                                     report the exec records of the caller
 *                                     and its ancestors
 *   cgroup_skb/egress                 request bytes of those sockets
 *   cgroup_skb/ingress                first answer bytes and the IP TTL
 *   tp_btf/sched_process_exec         pid, parent, executable, argv: kept in
 *                                     a table until the process connects
 *   cgroup/sock_release               a marked socket is gone
 *   tp_btf/sched_process_exit         forget the exec record; pid, for a
 *                                     process reported, so user space can
 *                                     expire state
 *
 * Rules every program here keeps:
 *  - it never changes a packet's or a connect()'s fate: the cgroup programs
 *    return 1 (allow) on every path, the tracepoints return 0;
 *  - it emits nothing for traffic that is not to or from IMDS, and spends as
 *    little as it can on it: a packet to anything else is let through after
 *    a few loads (egress: of its destination address, which DNAT may have
 *    made IMDS's; ingress: of its socket's peer), without a helper call;
 *  - a record that cannot be reserved in the ring buffer is counted in
 *    `lost`, never dropped silently;
 *  - a record does not wake the reader up unless a burst is waiting
 *    (wake_flags).
 */

#include "imds_kernel.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ALLOW 1

/* Capture limits. The reservation sizes are compile-time constants (the
 * ring buffer needs them); the load-time variables below only lower them.
 *
 * An outgoing packet is reported as up to SEND_CHUNKS records of at most
 * SEND_CHUNK bytes each, every record with the TCP sequence number of its first
 * byte, so that user space stitches them like any other segments. A header
 * block written at once reaches the program as one packet of up to 64 KiB (GSO
 * and TSO on loopback or a veth): SEND_MAX covers the largest such packet. */
#define SEND_SMALL 512
#define SEND_CHUNK 2048
#define SEND_CHUNKS 32
#define SEND_MAX (SEND_CHUNK * SEND_CHUNKS)
#define RECV_SMALL 64
#define RECV_MAX 256
#define EXE_MAX 256
#define ARGV_MAX 2048
/* Executable and argv bytes an exec record holds itself (execs); longer ones
 * are kept whole in exec_long. 368 makes a record of 512 bytes. */
#define EXEC_SHORT 368
/* Exec records reported per connect: the caller's and its ancestors'. */
#define LINEAGE_MAX 8
#define COMM_LEN 16

/* The limits and defaults Go checks and fills Options with (bpf2go -type
 * generates them; Go keeps no copy). */
enum capture_limit {
	CAPTURE_SEND_MAX = SEND_MAX,       /* largest Options.SendCapture */
	CAPTURE_RECV_MAX = RECV_MAX,       /* largest Options.RecvCapture */
	CAPTURE_RECV_DEFAULT = RECV_SMALL, /* default Options.RecvCapture */
	CAPTURE_RECORD_MAX = SEND_CHUNK,   /* data bytes of one packet record */
	CAPTURE_EXE_MAX = EXE_MAX,         /* executable path bytes of an exec record */
	CAPTURE_ARGV_MAX = ARGV_MAX,       /* argv bytes of an exec record */
	CAPTURE_EXEC_SHORT = EXEC_SHORT,   /* executable and argv bytes in execs itself */
};

/* Map sizes: the ring buffer's default (Options.RingBufferSize), the table of
 * exec records. */
enum map_size {
	MAP_RING_BUFFER = 4 << 20,
	MAP_EXECS = 4096,
	MAP_EXECS_LONG = 1024,
};

enum event_kind {
	EVENT_CONNECT = 1,
	EVENT_SEND = 2,
	EVENT_RECV = 3,
	EVENT_EXEC = 4,
	EVENT_EXIT = 5,
	EVENT_CLOSE = 6,
};

enum event_flag {
	/* The socket's connect() was not seen (it predates the agent, or its
	 * storage could not be allocated): matched by address and port, caller
	 * unknown. */
	FLAG_NO_CONNECT = 1,
	/* data holds fewer bytes than data_len says the packet/argv had. */
	FLAG_TRUNCATED = 2,
	/* connect6 to an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
	FLAG_V4_MAPPED = 4,
	/* argv could not be read from the new process's memory. */
	FLAG_ARGV_FAULT = 8,
	/* The caller's socket is in the host's network namespace (host_netns):
	 * identity.netns_cookie is that namespace's. Set from connect on. */
	FLAG_HOST_NETNS = 16,
};

/*
 * Who a record is about: the task that connected (for the records of its
 * socket, as connect saw it), executed or exited.
 */
struct identity {
	__u64 cgroup_id;    /* cgroup v2 id */
	__u64 netns_cookie; /* network namespace of the socket (bpf_get_netns_cookie at
			     * connect); 0 where not known: exec/exit, sockets whose
			     * connect was not seen */
	__u32 pid;          /* thread-group id, as user space calls a pid */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	char comm[COMM_LEN];
};

/*
 * Header of every ring-buffer record; cap_len bytes of data follow it.
 * Laid out without implicit padding so the bpf2go-generated Go struct has
 * the same bytes. Addresses are in network order (IPv4 in the first four
 * bytes), ports in host order.
 *
 * data by kind:
 *   EVENT_SEND  TCP payload of one outgoing packet from sequence number seq
 *               on, at most SEND_CHUNK bytes; a packet longer than that is
 *               reported as several records (at most send_capture bytes in all)
 *   EVENT_RECV  first TCP payload bytes of one incoming packet
 *   EVENT_EXEC  executable path with its NUL (aux_len bytes), then argv as
 *               the process has it: NUL-separated strings
 *   other       nothing
 */
struct event {
	__u64 time_ns; /* CLOCK_BOOTTIME (bpf_ktime_get_boot_ns); exec: the task's
			* start_boottime (its fork) for its first exec */
	__u64 cookie;  /* socket cookie; 0 for exec/exit */
	/* exec: when the process and its parent (at the exec) started, CLOCK_BOOTTIME
	 * ns, as /proc counts a start: they tell a parent from a later holder of its
	 * pid. 0 for the other kinds. */
	__u64 start_ns;
	__u64 parent_start_ns;
	struct identity id;
	__u32 ppid;     /* exec/exit only: parent's thread-group id */
	__u32 seq;      /* send/recv: TCP sequence number of data[0] */
	__u32 data_len; /* send/recv: payload bytes from seq on that this record stands
			 * for (the last record of a packet: to its end); exec: argv bytes */
	__u16 cap_len;  /* bytes of data after this header */
	__u16 aux_len;  /* exec: bytes of data holding the executable path */
	__u16 local_port;
	__u16 remote_port;
	__u8 kind;   /* enum event_kind */
	__u8 family; /* AF_INET or AF_INET6 of the packet or address; 0 for exec/exit */
	__u8 ttl;    /* send/recv: IP TTL or IPv6 hop limit of the packet */
	__u8 flags;  /* enum event_flag bits */
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* What connect() learnt about a socket, kept for its packets. */
struct sock_info {
	struct identity id;
	__u8 flags; /* FLAG_V4_MAPPED, FLAG_HOST_NETNS: copied into its records */
	__u8 pad[7];
};

/* Load-time configuration (CollectionSpec.Variables). Addresses in network
 * order; the defaults are the real endpoints, tests point them at loopback. */
volatile const __u32 imds_ip4 = 0xfea9fea9; /* 169.254.169.254 */
volatile const __u32 imds_ip6[4] = {
	/* fd00:ec2::254, stored in network order */
	bpf_htonl(0xfd000ec2), 0, 0, bpf_htonl(0x00000254),
};
volatile const __u16 imds_port = 80;
volatile const __u32 send_capture = SEND_MAX;
volatile const __u32 recv_capture = RECV_SMALL;
/* Cookie of the network namespace counted as the host's: the agent's own
 * (SO_NETNS_COOKIE, Linux 5.14); 0 for the initial namespace. netns_known is 0
 * when the agent can name neither (before 5.14, outside the initial
 * namespace): then no cookie is recorded, and user space decides by other
 * evidence. */
volatile const __u64 host_netns = 0;
volatile const __u8 netns_known = 1;
/* Bytes waiting in the ring buffer from which a record wakes the reader up
 * (see wake_flags); the loader sets it from the ring buffer's size. */
volatile const __u32 wake_bytes = MAP_RING_BUFFER / 64;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MAP_RING_BUFFER);
} events SEC(".maps");

/* Ring-buffer reservations that failed, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Sockets connected to IMDS: the caller's identity, kept by the kernel with the
 * socket itself (socket-local storage, Linux 5.2; from connect hooks 5.3, from
 * sock_release 5.9) and freed with it, so nothing is evicted or left behind.
 * Looking it up on a socket without it is a pointer test. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sockets SEC(".maps");

/*
 * The exec record of every process of the watched cgroup subtree, by pid
 * (thread-group id), kept from its exec to its exit without a ring-buffer
 * record: most processes never talk to IMDS. When one connects to IMDS, the
 * records of it and of its ancestors go into the ring buffer (report_lineage),
 * each once (reported), before the connect event; so a process that sends one
 * request and exits at once keeps its command line and its parents'. A
 * parent's record is followed only while its start is the one the child's
 * record names (a pid reused since is not the parent). LRU: a
 * full table forgets the processes least recently executed (long-running
 * ones, which user space can still read in /proc).
 *
 * A record holds EXEC_SHORT bytes of executable and argv, enough for most
 * command lines: an exec costs a copy of 512 bytes. A longer one (long) is
 * kept whole, header included, in exec_long as well; where that table lost
 * it, the record's own first bytes are reported, marked truncated.
 */
struct exec_info {
	__u8 reported;  /* hdr and data went into the ring buffer */
	__u8 long_data; /* hdr.cap_len > EXEC_SHORT: the whole record is in exec_long */
	__u8 pad[6];
	struct event hdr; /* EVENT_EXEC (time_ns: see struct event); cap_len bytes of data */
	__u8 data[EXEC_SHORT];
};

struct exec_long {
	struct event hdr; /* as in execs */
	__u8 data[EXE_MAX + ARGV_MAX];
};

/*
 * What the exec tables hold for each pid, one byte per pid (the thread-group
 * id), set at exec, cleared at exit: an exit learns from one load, with no
 * hash lookup and no cgroup test, whether its process has anything to clean
 * up or report. Pids are sequential, so the bytes of recent processes share
 * cache lines. Array values are 8-byte aligned, so bytes go 8 to an entry:
 * PID_MAX_LIMIT (4194304 on 64-bit Linux) pids in 4 MiB. A process's exec and
 * exit write its byte; a child's connect marks it EXIT_DUE. That mark is not
 * atomic (5.10 has none for bytes): made while the parent executes or exits,
 * it can be lost (the exit goes unreported; user space checks a pid's start
 * before it trusts an old record) or left to the pid's next holder (whose
 * exit is then reported too, which user space ignores).
 */
#define PID_LIMIT (4 << 20)
enum proc_state_bit {
	PROC_RECORDED = 1, /* execs has a record of it (unless the LRU evicted it) */
	PROC_LONG = 2,     /* exec_long has it too */
	/* An exec record of it was reported (it or a descendant connected):
	 * its exit is reported, for every later image too, so that user space
	 * lets go of what it was told. */
	PROC_EXIT_DUE = 4,
};

struct proc_bytes {
	__u8 b[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PID_LIMIT / 8);
	__type(key, __u32);
	__type(value, struct proc_bytes);
} proc_state SEC(".maps");

/* pid's byte in proc_state. */
static __always_inline __u8 *proc_byte(__u32 pid)
{
	__u32 i = pid >> 3;
	struct proc_bytes *w = bpf_map_lookup_elem(&proc_state, &i);

	if (!w)
		return 0;
	return &w->b[pid & 7];
}

/* The exec program builds a record here, whole: execs takes its first
 * sizeof(struct exec_info) bytes, exec_long its hdr on. */
struct exec_build {
	struct exec_info x;
	__u8 more[EXE_MAX + ARGV_MAX - EXEC_SHORT]; /* continues x.data */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAP_EXECS);
	__type(key, __u32);
	__type(value, struct exec_info);
} execs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAP_EXECS_LONG);
	__type(key, __u32);
	__type(value, struct exec_long);
} exec_long SEC(".maps");

/* Where the exec program builds a record (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_build);
} exec_scratch SEC(".maps");

/* Slot 0: the cgroup the agent attached to; an exec outside it is not recorded. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} exec_cgroup SEC(".maps");

/* Slot 0: 1 when that cgroup is the root of the hierarchy (an agent watching
 * the whole host): every task is under it, and exec skips the test. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} exec_all SEC(".maps");

/* The contract's enums in BTF, for bpf2go, even where the compiler folds every
 * use into constants: bpf2go generates the types of these variables. */
const enum event_kind unused_event_kind __attribute__((unused));
const enum event_flag unused_event_flag __attribute__((unused));
const enum capture_limit unused_capture_limit __attribute__((unused));
const enum map_size unused_map_size __attribute__((unused));
/* The record header: named with bpf2go -type (a pointer keeps it in BTF). */
const struct event *unused_event __attribute__((unused));

/* Hides what the compiler knows about v, so that a bounds check written after
 * it is emitted as written, on the register later passed to a helper, where
 * the verifier looks for it. */
#define opaque(v) asm volatile("" : "+r"(v))

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* bpf_ringbuf_submit/output flags and bpf_ringbuf_query's BPF_RB_AVAIL_DATA
 * (UAPI enum values, never renumbered). */
#define RB_NO_WAKEUP 1
#define RB_FORCE_WAKEUP 2
#define RB_AVAIL_DATA 0

/*
 * A record does not wake the reader up: each wake-up costs an
 * inter-processor interrupt, inside a VM (every EC2 instance) typically a VM
 * exit. The reader wakes up by itself at least every 100 ms (bpf/
 * source_linux.go, pollInterval), so a lone record waits at most that long;
 * once wake_bytes are waiting (a burst), every record wakes it, so that the
 * ring buffer does not fill up while it sleeps.
 */
static __always_inline __u64 wake_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&events, RB_AVAIL_DATA);

	/* Without a branch, which would double the paths the verifier walks
	 * (5.10's ran out of its million instructions in the packet loop):
	 * (wake_bytes - 1 - avail) wraps past 2^63 once avail >= wake_bytes. */
	opaque(avail);
	return RB_NO_WAKEUP + (((__u64)wake_bytes - 1 - avail) >> 63);
}

static __always_inline struct event *reserve(__u64 size)
{
	struct event *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e) {
		count_lost();
		return 0;
	}
	/* Ring memory is not zeroed: clear the header so no stale bytes leak. */
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_boot_ns();
	return e;
}

/* Identity of the current task (connect, exec, exit: process context); the
 * network namespace is left to connect, the only hook that can read it. */
static __always_inline void fill_identity(struct identity *id)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	id->pid = pt >> 32;
	id->tid = (__u32)pt;
	id->uid = (__u32)ug;
	id->gid = ug >> 32;
	id->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(id->comm, sizeof(id->comm));
}

/* ---- connect ---------------------------------------------------------- */

/* Marks the socket of ctx as connected to IMDS by si's caller. A socket whose
 * storage cannot be allocated has its packets reported as FLAG_NO_CONNECT. */
static __always_inline void mark_socket(struct bpf_sock_addr *ctx, const struct sock_info *si)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	struct sock_info *stored = bpf_sk_storage_get(&sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (stored)
		*stored = *si;
}

/* Puts pid's exec record x into the ring buffer: from exec_long when it is
 * long and still there (the same exec: same time), else from x itself, cut to
 * its EXEC_SHORT bytes. */
static __always_inline long report_exec(struct exec_info *x, __u32 pid)
{
	if (x->long_data) {
		struct exec_long *l = bpf_map_lookup_elem(&exec_long, &pid);
		if (l && l->hdr.time_ns == x->hdr.time_ns) {
			__u64 n = l->hdr.cap_len;
			opaque(n);
			if (n > EXE_MAX + ARGV_MAX)
				n = EXE_MAX + ARGV_MAX;
			return bpf_ringbuf_output(&events, &l->hdr, sizeof(l->hdr) + n, wake_flags());
		}
		x->hdr.cap_len = EXEC_SHORT;
		x->hdr.flags |= FLAG_TRUNCATED;
		x->long_data = 0;
	}
	__u64 n = x->hdr.cap_len;
	opaque(n);
	if (n > EXEC_SHORT)
		n = EXEC_SHORT;
	return bpf_ringbuf_output(&events, &x->hdr, sizeof(x->hdr) + n, wake_flags());
}

/* Reports the exec records of pid and of its ancestors, up to LINEAGE_MAX
 * processes, that were not reported yet: the process that connects to IMDS
 * and its parents, named as they were when they executed. The walk follows
 * the parent each record names and stops at the first process without one
 * (it executed before the agent started, or outside the watched cgroup). */
static __always_inline void report_lineage(__u32 pid)
{
	__u64 start = 0; /* of the parent named by the record before */
#pragma clang loop unroll(disable)
	for (int i = 0; i < LINEAGE_MAX && pid != 0; i++) {
		struct exec_info *x = bpf_map_lookup_elem(&execs, &pid);
		if (!x)
			break;
		/* The parent exited and its pid went to another process: stop. */
		if (i > 0 && x->hdr.start_ns != start)
			break;
		if (!x->reported) {
			if (report_exec(x, pid) == 0) {
				x->reported = 1;
				/* Not where the process's exit already cleared it (narrows a
				 * race: the byte is not written atomically, see proc_state). */
				__u8 *state = proc_byte(pid);
				if (state && (*state & PROC_RECORDED))
					*state |= PROC_EXIT_DUE;
			} else {
				count_lost();
			}
		}
		start = x->hdr.parent_start_ns;
		pid = x->hdr.ppid;
	}
}

static __always_inline void remember(struct bpf_sock_addr *ctx, __u8 family, __u8 flags)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sock_info si = {};

	fill_identity(&si.id);
	if (netns_known) {
		si.id.netns_cookie = bpf_get_netns_cookie(ctx);
		__u64 host = host_netns;
		if (!host)
			host = bpf_get_netns_cookie(0); /* NULL: the initial namespace */
		if (si.id.netns_cookie == host)
			flags |= FLAG_HOST_NETNS;
	}
	si.flags = flags;
	/* Marked even when the event cannot be reported: its packets still name
	 * the caller. */
	mark_socket(ctx, &si);
	report_lineage(si.id.pid);

	struct event *e = reserve(sizeof(*e));
	if (!e)
		return;
	e->id = si.id;
	e->kind = EVENT_CONNECT;
	e->family = family;
	e->flags = flags;
	e->cookie = cookie;
	e->remote_port = imds_port;
	if (family == AF_INET) {
		__u32 a = ctx->user_ip4;
		__builtin_memcpy(e->remote_addr, &a, 4);
	} else {
		__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
		__builtin_memcpy(e->remote_addr, a, 16);
	}
	struct bpf_sock *sk = ctx->sk;
	if (sk)
		e->local_port = sk->src_port;
	bpf_ringbuf_submit(e, wake_flags());
}

SEC("cgroup/connect4")
int imds_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return ALLOW;
	if (ctx->user_ip4 != imds_ip4 || ctx->user_port != bpf_htons(imds_port))
		return ALLOW;
	remember(ctx, AF_INET, 0);
	return ALLOW;
}

SEC("cgroup/connect6")
int imds_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return ALLOW;
	if (ctx->user_port != bpf_htons(imds_port))
		return ALLOW;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	if (a0 == imds_ip6[0] && a1 == imds_ip6[1] && a2 == imds_ip6[2] && a3 == imds_ip6[3]) {
		remember(ctx, AF_INET6, 0);
		return ALLOW;
	}
	/* Dual-stack sockets (Java, some runtimes) reach 169.254.169.254 as
	 * ::ffff:169.254.169.254 through connect6. */
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && a3 == imds_ip4)
		remember(ctx, AF_INET6, FLAG_V4_MAPPED);
	return ALLOW;
}

/* A marked socket is released: tell user space, which can then finish that
 * conversation instead of waiting for it to go idle. Its storage goes with it. */
SEC("cgroup/sock_release")
int imds_release(struct bpf_sock *sk)
{
	struct sock_info *si = bpf_sk_storage_get(&sockets, sk, 0, 0);

	if (!si)
		return ALLOW;
	struct event *e = reserve(sizeof(*e));
	if (e) {
		e->kind = EVENT_CLOSE;
		e->cookie = bpf_get_socket_cookie(sk);
		e->family = sk->family;
		e->id = si->id;
		e->flags = si->flags;
		bpf_ringbuf_submit(e, wake_flags());
	}
	return ALLOW;
}

/* ---- packets ---------------------------------------------------------- */

/* One TCP segment to or from IMDS, as parsed from a cgroup_skb packet. */
struct pkt {
	__u32 seq;
	__u32 off; /* payload offset from the network header */
	__u32 len; /* payload bytes */
	__u16 local_port;
	__u16 remote_port;
	__u8 family;
	__u8 ttl;
};

struct ip4hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ip6hdr {
	__u8 ver_tc;
	__u8 tc_flow;
	__be16 flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags;
	__be16 window;
	__u16 check;
	__u16 urg_ptr;
};

/* Parses the TCP header at l4 (bytes up to end belong to the segment) and
 * checks the remote port. Returns 0 for a well-formed segment of IMDS. */
static __always_inline int parse_tcp(struct __sk_buff *skb, struct pkt *p, __u32 l4, __u32 end, bool egress)
{
	struct tcphdr th;

	if (bpf_skb_load_bytes(skb, l4, &th, sizeof(th)) < 0)
		return -1;
	__u16 remote = bpf_ntohs(egress ? th.dest : th.source);
	if (remote != imds_port)
		return -1;
	__u32 doff = (th.doff_res >> 4) * 4;
	if (doff < sizeof(th))
		return -1;
	__u32 off = l4 + doff;
	if (off > end)
		return -1;
	p->remote_port = remote;
	p->local_port = bpf_ntohs(egress ? th.source : th.dest);
	p->seq = bpf_ntohl(th.seq);
	p->off = off;
	p->len = end - off;
	return 0;
}

static __always_inline int parse_ip4(struct __sk_buff *skb, struct pkt *p, bool egress)
{
	struct ip4hdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return -1;
	if ((ip.ver_ihl >> 4) != 4 || ip.protocol != IPPROTO_TCP)
		return -1;
	/* Only a first fragment carries the TCP header. */
	if (bpf_ntohs(ip.frag_off) & 0x1fff)
		return -1;
	__be32 remote = egress ? ip.daddr : ip.saddr;
	if (remote != imds_ip4)
		return -1;
	__u32 ihl = (ip.ver_ihl & 0xf) * 4;
	if (ihl < sizeof(ip))
		return -1;
	/* tot_len is 0 for BIG TCP super-packets; then skb->len is the end. */
	__u32 end = skb->len;
	__u32 tot = bpf_ntohs(ip.tot_len);
	if (tot != 0 && tot < end)
		end = tot;
	if (ihl > end)
		return -1;
	p->family = AF_INET;
	p->ttl = ip.ttl;
	return parse_tcp(skb, p, ihl, end, egress);
}

static __always_inline int parse_ip6(struct __sk_buff *skb, struct pkt *p, bool egress)
{
	struct ip6hdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return -1;
	if ((ip.ver_tc >> 4) != 6)
		return -1;
	__u32 *remote = egress ? ip.daddr : ip.saddr;
	if (remote[0] != imds_ip6[0] || remote[1] != imds_ip6[1] ||
	    remote[2] != imds_ip6[2] || remote[3] != imds_ip6[3])
		return -1;

	__u32 end = skb->len;
	__u32 plen = bpf_ntohs(ip.payload_len);
	if (plen != 0 && sizeof(ip) + plen < end)
		end = sizeof(ip) + plen;

	/* Skip the extension headers a TCP segment may carry, a bounded few. */
	__u8 nh = ip.nexthdr;
	__u32 off = sizeof(ip);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u8 ext[2];

		if (nh != 0 && nh != 43 && nh != 60 && nh != 44 && nh != 51)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
			return -1;
		if (nh == 44) { /* fragment header: only the first fragment */
			__be16 frag;
			if (bpf_skb_load_bytes(skb, off + 2, &frag, sizeof(frag)) < 0)
				return -1;
			if (bpf_ntohs(frag) & 0xfff8)
				return -1;
			off += 8;
		} else if (nh == 51) { /* authentication header */
			off += (ext[1] + 2) * 4;
		} else {
			off += (ext[1] + 1) * 8;
		}
		nh = ext[0];
	}
	if (nh != IPPROTO_TCP || off > end)
		return -1;

	p->family = AF_INET6;
	p->ttl = ip.hop_limit;
	return parse_tcp(skb, p, off, end, egress);
}

/* Returns 0 when skb is a TCP segment with payload between a local socket
 * and IMDS (egress: IMDS is the destination; ingress: the source). */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, bool egress)
{
	int err;

	if (skb->protocol == bpf_htons(ETH_P_IP))
		err = parse_ip4(skb, p, egress);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		err = parse_ip6(skb, p, egress);
	else
		return -1;
	if (err < 0 || p->len == 0)
		return -1;
	return 0;
}

/* Reports payload bytes [off, off+n) of a segment in one record that stands for
 * wire bytes from off on (wire >= n; more when the capture stops short of the
 * packet's end). tmpl is the record's header, filled once per packet; size is
 * the constant data capacity reserved (n is clamped to it). Returns 0 when all
 * n bytes were reported. */
static __always_inline int emit_record(struct __sk_buff *skb, const struct event *tmpl, __u32 payload,
				       __u32 off, __u32 n, __u32 wire, __u64 wake, const __u32 size)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + size, 0);

	if (!e) {
		count_lost();
		return -1;
	}
	/* The whole header is written: ring memory is not zeroed. */
	__builtin_memcpy(e, tmpl, sizeof(*e));
	e->time_ns = bpf_ktime_get_boot_ns();
	e->seq = tmpl->seq + off;
	e->data_len = wire;

	/* The size handed to bpf_skb_load_bytes must be provably in [1, size]. Kernels
	 * before about 6.3 learn no lower bound from a "len != 0" branch, so the bound
	 * is built by arithmetic instead: m in [0, size-1], then m + 1 (verifier of
	 * Debian's 6.1: "R3 min value is outside of the allowed memory range"). */
	__u64 len = 0;
	if (n > 0) {
		__u64 m = n - 1;
		opaque(m);
		if (m > size - 1)
			m = size - 1;
		if (bpf_skb_load_bytes(skb, payload + off, (void *)(e + 1), m + 1) == 0)
			len = m + 1;
	}
	if (len < wire)
		e->flags |= FLAG_TRUNCATED;
	e->cap_len = len;
	bpf_ringbuf_submit(e, wake);
	return len == n ? 0 : -1;
}

/*
 * Reports the payload of one TCP segment to or from IMDS that parse() accepted:
 * up to send_capture (egress) or recv_capture (ingress) bytes, and at most
 * chunks records of at most SEND_CHUNK bytes each, every record with the
 * sequence number of its first byte. The last record stands for the rest of the
 * segment, so that bytes beyond the capture count as missing in user space.
 * Its arguments are what pack_where, pack_tcp and pack_meta make of the parsed
 * segment (see emit_payload).
 */
static __always_inline void emit_segment(struct __sk_buff *skb, __u64 where, __u64 tcp, __u32 meta,
					 const __u32 chunks)
{
	__u32 payload = where, seglen = where >> 32;
	__u8 kind = meta, family = meta >> 8;
	bool egress = kind == EVENT_SEND;
	struct event tmpl = {};

	tmpl.kind = kind;
	tmpl.family = family;
	tmpl.ttl = meta >> 16;
	tmpl.seq = tcp;
	tmpl.local_port = tcp >> 32;
	tmpl.remote_port = tcp >> 48;
	/* parse() matched the remote address against the configured endpoint;
	 * the local one is read from the packet again. */
	if (family == AF_INET) {
		__u32 a = imds_ip4; /* read as volatile: set at load time */
		__builtin_memcpy(tmpl.remote_addr, &a, 4);
		bpf_skb_load_bytes(skb, egress ? 12 : 16, tmpl.local_addr, 4);
	} else {
		__u32 a[4] = {imds_ip6[0], imds_ip6[1], imds_ip6[2], imds_ip6[3]};
		__builtin_memcpy(tmpl.remote_addr, a, 16);
		bpf_skb_load_bytes(skb, egress ? 8 : 24, tmpl.local_addr, 16);
	}
	tmpl.cookie = bpf_get_socket_cookie(skb);
	struct sock_info *si = 0;
	struct bpf_sock *sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk)
		si = bpf_sk_storage_get(&sockets, sk, 0, 0);
	if (si) {
		tmpl.id = si->id;
		tmpl.flags = si->flags;
	} else {
		tmpl.flags = FLAG_NO_CONNECT;
	}

	/* One wake-up decision for all records of the segment. */
	__u64 wake = wake_flags();
	__u32 limit = egress ? send_capture : recv_capture;
	if (limit > seglen)
		limit = seglen;
	if (limit > chunks * SEND_CHUNK)
		limit = chunks * SEND_CHUNK;
	/* A bounded loop (kernel 5.3 on), kept rolled. Only whole chunks go round
	 * again, so the verifier walks one path per iteration; any failure ends
	 * it, and user space sees the bytes not reported as missing. The record
	 * sizes come in four classes so that short segments take little room. */
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < chunks; i++) {
		__u32 off = i * SEND_CHUNK;
		if (off >= limit)
			break;
		__u32 n = limit - off, wire = seglen - off;
		if (n <= RECV_SMALL) {
			emit_record(skb, &tmpl, payload, off, n, wire, wake, RECV_SMALL);
			break;
		}
		if (n <= RECV_MAX) {
			emit_record(skb, &tmpl, payload, off, n, wire, wake, RECV_MAX);
			break;
		}
		if (n <= SEND_SMALL) {
			emit_record(skb, &tmpl, payload, off, n, wire, wake, SEND_SMALL);
			break;
		}
		if (n <= SEND_CHUNK) {
			emit_record(skb, &tmpl, payload, off, n, wire, wake, SEND_CHUNK);
			break;
		}
		if (emit_record(skb, &tmpl, payload, off, SEND_CHUNK, SEND_CHUNK, wake, SEND_CHUNK) < 0)
			break;
	}
}

/*
 * emit_segment with up to SEND_CHUNKS records, as a global function: the
 * verifier checks it once, for any arguments, instead of once for every path
 * through parse() that reaches it (inlined, the loop took Debian 6.1's verifier
 * past its million instructions). Its arguments are scalars besides the
 * context, all that 5.10 accepts:
 *   where  payload offset from the network header (bits 0-31), payload bytes
 *          in the segment (32-63)
 *   tcp    sequence number of the first payload byte (0-31), local port
 *          (32-47), remote port (48-63)
 *   meta   enum event_kind (0-7), address family (8-15), IP TTL (16-23)
 * The verifier needs the kernel's own BTF to check the context argument of a
 * global function: kernels without it get the *_nobtf programs below.
 * Returns 0; the caller allows the packet whatever happens here.
 */
__attribute__((noinline)) int emit_payload(struct __sk_buff *skb, __u64 where, __u64 tcp, __u32 meta)
{
	emit_segment(skb, where, tcp, meta, SEND_CHUNKS);
	return 0;
}

static __always_inline __u64 pack_where(const struct pkt *p)
{
	return (__u64)p->len << 32 | p->off;
}

static __always_inline __u64 pack_tcp(const struct pkt *p)
{
	return (__u64)p->remote_port << 48 | (__u64)p->local_port << 32 | p->seq;
}

static __always_inline __u32 pack_meta(const struct pkt *p, __u8 kind)
{
	return kind | (__u32)p->family << 8 | (__u32)p->ttl << 16;
}

/*
 * The common path of ingress: whether a packet may belong to IMDS, from the
 * socket's addresses in the context (a few loads, no helper call). False for a
 * socket connected to anything else, nearly every packet of a host. True when
 * its peer is IMDS, and when it has no peer (port 0: a listener, an unconnected datagram
 * socket, the socket BPF_PROG_TEST_RUN makes up), where the packet's own
 * addresses decide as they always did.
 */
static __always_inline bool maybe_imds(struct __sk_buff *skb)
{
	__u32 port = bpf_ntohl(skb->remote_port);

	if (port == 0)
		return true;
	if (port != imds_port)
		return false;
	__u32 family = skb->family;
	if (family == AF_INET)
		return skb->remote_ip4 == imds_ip4;
	if (family != AF_INET6)
		return true;
	__u32 a0 = skb->remote_ip6[0], a1 = skb->remote_ip6[1];
	__u32 a2 = skb->remote_ip6[2], a3 = skb->remote_ip6[3];
	if (a0 == imds_ip6[0] && a1 == imds_ip6[1] && a2 == imds_ip6[2] && a3 == imds_ip6[3])
		return true;
	/* A dual-stack socket connected to ::ffff:169.254.169.254 sends IPv4. */
	return a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && a3 == imds_ip4;
}

/*
 * The common path of egress: whether the packet's own destination is IMDS,
 * read in place without a helper call (direct packet access, read-only for
 * cgroup_skb since Linux 5.2). The packet decides, not the socket: an OUTPUT
 * DNAT rule (a Service whose endpoint is IMDS, a proxy's redirect) sends a
 * socket connected elsewhere to IMDS, and the egress hook sees the packet
 * after it; its records go out as FLAG_NO_CONNECT, the connect having been to
 * another address. parse() checks the same address again, with the rest. A
 * network header not in the linear part goes on to parse(), which decides.
 */
static __always_inline bool sent_to_imds(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 proto = skb->protocol;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct ip4hdr *ip = data;
		if ((void *)(ip + 1) > end)
			return true;
		return ip->daddr == imds_ip4;
	}
	if (proto != bpf_htons(ETH_P_IPV6))
		return false;
	struct ip6hdr *ip6 = data;
	if ((void *)(ip6 + 1) > end)
		return true;
	return ip6->daddr[0] == imds_ip6[0] && ip6->daddr[1] == imds_ip6[1] &&
	       ip6->daddr[2] == imds_ip6[2] && ip6->daddr[3] == imds_ip6[3];
}

/* Reports an IMDS segment with emit_payload (kernel BTF) or, nobtf, with one
 * inlined record; allows the packet whatever it is. */
static __always_inline int on_packet(struct __sk_buff *skb, bool egress, bool nobtf)
{
	struct pkt p = {};

	if (!(egress ? sent_to_imds(skb) : maybe_imds(skb)) || parse(skb, &p, egress) < 0)
		return ALLOW;
	__u32 meta = pack_meta(&p, egress ? EVENT_SEND : EVENT_RECV);
	if (nobtf)
		emit_segment(skb, pack_where(&p), pack_tcp(&p), meta, 1);
	else
		emit_payload(skb, pack_where(&p), pack_tcp(&p), meta);
	return ALLOW;
}

SEC("cgroup_skb/egress")
int imds_egress(struct __sk_buff *skb)
{
	return on_packet(skb, true, false);
}

SEC("cgroup_skb/ingress")
int imds_ingress(struct __sk_buff *skb)
{
	return on_packet(skb, false, false);
}

/* The packet programs for kernels without BTF of their own (no
 * CONFIG_DEBUG_INFO_BTF): emit_segment inlined, one record per segment, so at
 * most SEND_CHUNK bytes of it. A header block over 2 KiB written at once is
 * then classed incomplete; the loader says so (Features.SendCapture). */
SEC("cgroup_skb/egress")
int imds_egress_nobtf(struct __sk_buff *skb)
{
	return on_packet(skb, true, true);
}

SEC("cgroup_skb/ingress")
int imds_ingress_nobtf(struct __sk_buff *skb)
{
	return on_packet(skb, false, true);
}

/* ---- processes -------------------------------------------------------- */

/* Whether the current task belongs to the watched cgroup subtree. Reading
 * exec_all is a load (the verifier inlines array lookups); the cgroup test
 * follows the task's cgroup pointers, a few cache misses on a busy host. */
static __always_inline bool watched(void)
{
	__u32 zero = 0;
	__u32 *all = bpf_map_lookup_elem(&exec_all, &zero);

	if (all && *all)
		return true;
	return bpf_current_task_under_cgroup(&exec_cgroup, 0) == 1;
}

/* Deletes what the tables hold of pid, as its state byte was says. */
static __always_inline void drop_records(__u32 pid, __u8 was)
{
	if (was & PROC_LONG)
		bpf_map_delete_elem(&exec_long, &pid);
	if (was & PROC_RECORDED)
		bpf_map_delete_elem(&execs, &pid);
}

/* A process outside the watched cgroup executed another program: a record
 * kept from when it was inside (it left since) is of an image it no longer
 * runs, so it goes; an exit due stays due. One load for any other process. */
static __always_inline void forget_image(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u8 *state = proc_byte(pid);

	if (!state || !(*state & (PROC_RECORDED | PROC_LONG)))
		return;
	__u8 was = *state;
	*state = was & PROC_EXIT_DUE;
	drop_records(pid, was);
}

/* Runs after the new program image is in place: comm, mm and argv are the
 * new program's, and the process has not run a single instruction of it.
 * Keeps the record in execs, nothing goes to the ring buffer (see execs).
 * A BTF tracepoint: its arguments are typed (task_struct, linux_binprm), so
 * their fields are plain loads, not bpf_probe_read_kernel calls. */
SEC("tp_btf/sched_process_exec")
int imds_exec(__u64 *ctx)
{
	if (!watched()) {
		forget_image();
		return 0;
	}
	__u32 zero = 0;
	struct exec_build *b = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!b)
		return 0;
	struct exec_info *x = &b->x; /* x->data goes on into b->more */
	/* sched_process_exec(p, old_pid, bprm) */
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct event *e = &x->hdr;

	/* The scratch record is reused: clear all but its data, which cap_len
	 * bounds. */
	__builtin_memset(x, 0, __builtin_offsetof(struct exec_info, data));
	fill_identity(&e->id);
	__u32 pid = e->id.pid;
	__u8 *state = proc_byte(pid);
	__u8 prev = state ? *state : 0;
	/* The processes' starts, as /proc shows them: the thread-group leader's
	 * (real_parent is the thread that forked, whose own start is its
	 * thread's; an exec from another thread took over the leader's start). */
	struct task_struct *parent = task->real_parent; /* read once: pid and start agree */
	e->start_ns = task->start_boottime;
	e->parent_start_ns = parent->group_leader->start_boottime;
	/* A process's first exec after its fork (by far the most common: its
	 * exec id one above the one it was forked under) is dated by the fork,
	 * which costs no clock read; a re-exec by the clock. */
	bool first = task->self_exec_id == task->parent_exec_id + 1;
	if (first)
		e->time_ns = e->start_ns;
	else
		e->time_ns = bpf_ktime_get_boot_ns();
	e->kind = EVENT_EXEC;
	e->ppid = parent->tgid;

	const char *filename = bprm->filename;
	long got = bpf_probe_read_kernel_str(x->data, EXE_MAX, filename);
	if (got <= 0) {
		x->data[0] = 0;
		got = 1;
	}
	__u64 exe = got;
	opaque(exe);
	if (exe > EXE_MAX)
		exe = EXE_MAX;
	e->aux_len = exe;

	struct mm_struct *mm = task->mm;
	unsigned long start = mm->arg_start, end = mm->arg_end;
	__u64 len = end > start ? end - start : 0;
	e->data_len = len;
	__u64 n = len;
	if (n > ARGV_MAX)
		e->flags |= FLAG_TRUNCATED;
	opaque(n);
	if (n > ARGV_MAX)
		n = ARGV_MAX;
	if (n > 0 && bpf_probe_read_user(x->data + exe, n, (const void *)start) < 0) {
		n = 0;
		e->flags |= FLAG_ARGV_FAULT;
	}
	e->cap_len = exe + n;

	x->long_data = e->cap_len > EXEC_SHORT;

	/* A re-exec replaces the record of the image before. */
	if (bpf_map_update_elem(&execs, &pid, x, BPF_ANY) != 0)
		return 0;
	__u8 now = PROC_RECORDED;
	if (x->long_data) {
		bpf_map_update_elem(&exec_long, &pid, e, BPF_ANY);
		now |= PROC_LONG;
	} else if (prev & PROC_LONG) {
		bpf_map_delete_elem(&exec_long, &pid);
	}
	/* An exit still due stays due, also after the process's records were
	 * dropped (forget_image); read again here: a child's connect may have
	 * just marked it. A new process's first exec keeps none: a mark there
	 * was left by an earlier holder of the pid (see proc_state). */
	if (state)
		*state = now | (first ? 0 : *state & PROC_EXIT_DUE);
	return 0;
}

/* The exit of a process: its exec records go; the exit is reported only for
 * a process an exec record of which was (PROC_EXIT_DUE: it or a descendant
 * connected to IMDS), so that user space can let go of it. One per process:
 * when its last thread exits. Not the leader's exit: the leader can go first
 * (pthread_exit), and goes first when another thread executes a program
 * (de_thread), while the process lives on. The kernel counts the group's live
 * threads down before this tracepoint. No cgroup test: proc_state says whether
 * there is anything to do (a process that left the watched cgroup since its
 * exec is cleaned up too). */
SEC("tp_btf/sched_process_exit")
int imds_exit(__u64 *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0]; /* sched_process_exit(p) */
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u8 *state = proc_byte(pid);
	if (!state || !*state)
		return 0;
	if (task->signal->live.counter != 0)
		return 0; /* not the process's last thread */
	__u8 was = *state;
	*state = 0;
	if (was & PROC_EXIT_DUE) {
		struct event *e = reserve(sizeof(*e));
		if (e) {
			struct exec_info *x = bpf_map_lookup_elem(&execs, &pid);
			fill_identity(&e->id);
			e->kind = EVENT_EXIT;
			if (x)
				e->ppid = x->hdr.ppid;
			bpf_ringbuf_submit(e, wake_flags());
		}
	}
	drop_records(pid, was);
	return 0;
}
