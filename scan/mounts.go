package scan

import (
	"bufio"
	"io"
	"strings"
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
// A mount point listed twice keeps the later (upper) mount.
func parseMountinfo(r io.Reader, dir string) map[string]string {
	mounts := make(map[string]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		mp := unescapeMountPath(fields[4])
		var name string
		switch {
		case mp == dir:
			name = "."
		case dir == "/" && strings.HasPrefix(mp, "/"):
			name = fsName(mp)
		case strings.HasPrefix(mp, dir+"/"):
			name = fsName(strings.TrimPrefix(mp, dir))
		default:
			continue
		}
		mounts[name] = fields[sep+1]
	}
	return mounts
}

// unescapeMountPath undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
