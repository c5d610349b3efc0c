//go:build linux

package cgroup

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// removeTimeout bounds how long Remove waits for killed processes to leave the cgroup.
const removeTimeout = 10 * time.Second

// Group is a cgroup v2 directory created by New, with an open descriptor for starting processes
// directly inside it.
type Group struct {
	path string
	dir  *os.File
	id   uint64
}

// New creates a cgroup with a unique name (prefix plus random hex) under parent, which must be a
// cgroup v2 directory; an empty parent means the root of the hierarchy found by Mountpoint.
func New(parent, prefix string) (*Group, error) {
	parent, err := orRoot(parent)
	if err != nil {
		return nil, err
	}
	if err := Check(parent); err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "imdsv2-"
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("cgroup: random name: %w", err)
	}
	path := filepath.Join(parent, prefix+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: create %s: %w", path, err)
	}
	dir, err := os.Open(path)
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("cgroup: open %s: %w", path, err)
	}
	id, err := ID(path)
	if err != nil {
		dir.Close()
		_ = os.Remove(path)
		return nil, err
	}
	return &Group{path: path, dir: dir, id: id}, nil
}

// NewSwept is New for a program that may be killed before it removes its cgroup (a test, the
// demo): the name carries the process's pid (prefix<pid>-<random hex>), and the leftovers of
// earlier processes with this prefix that no longer run are removed first, as far as they are
// empty (SweepStale; a leftover still holding a process is not this program's business).
func NewSwept(parent, prefix string) (*Group, error) {
	parent, err := orRoot(parent)
	if err != nil {
		return nil, err
	}
	_, _ = SweepStale(parent, prefix)
	return New(parent, prefix+strconv.Itoa(os.Getpid())+"-")
}

// orRoot returns parent, or the hierarchy's root (Mountpoint) when parent is empty.
func orRoot(parent string) (string, error) {
	if parent != "" {
		return parent, nil
	}
	return Mountpoint()
}

// Path returns the cgroup's directory.
func (g *Group) Path() string { return g.path }

// ID returns the cgroup v2 id, as BPF programs see it in bpf_get_current_cgroup_id().
func (g *Group) ID() uint64 { return g.id }

// FD returns the open descriptor of the cgroup directory; it is valid until Remove.
func (g *Group) FD() int { return int(g.dir.Fd()) }

// Prepare makes cmd start inside the cgroup (SysProcAttr.UseCgroupFD): the child is created there
// by clone3, so everything it does, from its exec on, is seen by programs attached to the cgroup.
func (g *Group) Prepare(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = g.FD()
}

// Start prepares cmd with Prepare and starts it.
func (g *Group) Start(cmd *exec.Cmd) error {
	g.Prepare(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cgroup: start %s in %s: %w", cmd.Path, g.path, err)
	}
	return nil
}

// Run starts cmd inside the cgroup and waits for it.
func (g *Group) Run(cmd *exec.Cmd) error {
	if err := g.Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Procs lists the processes in the cgroup and its descendants.
func (g *Group) Procs() ([]int, error) {
	var pids []int
	err := filepath.WalkDir(g.path, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// Remove kills every process left in the cgroup and its descendants, waits (bounded) until they
// are gone and removes the directories. It is safe to call more than once.
func (g *Group) Remove() error {
	if g.dir == nil {
		return nil
	}
	// cgroup.kill (Linux 5.14) kills the whole subtree atomically, forks included. Older kernels
	// (5.10: Amazon Linux 2) have no such file, and a write to a missing cgroup file fails with
	// EACCES, not ENOENT (cgroupfs refuses to create it); whatever the write's error, the loop
	// below kills what cgroup.procs lists, in every descendant, until nothing is left.
	killed := writeKill(g.path) == nil
	deadline := time.Now().Add(removeTimeout)
	for {
		pids, err := g.Procs()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cgroup: list processes in %s: %w", g.path, err)
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			how := "cgroup.kill"
			if !killed {
				how = "SIGKILL to each process in cgroup.procs (no cgroup.kill before Linux 5.14)"
			}
			return fmt.Errorf("cgroup: processes %v still in %s %v after %s", pids, g.path, removeTimeout, how)
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.dir.Close()
	g.dir = nil
	for {
		err := removeTree(g.path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// A killed task leaves the cgroup only once its parent reaped it.
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroup: remove %s: %w", g.path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killFile is the file whose write kills a cgroup's whole subtree; a test names a file that does
// not exist to take, on any kernel, the path that kernels before 5.14 take.
var killFile = "cgroup.kill"

// writeKill writes "1" to the cgroup's killFile, without O_CREAT (cgroupfs answers a create of
// a missing file with EACCES, which would hide that the kernel simply lacks it).
func writeKill(path string) error {
	f, err := os.OpenFile(filepath.Join(path, killFile), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("1"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTree removes a cgroup directory and its child cgroups, deepest first. Cgroup directories
// hold only kernel files, which rmdir takes along.
func removeTree(path string) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	return unix.Rmdir(path)
}

// TB is the part of testing.TB that ForTest uses (kept small so that this package does not
// import testing).
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// ForTest creates a cgroup for one test under the cgroup2 root and removes it when the test ends
// (processes still inside are killed first). The test fails if either step fails. First it
// sweeps away the empty test cgroups of earlier test processes that were killed before their
// clean-up ran (NewSwept).
func ForTest(t TB) *Group {
	t.Helper()
	g, err := NewSwept("", testPrefix)
	if err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Fatalf("remove test cgroup: %v", err)
		}
	})
	return g
}
