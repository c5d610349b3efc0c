//go:build !unix

package scan

import "io/fs"

type fileID struct{ dev, ino uint64 }

func idOf(fs.FileInfo) (fileID, bool)  { return fileID{}, false }
func sameDevice(a, b fs.FileInfo) bool { return true }
