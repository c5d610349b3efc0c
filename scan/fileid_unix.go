//go:build unix

package scan

import (
	"io/fs"
	"syscall"
)

// fileID identifies a file or directory across links and overlapping roots.
type fileID struct{ dev, ino uint64 }

// idOf returns info's identity, ok=false when the file system does not say
// (an fs.FS without Stat_t).
func idOf(info fs.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}

// sameDevice reports whether a and b are on the same device; true when
// unknown, so an unknown never triggers the statfs check.
func sameDevice(a, b fs.FileInfo) bool {
	x, ok1 := idOf(a)
	y, ok2 := idOf(b)
	return !ok1 || !ok2 || x.dev == y.dev
}
