// Package vmcheck holds the smoke tests that prove the test VM (vm/run.sh, `make test-vm`) gives
// the project's privileged tests what they need: the expected distribution kernel, the pseudo
// file systems (/proc, /sys, devtmpfs, bpffs, cgroup2, tracefs), kernel BTF, the BPF program and
// map types the auditor uses, a cgroup_skb program attached to a test cgroup that lets loopback
// traffic through, network namespaces with veth pairs and a bridge (kernel modules loaded by the
// VM's /init), and the host's root file system shared read-only (curl, python3 and ip work, no
// host file can be written).
//
// The package has no code of its own, only tests. They also run on an ordinary host: the checks
// that only make sense inside the VM are gated on IMDSV2_VM=1, which the VM's /init sets, and
// IMDSV2_VM_KERNEL, the kernel release the VM was booted with.
package vmcheck
