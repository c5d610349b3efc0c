//go:build !linux

package hostns

import "errors"

var errNotLinux = errors.New("hostns: namespaces and host paths are Linux features")

// Check fails: host paths are a Linux feature.
func (p Paths) Check() error {
	if p == (Paths{}) {
		return nil
	}
	return errNotLinux
}

// Detect fails: namespaces are a Linux feature.
func Detect(procRoot string, p Paths) (Facts, error) {
	return Facts{HostProc: p.Proc != "", HostCgroup: p.Cgroup != ""}, errNotLinux
}
