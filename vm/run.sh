#!/usr/bin/env bash
# vm/run.sh: run the project's privileged tests, the tests of cmd/imdsv2 and `imdsv2 demo` as root
# inside a VM that boots a real distribution kernel, one of Debian's cloud kernels (VM_KERNEL: 6.1,
# the family Amazon Linux 2023 runs, by default; 5.10, Amazon Linux 2's; 6.12) for amd64 or arm64
# (VM_ARCH), under qemu-system-x86_64 or qemu-system-aarch64 with TCG (no KVM needed).
# `make test-vm` calls it; so can a developer.
#
# Steps:
#   1. install what is missing (qemu-system-x86 or qemu-system-arm, virtiofsd, busybox-static,
#      cpio, kmod) with apt-get;
#   2. resolve the kernel package that linux-image-cloud-<arch> of VM_KERNEL's Debian suite depends
#      on, through a private apt configuration (its own sources list, architecture, state and cache
#      under $VM_CACHE/apt/<family>-<arch>; the machine's apt sources are read for the archive's
#      address, never changed), print it, `apt-get download` it once and keep vmlinuz and the
#      modules under $VM_CACHE/kernel/<package>_<version>/ (depmod run there);
#   3. arm64 only: build, once, a root file system of arm64 Debian packages for what the tests run
#      (curl, python3, iproute2, sh, coreutils, util-linux, busybox), cached in
#      $VM_CACHE/rootfs/arm64-<hash of its inputs> (build_rootfs);
#   4. build static test binaries (CGO_ENABLED=0 GOARCH=<arch> go test -c) of VM_PKGS, and the
#      imdsv2 binary the tests and the demo run, into $VM_CACHE/tests;
#   5. pack a small initramfs: busybox (the VM's architecture's), vm/init.sh as /init, the modules
#      in VM_MODULES with their dependencies (from modules.dep), and the list of tests;
#   6. share the host's root file system READ-ONLY with the VM over virtiofs (the way virtme does
#      with 9p; Debian's cloud kernel has virtiofs but no 9p): virtiofsd serves a read-only bind
#      mount of / made in a private mount namespace. /init mounts it, puts fresh proc, sysfs,
#      devtmpfs, tmpfs (/tmp, /run, /root), bpffs, cgroup2, tracefs and debugfs on top, and runs
#      each test binary chrooted there, from its package directory, so that tests find curl,
#      python3, iproute2 and their testdata exactly where they are on the host. On arm64 the
#      chroot is an overlay of the arm64 root file system (from the share) with the repository
#      and the test binaries bound in at their host paths. Then it runs `imdsv2 demo` the same way;
#   7. boot with no network device at all (tests use loopback and namespaces inside the VM), stream
#      the serial console, and exit with the status /init reports in its result line
#      ("IMDSV2-VM-RESULT: PASS" or "... FAIL rc=N"); no result line (crash, VM_TIMEOUT) fails.
#
# Settings (environment):
#   VM_ARCH        amd64 (default) or arm64 (Graviton): the VM's architecture, its kernel's,
#                  and the test binaries'
#   VM_KERNEL      kernel family: 6.1 (default: Debian bookworm's linux-image-cloud-<arch>), 5.10
#                  (bullseye's, the family of Amazon Linux 2) or 6.12 (bookworm-backports')
#   VM_PKGS        packages to test, in order (go list patterns relative to the repository);
#                  default: vmcheck, cgroup, bpf, test bed, then every other package whose tests
#                  need root (they call internal/privtest: internal/e2e, cmd/imdsv2, ...) minus
#                  VM_EXCLUDE, then audit/proc
#   VM_EXCLUDE     packages left out of the discovered list (default ./imds/)
#   VM_DEMO        1 (default): run `imdsv2 demo` after the tests, its exit status counted; 0: not
#   VM_MODULES     kernel modules to load (dependencies are added from modules.dep; those the kernel
#                  has built in, modules.builtin, are left out). The VM has no modprobe for the
#                  kernel to load modules on demand. xfrm_user and nfnetlink were what `imdsv2 demo`
#                  needed while ready's host inspection opened netlink sockets of every family (it
#                  asks for NETLINK_ROUTE only now); they stay loaded, as the VM runs were checked
#                  with them. nf_tables, nft_chain_nat and nft_nat: bpf's TestDNATToIMDSReported (nft)
#   VM_TIMEOUT     seconds the whole VM may run before it is killed and the run fails (1200)
#   VM_TEST_FLAGS  flags for every test binary (-test.v -test.count=1 -test.timeout=10m)
#   VM_TEST_SKIP   tests left out (a -test.skip pattern). Default: none on amd64; on arm64
#                  ^TestVerdictInvariantOnTheWire$, internal/e2e's property test (40 random request
#                  shapes, each a python3 process: 80 to 110 s of emulated arm64 per kernel). What
#                  it checks is the verdict over whatever the hooks captured, the same code on both
#                  architectures; the hooks' capture on arm64 is what the other end-to-end tests
#                  check there, and the property runs on the three amd64 kernels and in make test.
#                  This keeps .ci/run's six VMs within its time budget. VM_TEST_SKIP= runs all
#   VM_ACCEL       QEMU accelerator (tcg, and tcg,thread=single for amd64 6.12; kvm works where
#                  /dev/kvm does). Multi-threaded TCG (QEMU 7.2) runs an x86 6.12 guest now and then
#                  into an int3 the kernel has already patched away (2 of 7 runs: "Oops: int3" in
#                  inet_ehashfn or __alloc_pages right after a static key flipped, then a panic and
#                  no result line); one TCG thread for all vCPUs has no such race, at up to twice
#                  the time
#   VM_MEM, VM_SMP memory and CPUs of the VM (2G, 2)
#   VM_APPEND      extra kernel command line
#   VM_KERNEL_PKG  kernel package to use instead of what the suite's linux-image-cloud-<arch>
#                  depends on (looked up in VM_KERNEL's suite, e.g. an older
#                  linux-image-5.10.0-N-cloud-amd64)
#   VM_DEBIAN_ARCHIVE, VM_DEBIAN_SECURITY  base URIs of Debian's archive and security archive
#                  (default: those the machine's apt already uses, from `apt-cache policy`)
#   VM_CACHE       cache directory ($repo/.cache/vm, gitignored)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# In run order: the VM smoke tests first, the kernel-facing packages next, the packages found by
# discover_pkgs (the end-to-end auditor tests) after them, and the part of audit that reads the
# kernel's /proc last. audit's parsers, reassembler and outputs never touch the kernel: `make test`
# runs them on the host, and under software emulation they would take minutes for nothing.
VM_BASE_PKGS="./vm/vmcheck/ ./internal/cgroup/ ./bpf/... ./internal/testbed/"
VM_LAST_PKGS="./audit/proc/"
VM_EXCLUDE=${VM_EXCLUDE:-./imds/}
VM_DEMO=${VM_DEMO:-1}
VM_PKGS=${VM_PKGS:-}
VM_MODULES=${VM_MODULES:-veth bridge virtio_pci virtiofs overlay xfrm_user nfnetlink nf_tables nft_chain_nat nft_nat}
VM_TIMEOUT=${VM_TIMEOUT:-1200}
VM_TEST_FLAGS=${VM_TEST_FLAGS:--test.v -test.count=1 -test.timeout=10m}
VM_TEST_SKIP_SET=${VM_TEST_SKIP+set}
VM_TEST_SKIP=${VM_TEST_SKIP:-}
VM_ACCEL=${VM_ACCEL:-}
VM_MEM=${VM_MEM:-2G}
VM_SMP=${VM_SMP:-2}
VM_APPEND=${VM_APPEND:-}
VM_KERNEL=${VM_KERNEL:-6.1}
VM_ARCH=${VM_ARCH:-amd64}
VM_CACHE=${VM_CACHE:-$repo/.cache/vm}
GO=${GO:-go}

log() { printf 'test-vm: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# find_virtiofsd prints the virtiofsd binary: QEMU's C daemon (Debian 12, qemu-system-common) or
# the Rust one (package virtiofsd, Debian 13).
find_virtiofsd() {
	local p
	for p in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd "$(command -v virtiofsd || true)"; do
		[[ -n $p && -x $p ]] && { echo "$p"; return 0; }
	done
	return 1
}

# ensure_tools installs the Debian packages whose commands are missing.
ensure_tools() {
	local missing=()
	command -v "${qemu[0]}" >/dev/null || missing+=("$qemu_pkg")
	command -v cpio >/dev/null || missing+=(cpio)
	command -v depmod >/dev/null || missing+=(kmod)
	command -v unshare >/dev/null || missing+=(util-linux)
	command -v pgrep >/dev/null || missing+=(procps)
	# /init needs a static busybox; the dynamic "busybox" package would not run in the initramfs.
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
	command -v "$GO" >/dev/null || die "no Go toolchain ($GO) in PATH"
	if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
	# Debian 12 ships virtiofsd in qemu-system-common; later releases in its own package.
	if ! find_virtiofsd >/dev/null; then apt_install virtiofsd; fi
	vfsd=$(find_virtiofsd) || die "virtiofsd not found"
}

apt_install() {
	log "installing $*"
	[[ $(id -u) == 0 ]] || die "need root to apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; }
}

# kernel_family sets suites (the Debian suites, in sources.list form relative to the archive
# or, for *-security, the security archive, that carry VM_KERNEL's kernel) and kernel_append
# (what that kernel needs on its command line under QEMU).
kernel_family() {
	kernel_append=
	case $VM_KERNEL in
	6.1) suites=(bookworm bookworm-security) ;;
	5.10) suites=(bullseye bullseye-security) ;;
	# QEMU 7.2's TCG with -cpu max: 6.12 double-faults on cmpxchg16b early in boot; without cx16
	# the kernel takes its fallback path.
	# The int3 race under multi-threaded TCG (VM_ACCEL above) is x86's text patching; arm64
	# guests keep one thread per vCPU.
	6.12)
		suites=(bookworm-backports)
		if [[ $VM_ARCH == amd64 ]]; then
			kernel_append="clearcpuid=cx16"
			[[ -n $VM_ACCEL ]] || VM_ACCEL=tcg,thread=single
		fi
		;;
	*) die "VM_KERNEL=$VM_KERNEL: choose 6.1 (bookworm), 5.10 (bullseye) or 6.12 (bookworm-backports)" ;;
	esac
}

# arch_setup sets what differs by VM_ARCH: the QEMU command and machine (qemu), the serial
# console's name (console) and the Debian package that has the QEMU command (qemu_pkg).
arch_setup() {
	case $VM_ARCH in
	amd64)
		qemu=(qemu-system-x86_64 -cpu max) console=ttyS0 qemu_pkg=qemu-system-x86
		;;
	# -cpu max emulates pointer authentication; QEMU's own (impdef) algorithm for it instead of
	# the architected QARMA5 makes a TCG guest several times faster.
	arm64)
		qemu=(qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on) console=ttyAMA0 qemu_pkg=qemu-system-arm
		;;
	*) die "VM_ARCH=$VM_ARCH: choose amd64 or arm64" ;;
	esac
}

# debian_archives sets archive_uri and security_uri: VM_DEBIAN_ARCHIVE and VM_DEBIAN_SECURITY, or
# the base URIs of the Debian archive (label Debian) and security archive (Debian-Security) that
# the machine's apt uses, from `apt-cache policy`. Only the addresses are read from the machine.
debian_archives() {
	local policy
	archive_uri=${VM_DEBIAN_ARCHIVE:-}
	security_uri=${VM_DEBIAN_SECURITY:-}
	[[ -n $archive_uri && -n $security_uri ]] && return 0
	policy=$(apt-cache policy 2>/dev/null || true)
	if ! grep -q 'o=Debian,' <<<"$policy"; then
		log "the machine's apt knows no Debian archive yet; running apt-get update"
		apt-get update -q >&2 || true
		policy=$(apt-cache policy 2>/dev/null || true)
	fi
	# Pairs of lines: " 500 URI suite/component arch Packages", then "release ...,l=LABEL,...".
	local uris
	uris=$(awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[a-z]+:\/\// { uri = $2; next }
		$1 == "release" && uri != "" && /o=Debian,/ {
			if (/l=Debian-Security,/) print "security", uri; else if (/l=Debian,/) print "archive", uri
			uri = "" }' <<<"$policy")
	[[ -n $archive_uri ]] || archive_uri=$(awk '$1 == "archive" { print $2; exit }' <<<"$uris")
	[[ -n $security_uri ]] || security_uri=$(awk '$1 == "security" { print $2; exit }' <<<"$uris")
	[[ -n $archive_uri ]] || die "the machine's apt has no Debian archive: set VM_DEBIAN_ARCHIVE (and VM_DEBIAN_SECURITY) to its base URI"
	if [[ -z $security_uri ]]; then
		security_uri=${archive_uri%/}-security
		log "no Debian security archive in the machine's apt; trying $security_uri (set VM_DEBIAN_SECURITY to change it)"
	fi
}

# papt runs apt-get or apt-cache ($1) with the private configuration in $apt_dir: its own
# sources list, no other sources or pins, its own lists, status and package cache, VM_ARCH's
# packages only (whatever the machine's architecture). The rest of
# the machine's apt configuration (proxies, time checks) applies.
papt() {
	local cmd=$1
	shift
	"$cmd" -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts="$apt_dir/empty" \
		-o Dir::Etc::Preferences="$apt_dir/empty/preferences" -o Dir::Etc::PreferencesParts="$apt_dir/empty" \
		-o Dir::State="$apt_dir/state" -o Dir::State::status="$apt_dir/status" -o Dir::Cache="$apt_dir/cache" \
		-o APT::Architecture="$VM_ARCH" -o APT::Architectures="$VM_ARCH" \
		-o APT::Sandbox::User=root -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false "$@"
}

# private_apt NAME SUITE... writes a private apt configuration of those suites for VM_ARCH's
# packages in $apt_dir ($VM_CACHE/apt/NAME) and updates its package lists when they are missing,
# older than a day or for other sources. It returns non-zero when the lists could not be had.
private_apt() {
	local want s uri
	apt_dir="$VM_CACHE/apt/$1"
	shift
	local suites=("$@")
	mkdir -p "$apt_dir"/{empty,state/lists/partial,cache/archives/partial}
	[[ -f $apt_dir/status ]] || : >"$apt_dir/status"
	debian_archives
	want=
	for s in "${suites[@]}"; do
		uri=$archive_uri
		[[ $s == *-security ]] && uri=$security_uri
		want+="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main"$'\n'
	done
	if [[ $want != "$(cat "$apt_dir/sources.list" 2>/dev/null)"$'\n' ]]; then
		printf '%s' "$want" >"$apt_dir/sources.list"
		rm -f "$apt_dir/updated"
	fi
	if [[ -z $(find "$apt_dir/updated" -mmin -1440 2>/dev/null) ]]; then
		log "updating the package lists of ${suites[*]} (private apt configuration in ${apt_dir#"$repo"/})"
		papt apt-get update -q >&2 || return 1
		touch "$apt_dir/updated"
	fi
}

# resolve_kernel prints the kernels to test, best first, one "<package> <version> <suite>" line
# each: the package each version of linux-image-cloud-<arch> depends on (newest version first),
# or the versions of VM_KERNEL_PKG. Later lines are the fallbacks when a package is listed but
# cannot be had (bullseye-security lists arm64 5.10.0-46 5.10.262-1, whose .deb is missing).
resolve_kernel() {
	local meta mver pkg ver suite
	# "pkg | version | URI suite/component arch Packages"
	if [[ -n ${VM_KERNEL_PKG:-} ]]; then
		papt apt-cache madison "$VM_KERNEL_PKG" 2>/dev/null | awk -F'|' '{ gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2)
			split($3, f, " "); sub("/.*", "", f[2]); print $1, $2, f[2] }' | sort -k2,2Vr -u
		return
	fi
	meta=linux-image-cloud-$VM_ARCH
	while read -r mver; do
		pkg=$(papt apt-cache show "$meta=$mver" 2>/dev/null | awk -F': ' '$1 == "Depends" { split($2, d, /[ ,]/); print d[1]; exit }')
		[[ -n $pkg ]] || continue
		papt apt-cache madison "$pkg" 2>/dev/null | awk -F'|' '{ gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2)
			split($3, f, " "); sub("/.*", "", f[2]); print $1, $2, f[2] }' | sort -k2,2Vr
	done < <(papt apt-cache madison "$meta" 2>/dev/null | awk -F'|' '{ gsub(/^ +| +$/, "", $2); print $2 }' | sort -Vr -u)
}

# fetch_kernel sets kdir to the cached, extracted kernel package (downloading it if needed) and
# kernel_desc to "<package> <version> (<suite>)": the first of resolve_kernel's list that is
# cached or can be downloaded.
fetch_kernel() {
	local candidates=
	kernel_family
	# The same package and version may be in two suites (bookworm and bookworm-security): once.
	if ! private_apt "$VM_KERNEL-$VM_ARCH" "${suites[@]}" || ! candidates=$(resolve_kernel | awk '!seen[$1 " " $2]++') ||
		[[ -z $candidates ]]; then
		# Offline: fall back to the newest kernel of the family already cached, if any.
		local glob="linux-image-$VM_KERNEL.[0-9]*-cloud-${VM_ARCH}_*"
		[[ -n ${VM_KERNEL_PKG:-} ]] && glob="${VM_KERNEL_PKG}_*"
		kdir=$(ls -d "$VM_CACHE"/kernel/$glob/ 2>/dev/null | sort -V | tail -1)
		[[ -n $kdir && -f $kdir/.complete ]] || die "cannot resolve the kernel package of VM_KERNEL=$VM_KERNEL (${suites[*]}) and none is cached"
		kdir=${kdir%/}
		kernel_desc="$(basename "$kdir" | tr _ ' ') (cached; could not resolve the current one)"
		log "kernel for VM_KERNEL=$VM_KERNEL: $kernel_desc"
		return
	fi
	local pkg ver suite first=1
	while read -r pkg ver suite; do
		kernel_desc="$pkg $ver ($suite)"
		kdir="$VM_CACHE/kernel/${pkg}_${ver}"
		if [[ -f $kdir/.complete ]]; then
			log "kernel for VM_KERNEL=$VM_KERNEL VM_ARCH=$VM_ARCH: $kernel_desc, cached in ${kdir#"$repo"/}"
			return
		fi
		((first)) || log "trying the next kernel the suites list: $kernel_desc"
		first=0
		download_kernel "$pkg" "$ver" && {
			log "kernel for VM_KERNEL=$VM_KERNEL VM_ARCH=$VM_ARCH: $kernel_desc"
			return
		}
		log "$pkg $ver is listed in $suite but could not be downloaded"
	done <<<"$candidates"
	die "no kernel package of VM_KERNEL=$VM_KERNEL VM_ARCH=$VM_ARCH could be downloaded (${suites[*]})"
}

# download_kernel PACKAGE VERSION downloads and extracts the kernel package into $kdir.
download_kernel() {
	local pkg=$1 ver=$2 t0 rel
	t0=$(now)
	mkdir -p "$VM_CACHE/kernel"
	dl_tmp=$(mktemp -d "$VM_CACHE/dl.XXXXXX") # removed by cleanup if anything below fails
	log "downloading $pkg $ver"
	# The download directory belongs to root; papt tells apt not to drop to its _apt user for it.
	if ! (cd "$dl_tmp" && papt apt-get download "$pkg=$ver" >&2); then
		rm -rf "$dl_tmp"
		dl_tmp=
		return 1
	fi
	rm -rf "$kdir" && mkdir -p "$kdir"
	dpkg-deb -x "$dl_tmp"/*.deb "$kdir"
	rm -rf "$dl_tmp"
	dl_tmp=
	rel=$(ls "$kdir/lib/modules")
	# The .deb ships no modules.dep (the postinst makes it); build it here.
	depmod -b "$kdir" "$rel"
	touch "$kdir/.complete"
	log "kernel $pkg $ver downloaded and extracted in $(since "$t0")"
}

# VM_ROOTFS_PKGS are the Debian packages of the root file system of a VM whose architecture is not
# the machine's: what the tests and the demo run (curl and python3 as IMDSv1 callers, sh, bash, unshare,
# mount, sleep, true, head; ip for vmcheck; nft for the DNAT test), busybox for /init, and their
# dependencies.
VM_ROOTFS_PKGS="busybox-static dash bash coreutils util-linux mount curl python3 iproute2 nftables"
VM_ROOTFS_SUITES="bookworm bookworm-security"

# build_rootfs sets rootfs to a root file system of VM_ARCH's Debian packages (VM_ROOTFS_PKGS of
# VM_ROOTFS_SUITES with their dependencies), built once from Debian's archive through a private
# apt configuration and cached in $VM_CACHE/rootfs/<arch>-<key>, the key a hash of everything
# that goes into it (architecture, suites, packages, this function). Packages are unpacked with
# dpkg-deb, not installed: no maintainer script runs (they would need the other architecture's
# binaries to run here), so what their scripts would make is made below.
build_rootfs() {
	local key t0 deb
	key=$(printf '%s\n' "$VM_ARCH" "$VM_ROOTFS_SUITES" "$VM_ROOTFS_PKGS" "$(declare -f build_rootfs)" | sha256sum | cut -c1-12)
	rootfs="$VM_CACHE/rootfs/$VM_ARCH-$key"
	if [[ -f $rootfs/.complete ]]; then
		log "root file system ($VM_ARCH: $VM_ROOTFS_PKGS) cached in ${rootfs#"$repo"/}"
		return
	fi
	t0=$(now)
	# shellcheck disable=SC2086 # the suites are words
	private_apt "rootfs-$VM_ARCH" $VM_ROOTFS_SUITES || die "cannot update the package lists of $VM_ROOTFS_SUITES for $VM_ARCH"
	rm -rf "$rootfs" "$apt_dir/cache/archives/"*.deb && mkdir -p "$rootfs"
	# The private status file is empty: every dependency is downloaded.
	# shellcheck disable=SC2086
	papt apt-get install -q -y --download-only --no-install-recommends $VM_ROOTFS_PKGS >&2 ||
		die "downloading the root file system's packages ($VM_ROOTFS_PKGS) failed"
	for deb in "$apt_dir/cache/archives/"*.deb; do
		dpkg-deb -x "$deb" "$rootfs"
	done
	log "root file system: $(ls "$apt_dir/cache/archives/" | grep -c '\.deb$') packages unpacked"
	rm -f "$apt_dir/cache/archives/"*.deb
	# What the maintainer scripts and debootstrap would have made: the user and group databases
	# (base-passwd), /bin/sh (dash), the directories tests mount on.
	mkdir -p "$rootfs"/{etc,bin,root,tmp,var/tmp,run,proc,sys,dev,mnt}
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	[[ -e $rootfs/bin/sh ]] || ln -s dash "$rootfs/bin/sh"
	# base-files (which bash pulls in) ships /var/run and /var/lock as empty directories: links
	# to /run instead, where ip netns and the test bed keep named namespaces.
	rm -rf "${rootfs:?}/var/run" "${rootfs:?}/var/lock"
	ln -s /run "$rootfs/var/run"
	ln -s /run/lock "$rootfs/var/lock"
	echo imdsv2-vm >"$rootfs/etc/hostname"
	touch "$rootfs/.complete"
	log "root file system for $VM_ARCH built in ${rootfs#"$repo"/} in $(since "$t0")"
}

# module_order prints the .ko paths (relative to the modules directory) of VM_MODULES and their
# dependencies, dependencies first, each once. A module the kernel has built in (listed in
# modules.builtin: 6.12 builds in virtio_pci and virtiofs) is left out.
module_order() {
	local builtin=/dev/null
	[[ -f $1/modules.builtin ]] && builtin=$1/modules.builtin
	awk -v want="$VM_MODULES" '
		FILENAME != ARGV[ARGC - 1] { name = $1; sub(".*/", "", name); sub("\\.ko(\\.[a-z]+)?$", "", name)
		  gsub("-", "_", name); builtin[name] = 1; next }
		{ sub(":", "", $1); path[$1] = $0; name = $1; sub(".*/", "", name); sub("\\.ko(\\.[a-z]+)?$", "", name)
		  gsub("-", "_", name); byname[name] = $1 }
		function visit(p,    f, n, i) {
			if (p in seen) return
			seen[p] = 1
			n = split(path[p], f, " ")
			for (i = n; i >= 2; i--) visit(f[i])   # modules.dep lists the deepest dependency last
			print p
		}
		END {
			n = split(want, w, " ")
			for (i = 1; i <= n; i++) {
				m = w[i]; gsub("-", "_", m)
				if (!(m in byname) && (m in builtin)) { print "test-vm: " w[i] " is built in" > "/dev/stderr"; continue }
				if (!(m in byname)) { print "unknown module " w[i] > "/dev/stderr"; exit 1 }
				visit(byname[m])
			}
		}' "$builtin" "$1/modules.dep"
}

# discover_pkgs prints the default VM_PKGS: the base list plus every package directory whose
# tests call internal/privtest (they need root, namespaces, cgroups or BPF), minus VM_EXCLUDE.
discover_pkgs() {
	local d out=" $VM_BASE_PKGS " all="$VM_BASE_PKGS $VM_LAST_PKGS"
	while read -r d; do
		d="./${d#./}/"
		case " $VM_EXCLUDE " in *" $d "*) continue ;; esac
		case " $all " in *" $d "* | *" ${d%/}/... "*) continue ;; esac
		# Covered by a "dir/..." pattern of the fixed lists?
		local p covered=0
		for p in $all; do
			[[ $p == */... && $d == "${p%...}"* ]] && covered=1
		done
		((covered)) || out+="$d "
	done < <(cd "$repo" && grep -rlE --include='*_test.go' 'privtest\.(Require|RequireCaps|Unavailable)\(' . |
		grep -v '^\./\.' | xargs -r -n1 dirname | sort -u)
	echo $out $VM_LAST_PKGS
}

# build_tests compiles the static test binaries for VM_ARCH into $VM_CACHE/tests and lists them,
# one "test package-directory binary" line each, in $stage/imdsv2/tests, then the demo as a
# "run directory program arguments..." line; build failures go to build_failed.
# One `go test -c` for all packages lets go build them in parallel; if that fails, each package
# is built on its own so that the run names the broken ones and still tests the others.
build_tests() {
	local ip name pdir rel bin tdir="$VM_CACHE/tests" list=()
	build_failed=()
	rm -rf "$tdir" && mkdir -p "$tdir"
	: >"$stage/imdsv2/tests"
	for pattern in $VM_PKGS; do
		if [[ ! -d $repo/${pattern%/...} ]]; then
			log "skip $pattern: ${pattern%/...} does not exist (yet)"
			continue
		fi
		# -e: list half-written packages too, so that their build failure is reported; packages
		# without tests print an empty line.
		while IFS='|' read -r ip name pdir; do
			# go test -c names the binary of a package main after its import path, not "main".
			[[ $name != main ]] || name=${ip##*/}
			[[ -n $ip ]] && list+=("$ip|$name|$pdir")
		done < <(cd "$repo" && "$GO" list -e -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}|{{.Name}}|{{.Dir}}{{end}}' "$pattern")
	done
	((${#list[@]})) || die "no package with tests in VM_PKGS=$VM_PKGS"
	local all=() names
	for e in "${list[@]}"; do all+=("${e%%|*}"); done
	names=$(printf '%s\n' "${list[@]}" | cut -d'|' -f2 | sort | uniq -d)
	if [[ -n $names ]] || ! (cd "$repo" && CGO_ENABLED=0 GOARCH=$VM_ARCH "$GO" test -c -ldflags='-s -w' -o "$tdir/" "${all[@]}"); then
		log "building the test binaries one package at a time"
		for e in "${list[@]}"; do
			IFS='|' read -r ip name pdir <<<"$e"
			rel=${pdir#"$repo"/}
			(cd "$repo" && CGO_ENABLED=0 GOARCH=$VM_ARCH "$GO" test -c -ldflags='-s -w' -o "$tdir/${rel//\//_}.test" "$ip") ||
				build_failed+=("$rel")
		done
	fi
	for e in "${list[@]}"; do
		IFS='|' read -r ip name pdir <<<"$e"
		rel=${pdir#"$repo"/}
		for bin in "$tdir/$name.test" "$tdir/${rel//\//_}.test"; do
			if [[ -x $bin ]]; then
				echo "test $pdir $bin" >>"$stage/imdsv2/tests"
				break
			fi
		done
	done
	log "test binaries: $(awk '{ sub(".*/", "", $3); printf "%s ", $3 }' "$stage/imdsv2/tests")"
	# The end-to-end tests and those of cmd/imdsv2 run programs they would otherwise `go build`
	# themselves, which under software emulation takes minutes (and an arm64 VM has no Go
	# toolchain): build them here (IMDSV2_E2E_PREBUILT).
	mkdir -p "$tdir/prebuilt"
	(cd "$repo" && CGO_ENABLED=0 GOARCH=$VM_ARCH "$GO" build -o "$tdir/prebuilt/imdsv2" ./cmd/imdsv2 &&
		CGO_ENABLED=0 GOARCH=$VM_ARCH "$GO" build -o "$tdir/prebuilt/caller" ./internal/e2e/testdata/caller) ||
		die "building the end-to-end test programs failed"
	[[ -s $stage/imdsv2/tests ]] || die "no test binary was built (VM_PKGS=$VM_PKGS)"
	# Last, the README's main command, as a user runs it: its exit status counts like a test's.
	if [[ $VM_DEMO == 1 ]]; then
		echo "run $repo $tdir/prebuilt/imdsv2 demo" >>"$stage/imdsv2/tests"
	fi
}

# build_initramfs fills $stage and packs it into $initrd (uncompressed: TCG would spend longer
# decompressing it than QEMU spends loading a bigger file).
build_initramfs() {
	local moddir=$1 rel=$2 ko
	rm -rf "$stage" && mkdir -p "$stage"/{bin,lib/modules,imdsv2,host}
	if [[ -n $rootfs ]]; then
		cp "$rootfs/bin/busybox" "$stage/bin/busybox"
	else
		cp /bin/busybox "$stage/bin/busybox"
	fi
	cp "$repo/vm/init.sh" "$stage/init"
	chmod 0755 "$stage/init"
	: >"$stage/imdsv2/modules"
	while read -r ko; do
		cp "$moddir/$ko" "$stage/lib/modules/"
		basename "$ko" >>"$stage/imdsv2/modules"
	done < <(module_order "$moddir")
	log "modules: $(tr '\n' ' ' <"$stage/imdsv2/modules")"
	build_tests
	printf 'REPO=%q\nIMDSV2_VM_KERNEL=%q\nVM_TEST_FLAGS=%q\nGOROOT_BIN=%q\nE2E_PREBUILT=%q\nTESTS=%q\nROOTFS=%q\n' "$repo" "$rel" \
		"$VM_TEST_FLAGS" "$("$GO" env GOROOT)/bin" "$VM_CACHE/tests/prebuilt" "$VM_CACHE/tests" "$rootfs" >"$stage/imdsv2/env"
	(cd "$stage" && find . -print0 | cpio -0 -o -H newc -R 0:0 --quiet) >"$initrd"
}

# start_virtiofsd serves a read-only view of the host's root file system on $sock. The bind
# mount lives only in virtiofsd's private mount namespace, and is read-only there, so nothing in
# the VM can change a host file whatever the guest kernel asks for.
start_virtiofsd() {
	local mnt="$VM_CACHE/hostroot" i
	sock="$VM_CACHE/virtiofs.sock"
	mkdir -p "$mnt" && rm -f "$sock"
	local serve
	if "$vfsd" --help 2>&1 | grep -q -- '--shared-dir'; then
		serve='exec "$2" --socket-path="$3" --shared-dir="$1" --cache=always --sandbox=namespace --readonly'
	else
		serve='exec "$2" --socket-path="$3" -o source="$1" -o cache=always -o sandbox=namespace'
	fi
	unshare -m --propagation private sh -c \
		'mount --bind / "$1" && mount -o remount,bind,ro "$1" && '"$serve" \
		sh "$mnt" "$vfsd" "$sock" >"$VM_CACHE/virtiofsd.log" 2>&1 &
	vfs_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -S $sock ]] && return 0
		kill -0 "$vfs_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$VM_CACHE/virtiofsd.log" >&2
	die "virtiofsd did not start ($vfsd)"
}

stop_virtiofsd() {
	if [[ -n ${vfs_pid:-} ]] && kill -0 "$vfs_pid" 2>/dev/null; then
		kill "$vfs_pid" 2>/dev/null || true
		wait "$vfs_pid" 2>/dev/null || true
	fi
	rm -f "${sock:-}"
}

# boot runs the VM, streams its console to stderr and $vmlog, and returns /init's verdict.
boot() {
	local kernel=$1
	# imdsv2.testvm=1 marks the kernel command line of this VM: tests that may attach at the
	# root cgroup (the VM's, which belongs to them) require it (internal/privtest.InTestVM).
	local append="console=$console panic=-1 loglevel=4 random.trust_cpu=on imdsv2.testvm=1 $kernel_append $VM_APPEND"
	qemu+=(-accel "${VM_ACCEL:-tcg}" -m "$VM_MEM" -smp "$VM_SMP"
		-nographic -nodefaults -no-user-config -no-reboot
		-serial stdio -monitor none
		-nic none # no network device: nothing in the VM can reach any network
		-object "memory-backend-memfd,id=mem,size=$VM_MEM,share=on" -numa node,memdev=mem
		-chardev "socket,id=hostroot,path=$sock" -device vhost-user-fs-pci,chardev=hostroot,tag=hostroot
		-kernel "$kernel" -initrd "$initrd" -append "$append")
	log "booting: ${qemu[*]}"
	local t0 qrc=0 result
	t0=$(now)
	# The console uses CRLF; strip the CR so the log greps cleanly (unbuffered, so the console
	# streams line by line).
	# In the background, waited for: bash runs a signal's trap (cleanup) during wait, but only
	# after a foreground pipeline ends.
	(timeout --foreground -k 10 "$VM_TIMEOUT" "${qemu[@]}" </dev/null | sed -u 's/\r$//' | tee "$vmlog" >&2) &
	wait $! || qrc=$?
	log "VM ran for $(since "$t0") (QEMU status $qrc)"
	result=$(grep -a '^IMDSV2-VM-RESULT:' "$vmlog" | tail -1 || true)
	if [[ -z $result ]]; then
		if ((qrc == 124 || qrc == 137)); then
			die "VM killed after VM_TIMEOUT=${VM_TIMEOUT}s without a result line; console log: $vmlog"
		fi
		die "VM stopped without a result line (kernel panic or /init died); console log: $vmlog"
	fi
	grep -a '^IMDSV2-VM-PKG:' "$vmlog" | sed 's/^/  /' >&2 || true
	log "${result#IMDSV2-VM-}"
	[[ $result == "IMDSV2-VM-RESULT: PASS" ]]
}

# kill_tree sends SIGTERM to every descendant of pid, deepest first.
kill_tree() {
	local child
	for child in $(pgrep -P "$1" 2>/dev/null); do
		kill_tree "$child"
		kill -TERM "$child" 2>/dev/null || true
	done
}

# cleanup stops what this script started, on every exit, a signal included: QEMU (through
# timeout, which passes the signal on), virtiofsd, and a half-done kernel download.
cleanup() {
	kill_tree $$
	stop_virtiofsd
	if [[ -n ${dl_tmp:-} ]]; then rm -rf "$dl_tmp"; fi
}

main() {
	local t0 t1 rel rc=0
	# bash runs the EXIT trap on exit, not when a signal kills it: turn signals into exits.
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	t0=$(now)
	mkdir -p "$VM_CACHE"
	VM_CACHE=$(cd "$VM_CACHE" && pwd) # apt takes relative Dir:: paths as relative to /etc/apt
	arch_setup
	if [[ -z $VM_TEST_SKIP_SET && $VM_ARCH == arm64 ]]; then VM_TEST_SKIP='^TestVerdictInvariantOnTheWire$'; fi
	if [[ -n $VM_TEST_SKIP ]]; then
		log "left out (VM_TEST_SKIP; VM_TEST_SKIP= runs them): $VM_TEST_SKIP"
		VM_TEST_FLAGS+=" -test.skip=$VM_TEST_SKIP"
	fi
	ensure_tools
	fetch_kernel
	rootfs=
	[[ $VM_ARCH == amd64 ]] || build_rootfs
	rel=$(ls "$kdir/lib/modules")
	stage="$VM_CACHE/stage"
	initrd="$VM_CACHE/initramfs.cpio"
	vmlog="$VM_CACHE/console.log"
	[[ -n $VM_PKGS ]] || VM_PKGS=$(discover_pkgs)
	log "packages: $VM_PKGS"

	t1=$(now)
	build_initramfs "$kdir/lib/modules/$rel" "$rel"
	log "tests and initramfs ($(du -h "$initrd" | cut -f1)) built in $(since "$t1")"

	start_virtiofsd
	boot "$kdir/boot/vmlinuz-$rel" || rc=1
	stop_virtiofsd
	if ((${#build_failed[@]})); then
		log "FAIL: these packages did not build: ${build_failed[*]}"
		rc=1
	fi
	log "total $(since "$t0"), VM_ARCH=$VM_ARCH VM_KERNEL=$VM_KERNEL: $kernel_desc, release $rel"
	return $rc
}

main "$@"
