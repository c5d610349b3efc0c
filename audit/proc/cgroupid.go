package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/imdsv2/imdsv2/internal/mountinfo"
)

// Bounds of the cgroup walk: a host has hundreds of cgroups, a Kubernetes
// node a few thousand.
const (
	maxCgroupDirs   = 100000
	cgroupRescanGap = 5 * time.Second
)

// cgroupIndex maps cgroup v2 ids (the inode numbers of the cgroup
// directories) to paths relative to the mount.
type cgroupIndex struct {
	root    string
	paths   map[uint64]string
	scanned time.Time
}

// CgroupPath returns the path, relative to the cgroup v2 mount, of the
// cgroup whose id is id (what bpf_get_current_cgroup_id reports). A miss
// rescans the hierarchy, at most once every few seconds.
func (t *Table) CgroupPath(id uint64) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cgroups == nil {
		root := t.cfg.CgroupRoot
		if root == "" {
			var err error
			if root, err = t.findCgroup2(); err != nil {
				return "", err
			}
		}
		t.cgroups = &cgroupIndex{root: root}
	}
	ix := t.cgroups
	if p, ok := ix.paths[id]; ok {
		return p, nil
	}
	if time.Since(ix.scanned) < cgroupRescanGap {
		return "", fmt.Errorf("cgroup id %d: not found under %s", id, ix.root)
	}
	if err := ix.scan(); err != nil {
		return "", err
	}
	if p, ok := ix.paths[id]; ok {
		return p, nil
	}
	return "", fmt.Errorf("cgroup id %d: not found under %s", id, ix.root)
}

func (ix *cgroupIndex) scan() error {
	ix.scanned = time.Now()
	paths := make(map[uint64]string)
	n := 0
	err := filepath.WalkDir(ix.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == ix.root {
				return err
			}
			return fs.SkipDir // a cgroup removed during the walk
		}
		if !d.IsDir() {
			return nil
		}
		if n++; n > maxCgroupDirs {
			return fs.SkipAll
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		ino, ok := inode(fi)
		if !ok {
			return errors.New("proc: cgroup ids need inode numbers, not available on this system")
		}
		rel, _ := filepath.Rel(ix.root, path)
		if rel == "." {
			rel = ""
		}
		paths[ino] = "/" + filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan cgroups under %s: %w", ix.root, err)
	}
	ix.paths = paths
	return nil
}

// findCgroup2 finds the cgroup v2 mount point in ProcRoot/self/mountinfo
// (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
func (t *Table) findCgroup2() (string, error) {
	path := filepath.Join(t.cfg.ProcRoot, "self", "mountinfo")
	b, err := readFile(path)
	if err != nil {
		return "", err
	}
	mounts, err := mountinfo.Parse(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if p, ok := mountinfo.Cgroup2(mounts); ok {
		return p, nil
	}
	return "", fmt.Errorf("no cgroup2 mount in %s", path)
}
