#!/bin/busybox sh
# /init of the test VM that vm/run.sh boots. It runs as PID 1 from the initramfs with busybox:
# load the kernel modules the host script put in /lib/modules (in dependency order), mount the
# host's root file system (shared read-only over virtiofs, tag "hostroot") on /host, put fresh
# proc, sysfs, devtmpfs, tmpfs, bpffs, cgroup2, tracefs and debugfs mounts on top of it, bring up
# loopback, and run every test binary listed in /imdsv2/tests chrooted into /host (in a VM of
# another architecture: into an overlay of the root file system built for it), from its package
# directory, then `imdsv2 demo`. It ends with one line the host script looks for:
#     IMDSV2-VM-RESULT: PASS            or      IMDSV2-VM-RESULT: FAIL rc=N (what failed)
# then powers the machine off. If /init dies instead, the kernel panics (panic=-1, -no-reboot) and
# QEMU exits without that line, which the host script reports as a failure.

/bin/busybox --install -s /bin
export PATH=/bin

# The kernel does not mount devtmpfs in an initramfs (CONFIG_DEVTMPFS_MOUNT is off in Debian), so
# /dev/console is missing until now; send everything to the serial console from here on.
mkdir -p /dev && mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

uptime() { cut -d' ' -f1 /proc/uptime; }

# finish prints the result marker and powers off; it never returns.
finish() {
	echo
	if [ "$1" = 0 ]; then
		echo "IMDSV2-VM-RESULT: PASS"
	else
		echo "IMDSV2-VM-RESULT: FAIL rc=$1 ($2)"
	fi
	sync
	poweroff -f
	sleep 10 # poweroff -f does not return; if it did, exiting panics the kernel and QEMU stops
	exit 1
}

# mountfs TYPE DIR [OPTIONS]: mount a pseudo file system or give up loudly.
mountfs() {
	mkdir -p "$2" 2>/dev/null
	mount -t "$1" ${3:+-o "$3"} "$1" "$2" || finish 100 "mount $1 on $2"
}
mountfs proc /proc
mountfs sysfs /sys

echo "IMDSV2-VM-BOOTED: kernel $(uname -r), /init started at uptime $(uptime)s"

# Modules, one file name per line, already in load order (dependencies first).
while read -r ko; do
	insmod "/lib/modules/$ko" || finish 101 "insmod $ko"
done </imdsv2/modules

# The host's root, read-only. The virtio device may appear a moment after its driver loads.
h=/host
tries=0
until mount -t virtiofs -o ro hostroot $h 2>/dev/null; do
	tries=$((tries + 1))
	[ $tries -lt 50 ] || finish 102 "mount virtiofs hostroot on $h"
	sleep 0.1
done
# Directories of the read-only root exist as mount points (the share is a non-recursive bind).
# Settings written by the host script: REPO, IMDSV2_VM_KERNEL, VM_TEST_FLAGS, GOROOT_BIN,
# E2E_PREBUILT, TESTS (the directory of the test binaries), ROOTFS.
. /imdsv2/env
# A VM of another architecture than the host's cannot run the host's programs: ROOTFS names a
# root file system of the VM's architecture that the host script built (in its cache, so on the
# share). The tests run in an overlay of it with a writable layer in VM memory, with the
# repository and the test binaries bound in at their host paths below.
if [ -n "$ROOTFS" ]; then
	mkdir -p /rootfs /rootfs-rw && mount -t tmpfs -o mode=0755 tmpfs /rootfs-rw &&
		mkdir -p /rootfs-rw/upper /rootfs-rw/work &&
		mount -t overlay overlay -o lowerdir=$h$ROOTFS,upperdir=/rootfs-rw/upper,workdir=/rootfs-rw/work /rootfs ||
		finish 106 "overlay of $ROOTFS"
	share=$h
	h=/rootfs
fi
# The repository (test binaries, testdata) may live under a directory that gets a fresh tmpfs
# below (a clone in /tmp): keep the host's view of it and put it back on top afterwards.
mkdir -p /repo && mount -o bind "${share:-$h}$REPO" /repo || finish 104 "bind $REPO"
mountfs proc $h/proc
mountfs sysfs $h/sys
mountfs devtmpfs $h/dev
mountfs devpts $h/dev/pts
mountfs tmpfs $h/dev/shm
mountfs tmpfs $h/tmp mode=1777
mountfs tmpfs $h/var/tmp mode=1777
mountfs tmpfs $h/run mode=0755 # /var/run is a link to it: ip netns keeps its files there
# HOME: the host's /root through an overlay whose upper layer is VM memory, so the Go module and
# build caches are there (the end-to-end tests run `go build` offline) and writes stay in the VM.
# The root file system of another architecture has no Go toolchain: an empty HOME there.
mkdir -p /ovl && mount -t tmpfs -o mode=0700 tmpfs /ovl && mkdir -p /ovl/upper /ovl/work
if [ -n "$ROOTFS" ]; then
	mountfs tmpfs $h/root mode=0700
elif ! mount -t overlay overlay -o lowerdir=$h/root,upperdir=/ovl/upper,workdir=/ovl/work $h/root; then
	echo "IMDSV2-VM-WARNING: no overlay on /root, HOME is empty (tests that run go build will fail)"
	mountfs tmpfs $h/root mode=0700
fi
if [ -n "$ROOTFS" ]; then
	# The repository and the test binaries (the cache may live outside the repository) at their
	# host paths, read-only, on top of everything mounted above.
	mkdir -p "$h$REPO" && mount -o bind /repo "$h$REPO" || finish 105 "bind $REPO"
	case "$TESTS/" in
	"$REPO"/*) ;;
	*) mkdir -p "$h$TESTS" && mount -o bind "$share$TESTS" "$h$TESTS" || finish 105 "bind $TESTS" ;;
	esac
	GOROOT_BIN=/nonexistent
else
	case "$REPO" in
	/tmp/* | /var/tmp/* | /run/* | /root/*)
		mkdir -p "$h$REPO" && mount -o bind /repo "$h$REPO" || finish 105 "bind $REPO back"
		;;
	esac
fi
mountfs bpf $h/sys/fs/bpf
mountfs cgroup2 $h/sys/fs/cgroup
mountfs tracefs $h/sys/kernel/tracing
mountfs debugfs $h/sys/kernel/debug
# Let test cgroups use the controllers (the tests create their cgroups under the root).
for c in $(cat $h/sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >$h/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
hostname imdsv2-vm
ip link set lo up || finish 103 "loopback up"

echo "IMDSV2-VM-READY: mounts done at uptime $(uptime)s"

failed=""
rc=0
# Each line, absolute paths on the host: "test DIR BIN" runs the test binary BIN from its package
# directory DIR with VM_TEST_FLAGS; "run DIR PROGRAM ARGS..." runs a program (the demo) from DIR.
while read -r kind dir bin args; do
	if [ "$kind" = test ]; then
		args=$VM_TEST_FLAGS
		what=$dir name=${dir##*/}
	else
		name="${bin##*/} $args"
		what="$name (in $dir)"
	fi
	echo
	echo "IMDSV2-VM-PKG-START: $what"
	start=$(uptime)
	# CI=true turns every privileged skip into a failure (internal/privtest); IMDSV2_VM=1 turns
	# on the checks that only make sense in this VM (vm/vmcheck).
	# CGO_ENABLED=0 matches the host's build of the test binaries, so a `go build` in a test
	# finds most packages in the (overlaid) build cache instead of compiling under emulation.
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$GOROOT_BIN HOME=/root TMPDIR=/tmp \
		LANG=C.UTF-8 CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off CI=true IMDSV2_VM=1 IMDSV2_VM_KERNEL="$IMDSV2_VM_KERNEL" IMDSV2_E2E_PREBUILT="$E2E_PREBUILT" IMDSV2_VM_ROOTFS="$ROOTFS" \
		chroot $h /bin/sh -c 'cd "$1" || exit 125; shift; exec "$@"' sh "$dir" "$bin" $args </dev/null
	prc=$?
	took=$(awk -v a="$start" -v b="$(uptime)" 'BEGIN { printf "%.1f", b - a }')
	if [ $prc = 0 ]; then
		echo "IMDSV2-VM-PKG: ok   $what ${took}s"
	else
		echo "IMDSV2-VM-PKG: FAIL $what rc=$prc ${took}s"
		failed="$failed $name"
		rc=1
	fi
done </imdsv2/tests

echo "IMDSV2-VM-DONE: tests finished at uptime $(uptime)s"
finish $rc "failed:$failed"
