package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/imdsv2/imdsv2/internal/leftover"
)

// netnsDir is where named namespaces live, as `ip netns` keeps them.
const netnsDir = "/var/run/netns"

// InNamespace runs fn on a locked OS thread switched into target, and switches the thread back
// afterwards, also when fn panics.
//
// If the thread cannot be switched back, it stays locked to the calling goroutine: the Go runtime
// ends a thread whose goroutine exits while locked, so a thread in the wrong namespace is never
// handed to other goroutines. The error then says so.
func InNamespace(target netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testbed: read current namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread() // setns failed, the thread has not moved
		return fmt.Errorf("testbed: enter namespace: %w", err)
	}
	// Deferred, so that a panic in fn that a caller recovers does not leave its goroutine in
	// target.
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("testbed: could not leave namespace, thread retired: %w", serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// createNamed creates a named namespace (a bind mount under /var/run/netns, as `ip netns add`
// makes) without moving the calling goroutine's thread for longer than the call.
func createNamed(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	// NewNamed unshares the thread into the new namespace and bind-mounts it under the name.
	h, err := netns.NewNamed(name)
	if err == nil {
		h.Close()
	}
	if serr := netns.Set(orig); serr != nil {
		return fmt.Errorf("could not return to the original namespace, thread retired: %w", serr)
	}
	runtime.UnlockOSThread()
	return err
}

// deleteNamed removes a named namespace; one that is already gone is not an error. The namespace
// itself lives on until its last process and socket are gone; the name does not.
func deleteNamed(name string) error {
	err := netns.DeleteNamed(name)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// DeleteNamed fails without removing the file when the mount is already gone (someone
		// ran umount by hand): remove what is left.
		if rerr := os.Remove(filepath.Join(netnsDir, name)); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
			return nil
		}
	}
	return err
}

// CleanupStale deletes namespaces that an earlier bed with this prefix (default "imdsv2") left
// behind because its process died before Close. A bed's namespaces are named
// prefix-<creator pid>-<random id>-<role>; they are stale when that pid no longer runs. A pid
// reused by another process keeps its namespaces until that one ends too: wrong that way round
// only costs a leftover, never a live bed. CleanupStale returns the names it deleted.
func CleanupStale(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = "imdsv2"
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		pid, ok := creatorPID(e.Name(), prefix)
		if !ok || leftover.Alive(pid) {
			continue
		}
		if err := deleteNamed(e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("delete stale namespace %s: %w", e.Name(), err))
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

// creatorPID parses the pid out of a bed's namespace name; ok is false for names that are not a
// bed's with this prefix (another prefix, the user's own namespaces).
func creatorPID(name, prefix string) (pid int, ok bool) {
	pid, rest, ok := leftover.Owner(name, prefix+"-")
	if !ok {
		return 0, false
	}
	id, role, ok := strings.Cut(rest, "-")
	if !ok || id == "" || strings.Contains(role, "-") {
		return 0, false
	}
	for _, ns := range allNS {
		if role == ns.String() {
			return pid, true
		}
	}
	return 0, false
}
