/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types the imdsv2 BPF programs use, written by hand instead
 * of a 3 MB bpftool-generated vmlinux.h.
 *
 * Two kinds of types live here:
 *
 *  - UAPI context structs (struct __sk_buff, struct bpf_sock_addr, ...):
 *    copied field for field from include/uapi/linux/bpf.h (Linux 6.1, as
 *    shipped in Debian's linux-libc-dev 6.1). These are a stable ABI; the
 *    kernel rewrites context accesses by offset, so a struct may stop after
 *    the last field the programs read.
 *
 *  - Internal kernel structs (task_struct, mm_struct, linux_binprm): only the
 *    members the programs read, marked preserve_access_index so that clang
 *    emits CO-RE relocations and the loader (cilium/ebpf) fixes the offsets up
 *    against the running kernel's BTF (/sys/kernel/btf/vmlinux). Member order
 *    and the absence of other members do not matter; the names and types do.
 */
#ifndef IMDS_KERNEL_H
#define IMDS_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
typedef int pid_t;

#define true 1
#define false 0

/* enum bpf_map_type values (UAPI, never renumbered). */
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_CGROUP_ARRAY 8
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_SK_STORAGE 24
#define BPF_MAP_TYPE_RINGBUF 27

/* Map flags (BPF_MAP_CREATE), which socket-local storage requires. */
#define BPF_F_NO_PREALLOC 1

/* Flags of bpf_map_update_elem. */
#define BPF_ANY 0

/* Flags of bpf_sk_storage_get. */
#define BPF_SK_STORAGE_GET_F_CREATE 1

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define __bpf_md_ptr(type, name) \
	union {                      \
		type name;               \
		__u64 : 64;              \
	} __attribute__((aligned(8)))

struct bpf_sock;

/* UAPI struct __sk_buff, up to the fields the programs read. */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	/* The socket's, not the packet's (cgroup_skb always has a socket). */
	__u32 family;
	__u32 remote_ip4;    /* network byte order */
	__u32 local_ip4;     /* network byte order */
	__u32 remote_ip6[4]; /* network byte order */
	__u32 local_ip6[4];  /* network byte order */
	__u32 remote_port;   /* network byte order, in the upper 16 bits on little-endian */
	__u32 local_port;    /* host byte order */
	__u32 data_meta;
	__bpf_md_ptr(void *, flow_keys);
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	__bpf_md_ptr(struct bpf_sock *, sk);
};

/* UAPI struct bpf_sock, up to the fields the programs read. */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 mark;
	__u32 priority;
	__u32 src_ip4;
	__u32 src_ip6[4];
	__u32 src_port; /* host byte order */
};

/* UAPI struct bpf_sock_addr (context of cgroup/connect4 and connect6). */
struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;    /* network byte order */
	__u32 user_ip6[4]; /* network byte order */
	__u32 user_port;   /* network byte order */
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	__bpf_md_ptr(struct bpf_sock *, sk);
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};

typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	atomic_t live; /* threads of the group not yet past do_exit's count */
};

struct task_struct {
	pid_t pid;
	pid_t tgid;
	__u64 start_boottime;
	__u64 self_exec_id;   /* u64 since 5.7 */
	__u64 parent_exec_id;
	struct signal_struct *signal;
	struct task_struct *group_leader;
	struct task_struct *real_parent;
	struct mm_struct *mm;
};

struct linux_binprm {
	const char *filename;
};

#pragma clang attribute pop

#endif /* IMDS_KERNEL_H */
