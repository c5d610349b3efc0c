package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
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

// outsideNamespace rewrites the cgroup v2 line of a /proc/<pid>/cgroup file
// when the process is outside this reader's cgroup namespace: the kernel then
// writes its path relative to the namespace's root ("0::/../../pod2/ctr"),
// which is resolved here against the host hierarchy (CgroupRoot). A path that
// cannot be resolved, and such paths of v1 hierarchies, are left out: a wrong
// path is worse than none, and the cgroup id of the kernel events names the
// cgroup anyway.
func (t *Table) outsideNamespace(b []byte) []byte {
	if !bytes.Contains(b, []byte(":/..")) {
		return b
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || (f[2] != "/.." && !strings.HasPrefix(f[2], "/../")) {
			out = append(out, line)
			continue
		}
		if f[0] != "0" || f[1] != "" {
			continue
		}
		root, ok := t.namespaceRoot()
		if !ok {
			continue
		}
		if p, ok := below(root, f[2]); ok {
			out = append(out, "0::"+p)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// namespaceRoot returns the path, in the host hierarchy (CgroupRoot), of the
// root of this reader's cgroup namespace: the cgroup shown by a cgroup2 mount
// made inside the namespace (root "/" in ProcRoot/self/mountinfo), found by
// its id. Found once; until then it is looked for again on each call.
func (t *Table) namespaceRoot() (string, bool) {
	t.mu.Lock()
	root := t.nsRoot
	t.mu.Unlock()
	if root != "" {
		return root, true
	}
	b, err := readFile(filepath.Join(t.cfg.ProcRoot, "self", "mountinfo"))
	if err != nil {
		return "", false
	}
	mounts, _ := mountinfo.Parse(bytes.NewReader(b))
	for _, m := range mounts {
		if m.FSType != "cgroup2" || m.Root != "/" {
			continue
		}
		fi, err := os.Stat(m.Point)
		if err != nil {
			continue
		}
		id, ok := inode(fi)
		if !ok {
			continue
		}
		if p, err := t.CgroupPath(id); err == nil {
			t.mu.Lock()
			t.nsRoot = p
			t.mu.Unlock()
			return p, true
		}
	}
	return "", false
}

// below resolves rel ("/../x") from root ("/a/b") to "/a/x"; ok is false when
// rel climbs above the root of the hierarchy.
func below(root, rel string) (string, bool) {
	var comps []string
	for _, c := range strings.Split(strings.Trim(root, "/"), "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		switch c {
		case "", ".":
		case "..":
			if len(comps) == 0 {
				return "", false
			}
			comps = comps[:len(comps)-1]
		default:
			comps = append(comps, c)
		}
	}
	return path.Join(append([]string{"/"}, comps...)...), true
}
