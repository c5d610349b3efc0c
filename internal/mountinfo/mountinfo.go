// Package mountinfo reads the mount table of /proc/<pid>/mountinfo (proc(5)): which file
// system is mounted where, and which part of it. Three parts of the project need it: the
// agent and the test helpers find the cgroup v2 hierarchy, the auditor resolves cgroup ids to
// paths, and the scanner keeps its walk off pseudo and network file systems.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one line of the table; a longer one is an error, not an allocation.
const maxLine = 1 << 20

// Mount is one line of the table.
type Mount struct {
	Root   string // the directory of the mounted file system that appears at Point ("/": all of it)
	Point  string // where it is mounted, in the reader's mount namespace
	FSType string // "ext4", "cgroup2", "fuse.sshfs", ...
}

// Parse reads mountinfo text. Lines it cannot read (too few fields, no "-" separator) are
// skipped: the kernel writes none, and a table from elsewhere is still mostly of use. On an
// error of the reader, or a line longer than 1 MiB, it returns the mounts read so far with the
// error. Paths are unescaped.
func Parse(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		// The optional fields (master:1) come between the sixth field and the "-".
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 5; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) {
			continue
		}
		mounts = append(mounts, Mount{Root: Unescape(fields[3]), Point: Unescape(fields[4]), FSType: fields[sep+1]})
	}
	if err := sc.Err(); err != nil {
		return mounts, fmt.Errorf("mountinfo: %w", err)
	}
	return mounts, nil
}

// Cgroup2 returns where the cgroup v2 hierarchy is mounted (on a hybrid host
// /sys/fs/cgroup/unified, on a unified one /sys/fs/cgroup). A mount of the whole hierarchy
// wins over a bind mount of a subtree, which is what a container with its own cgroup namespace
// may see; among equals the first listed wins. ok is false when there is none.
func Cgroup2(mounts []Mount) (point string, ok bool) {
	sub := ""
	for _, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		if m.Root == "/" {
			return m.Point, true
		}
		if sub == "" {
			sub = m.Point
		}
	}
	return sub, sub != ""
}

// Unescape undoes the octal escapes the kernel writes in mountinfo paths (\040 for a space,
// \011 tab, \012 newline, \134 backslash). A backslash not followed by three octal digits
// stays as it is.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
