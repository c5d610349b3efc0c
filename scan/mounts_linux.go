package scan

import (
	"os"
	"syscall"
)

// loadMounts returns the mount points below dir from the kernel's mount
// table, or nil when it cannot be read (then statfs at device changes still
// catches pseudo file systems).
func loadMounts(dir string) map[string]string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseMountinfo(f, dir)
}

// fsMagic maps statfs f_type values (linux/magic.h) to the names mountinfo
// uses, for the types pseudoFSTypes lists.
var fsMagic = map[uint32]string{
	0x9fa0: "proc", 0x62656572: "sysfs", 0x1cd1: "devpts", 0x27e0eb: "cgroup",
	0x63677270: "cgroup2", 0x64626720: "debugfs", 0x74726163: "tracefs",
	0x73636673: "securityfs", 0xcafe4a11: "bpf", 0x6165676c: "pstore",
	0x62656570: "configfs", 0x65735543: "fusectl", 0x958458f6: "hugetlbfs",
	0x19800202: "mqueue", 0x42494e4d: "binfmt_misc", 0x6e736673: "nsfs",
	0xde5e81e4: "efivarfs", 0xf97cff8c: "selinuxfs", 0x67596969: "rpc_pipefs",
	0x6e667364: "nfsd", 0x0187: "autofs", 0x6969: "nfs", 0xff534d42: "cifs",
	0xfe534d42: "smb3", 0x517b: "smbfs", 0x00c36400: "ceph", 0x01021997: "9p",
	0x5346414f: "afs", 0x65735546: "fuse",
}

// dirFSType returns the type of the file system holding path, "" if it is
// none of fsMagic's or cannot be told.
func dirFSType(path string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(path, &st) != nil {
		return ""
	}
	return fsMagic[uint32(st.Type)]
}

// fileFSType is dirFSType for an open file.
func fileFSType(f *os.File) string {
	sc, err := f.SyscallConn()
	if err != nil {
		return ""
	}
	var st syscall.Statfs_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = syscall.Fstatfs(int(fd), &st) }); err != nil || serr != nil {
		return ""
	}
	return fsMagic[uint32(st.Type)]
}
