package scan

import (
	"io"
	"strings"

	"github.com/imdsv2/imdsv2/internal/mountinfo"
)

// pseudoFSTypes are file systems the walk never enters: kernel interfaces
// (reading them is pointless and some reads have side effects or never end),
// network file systems (a scan of one host must not walk a share, and a dead
// server hangs every call) and FUSE (anything from sshfs to an S3 bucket).
var pseudoFSTypes = map[string]string{
	"proc": "kernel pseudo file system", "sysfs": "kernel pseudo file system",
	"devtmpfs": "device file system", "devpts": "device file system",
	"cgroup": "kernel pseudo file system", "cgroup2": "kernel pseudo file system",
	"debugfs": "kernel pseudo file system", "tracefs": "kernel pseudo file system",
	"securityfs": "kernel pseudo file system", "bpf": "kernel pseudo file system",
	"pstore": "kernel pseudo file system", "configfs": "kernel pseudo file system",
	"fusectl": "kernel pseudo file system", "hugetlbfs": "kernel pseudo file system",
	"mqueue": "kernel pseudo file system", "binfmt_misc": "kernel pseudo file system",
	"nsfs": "kernel pseudo file system", "efivarfs": "kernel pseudo file system",
	"selinuxfs": "kernel pseudo file system", "rpc_pipefs": "kernel pseudo file system",
	"nfsd":   "kernel pseudo file system",
	"autofs": "automounter (entering it would mount it)",
	"nfs":    "network file system", "nfs4": "network file system", "cifs": "network file system",
	"smb3": "network file system", "smbfs": "network file system", "ceph": "network file system",
	"glusterfs": "network file system", "9p": "network file system", "afs": "network file system",
	"lustre": "network file system",
	"fuse":   "FUSE file system",
}

// pseudoFSReason returns why a file system of type t is not entered, or "".
func pseudoFSReason(t string) string {
	if r, ok := pseudoFSTypes[t]; ok {
		return t + ": " + r
	}
	if strings.HasPrefix(t, "fuse.") {
		// fuse.sshfs, fuse.s3fs, fuse.lxcfs...; fuseblk (ntfs-3g and other
		// local disks) is walked.
		return t + ": FUSE file system"
	}
	return ""
}

// parseMountinfo reads /proc/<pid>/mountinfo and returns the mount points
// below dir (as io/fs names relative to dir) with their file system types.
// A mount point listed twice keeps the later (upper) mount. A table cut short
// by a read error still gives what came before it.
func parseMountinfo(r io.Reader, dir string) map[string]string {
	list, _ := mountinfo.Parse(r)
	mounts := make(map[string]string)
	for _, m := range list {
		var name string
		switch mp := m.Point; {
		case mp == dir:
			name = "."
		case dir == "/" && strings.HasPrefix(mp, "/"):
			name = fsName(mp)
		case strings.HasPrefix(mp, dir+"/"):
			name = fsName(strings.TrimPrefix(mp, dir))
		default:
			continue
		}
		mounts[name] = m.FSType
	}
	return mounts
}
