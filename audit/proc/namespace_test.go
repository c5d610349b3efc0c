package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestCgroupOutsideNamespace: an agent in a pod's cgroup namespace reads, from the host's /proc,
// cgroup paths relative to its namespace ("0::/../../podB/ctr2"). They are resolved against the
// host's cgroup2 mount, through the id of the namespace's own cgroup2 mount, or left out.
func TestCgroupOutsideNamespace(t *testing.T) {
	tmp := t.TempDir()
	cg := filepath.Join(tmp, "host-cgroup")
	for _, d := range []string{"kubepods/podA/ctr1", "kubepods/podB/ctr2"} {
		if err := os.MkdirAll(filepath.Join(cg, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	procRoot := filepath.Join(tmp, "proc")
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(procRoot, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The host's hierarchy, bound from outside the namespace, and the pod's own cgroup2 mount,
	// which shows the namespace's root: podA/ctr1.
	mountinfo := "30 20 0:26 /../../.. " + cg + " ro - cgroup2 cgroup2 rw\n" +
		"31 20 0:26 / " + filepath.Join(cg, "kubepods/podA/ctr1") + " rw - cgroup2 cgroup2 rw\n"
	write("self/mountinfo", mountinfo)
	write("200/stat", "200 (curl) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 700 0 0 0 0 0 0 0 0 0 0")
	write("200/cgroup", "1:name=systemd:/../other\n0::/../../podB/ctr2\n")
	write("201/stat", "201 (sh) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 700 0 0 0 0 0 0 0 0 0 0")
	write("201/cgroup", "0::/../../../../../escapes\n")
	write("202/stat", "202 (sh) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 700 0 0 0 0 0 0 0 0 0 0")
	write("202/cgroup", "0::/inside\n")

	tab := New(Config{ProcRoot: procRoot, CgroupRoot: cg})
	for pid, want := range map[uint32][]string{200: {"/kubepods/podB/ctr2"}, 201: nil, 202: {"/inside"}} {
		p, err := tab.Process(pid)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Cgroups, want) {
			t.Errorf("process %d: cgroups %q, want %q", pid, p.Cgroups, want)
		}
	}

	// Without a mount that shows the namespace's root, nothing can be resolved.
	write("self/mountinfo", "30 20 0:26 /../../.. "+cg+" ro - cgroup2 cgroup2 rw\n")
	p, err := New(Config{ProcRoot: procRoot, CgroupRoot: cg}).Process(200)
	if err != nil || len(p.Cgroups) != 0 {
		t.Errorf("unresolvable: cgroups %q, %v; want none", p.Cgroups, err)
	}
}

func TestBelow(t *testing.T) {
	for _, tt := range []struct {
		root, rel, want string
		ok              bool
	}{
		{"/a/b", "/../x", "/a/x", true},
		{"/a/b", "/..", "/a", true},
		{"/a/b", "/../../..", "", false},
		{"/", "/../x", "", false},
		{"/a", "/../..//./x", "", false},
		{"/a/b/c", "/../../x/y", "/a/x/y", true},
	} {
		if got, ok := below(tt.root, tt.rel); got != tt.want || ok != tt.ok {
			t.Errorf("below(%q, %q) = %q, %v; want %q, %v", tt.root, tt.rel, got, ok, tt.want, tt.ok)
		}
	}
}
