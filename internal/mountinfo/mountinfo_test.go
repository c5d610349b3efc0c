package mountinfo

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	const table = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
24 22 0:22 / /mnt/my\040share rw shared:5 master:2 - nfs4 server:/export rw
600 500 0:38 /kubepods/pod1 /sys/fs/cgroup ro,relatime master:9 - cgroup2 cgroup2 rw
28 22 0:26 / /broken
x

- cgroup2
1 2 3 4 - cgroup2
1 2 3 4 5 6 -
27 22 0:25 / /home/u/gvfs rw - fuse.gvfsd-fuse gvfsd rw
`
	got, err := Parse(strings.NewReader(table))
	require.NoError(t, err)
	assert.Equal(t, []Mount{
		{Root: "/", Point: "/", FSType: "ext4"},
		{Root: "/", Point: "/mnt/my share", FSType: "nfs4"},
		{Root: "/kubepods/pod1", Point: "/sys/fs/cgroup", FSType: "cgroup2"},
		{Root: "/", Point: "/home/u/gvfs", FSType: "fuse.gvfsd-fuse"},
	}, got)
}

func TestParseKeepsWhatItReadBeforeAnError(t *testing.T) {
	const root = "22 1 259:1 / / rw - ext4 /dev/root rw\n"
	want := []Mount{{Root: "/", Point: "/", FSType: "ext4"}}
	boom := errors.New("boom")
	got, err := Parse(io.MultiReader(strings.NewReader(root), iotest.ErrReader(boom)))
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, want, got)

	got, err = Parse(strings.NewReader(root + strings.Repeat("x", maxLine+1) + "\n"))
	require.Error(t, err, "a line over the limit")
	assert.Equal(t, want, got)
}

func TestCgroup2(t *testing.T) {
	const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const container = `600 500 0:38 /kubepods/pod1 /sys/fs/cgroup ro,relatime master:9 - cgroup2 cgroup2 rw
`
	const spaced = `41 31 0:38 / /mnt/my\040cgroups rw,relatime shared:5 - cgroup2 none rw
`
	for _, tt := range []struct {
		name, in, want string
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified"},
		{"subtree only", container, "/sys/fs/cgroup"},
		{"root wins over subtree", container + spaced, "/mnt/my cgroups"},
		{"first root wins", spaced + hybrid, "/mnt/my cgroups"},
		{"none", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", ""},
		{"garbage", "x\n\n- cgroup2\n1 2 3 4 - cgroup2\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := Parse(strings.NewReader(tt.in))
			require.NoError(t, err)
			got, ok := Cgroup2(mounts)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.want != "", ok)
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/nl\012`: "/nl\n", `/bs\134x`: `/bs\x`,
		`/bad\09`: `/bad\09`, `/end\04`: `/end\04`, `/big\777`: `/big\777`, `\`: `\`, ``: ``,
	} {
		assert.Equal(t, want, Unescape(in), "Unescape(%q)", in)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add(`24 22 0:22 / /mnt/my\040share rw shared:5 - nfs4 server:/export rw`)
	f.Fuzz(func(t *testing.T, s string) {
		mounts, _ := Parse(strings.NewReader(s))
		for _, m := range mounts {
			if m.FSType == "" || len(m.Point) > len(s) || len(m.Root) > len(s) {
				t.Fatalf("mount %+v from %q", m, s)
			}
		}
		if p, ok := Cgroup2(mounts); ok != (p != "") {
			t.Fatalf("Cgroup2 = %q, %v", p, ok)
		}
	})
}
