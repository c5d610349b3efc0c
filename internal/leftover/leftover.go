// Package leftover names what a process creates outside itself (network namespaces, cgroups)
// after that process, prefix<pid>-<rest>, so that a later run can tell what a killed run left
// behind: a name whose pid no longer runs. The test bed and the cgroup helper sweep with it.
package leftover

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
)

// Owner parses a name prefix<pid>-<rest>. ok is false for any other name (another prefix, no
// pid, nothing after the pid).
func Owner(name, prefix string) (pid int, rest string, ok bool) {
	tail, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(tail, "-")
	if !ok || rest == "" {
		return 0, "", false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 || num[0] == '+' {
		return 0, "", false
	}
	return pid, rest, true
}

// Alive reports whether a process with this pid exists (EPERM: it does, owned by someone
// else). A pid reused by another process keeps its owner's leftovers until that one ends too:
// wrong that way round only costs a leftover, never something in use.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
