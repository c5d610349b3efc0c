//go:build !linux

package scan

import "os"

// Outside Linux there is no mount table to read and no portable statfs type;
// only the path rule (/proc, /sys, /dev) applies.

func loadMounts(string) map[string]string { return nil }
func dirFSType(string) string             { return "" }
func fileFSType(*os.File) string          { return "" }
