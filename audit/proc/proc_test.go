package proc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	dockerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	kubeID   = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func testTable() *Table {
	return New(Config{ProcRoot: "testdata/proc", Root: "testdata/root"})
}

func TestProcess(t *testing.T) {
	tab := testTable()
	p, err := tab.Process(100)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{PID: 100, PPID: 95, StartTime: 700, Started: time.Unix(1700000007, 0), Comm: "curl",
		Exe: "/usr/bin/curl", Cmdline: []string{"curl", "-s", "http://169.254.169.254/latest/meta-data/"},
		UID: 1000, GID: 1000, Cgroups: []string{"/system.slice/docker-" + dockerID + ".scope"}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %+v\nwant %+v", p, want)
	}
	if _, err := tab.Process(4242); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("missing process: %v", err)
	}
}

func TestHostileComm(t *testing.T) {
	p, err := testTable().Process(500)
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != ") evil (x" || p.PPID != 400 || p.Exe != "/tmp/evil (deleted)" || len(p.Cmdline) != 2 {
		t.Fatalf("%+v", p)
	}
}

func TestUserName(t *testing.T) {
	tab := testTable()
	for uid, want := range map[uint32]string{0: "root", 1000: "alice", 1001: "mallory"} {
		if got, err := tab.UserName(uid); err != nil || got != want {
			t.Errorf("UserName(%d) = %q, %v", uid, got, err)
		}
	}
	if _, err := tab.UserName(5); err == nil {
		t.Error("unknown uid: no error")
	}
	if _, err := New(Config{ProcRoot: "testdata/proc", Root: t.TempDir()}).UserName(0); err == nil {
		t.Error("no passwd file: no error")
	}
}

func TestParseCgroupFileHybrid(t *testing.T) {
	got := ParseCgroupFile([]byte("12:memory:/docker/a\n11:cpu,cpuacct:/docker/a\n1:name=systemd:/docker/b\n0::/\n\ngarbage\n3:x:/p:with:colons\n"))
	want := []string{"/", "/docker/b", "/docker/a", "/p:with:colons"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestParseCgroupPath(t *testing.T) {
	tests := []struct {
		path string
		want Container
	}{
		{"/system.slice/docker-" + dockerID + ".scope", Container{ID: dockerID, Runtime: "docker", Unit: "docker-" + dockerID + ".scope"}},
		{"/docker/" + dockerID, Container{ID: dockerID, Runtime: "docker"}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e4c2a_6d1f_4f0e_9a43_0c1d2e3f4a5b.slice/cri-containerd-" + kubeID + ".scope",
			Container{ID: kubeID, Runtime: "containerd", PodUID: "1b4e4c2a-6d1f-4f0e-9a43-0c1d2e3f4a5b", Unit: "cri-containerd-" + kubeID + ".scope"}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b4e4c2a_6d1f_4f0e_9a43_0c1d2e3f4a5b.slice/crio-" + kubeID + ".scope",
			Container{ID: kubeID, Runtime: "cri-o", PodUID: "1b4e4c2a-6d1f-4f0e-9a43-0c1d2e3f4a5b", Unit: "crio-" + kubeID + ".scope"}},
		{"/kubepods/besteffort/pod0f9d5c1e-2b3a-4c5d-8e7f-a1b2c3d4e5f6/" + kubeID, Container{ID: kubeID, Runtime: "kubernetes", PodUID: "0f9d5c1e-2b3a-4c5d-8e7f-a1b2c3d4e5f6"}},
		{"/kubepods/pod0123456789abcdef0123456789abcdef", Container{Runtime: "kubernetes", PodUID: "0123456789abcdef0123456789abcdef"}},
		{"/machine.slice/libpod-" + dockerID + ".scope/container", Container{ID: dockerID, Runtime: "podman", Unit: "libpod-" + dockerID + ".scope"}},
		{"/machine.slice/libpod-conmon-" + dockerID + ".scope", Container{Unit: "libpod-conmon-" + dockerID + ".scope"}},
		{"/libpod_parent/libpod-" + dockerID, Container{ID: dockerID, Runtime: "podman"}},
		{"/ecs/5a0d5e4e2fd445d9a1e4b3ac6b1e0c3d/" + dockerID, Container{ID: dockerID, Runtime: "ecs"}},
		{"/system.slice/amazon-ssm-agent.service", Container{Unit: "amazon-ssm-agent.service"}},
		{"/user.slice/user-1000.slice/session-3.scope", Container{Unit: "session-3.scope"}},
		{"/", Container{}},
		{"", Container{}},
		{"/docker/" + dockerID[:63], Container{}},
		{"/" + strings.Repeat("a/", 5000), Container{}},
	}
	for _, tt := range tests {
		if got := ParseCgroupPath(tt.path); got != tt.want {
			t.Errorf("ParseCgroupPath(%.120q)\n got %+v\nwant %+v", tt.path, got, tt.want)
		}
	}
}

func TestContainerFromCgroupsHybrid(t *testing.T) {
	p, err := testTable().Process(300)
	if err != nil {
		t.Fatal(err)
	}
	got := ContainerFromCgroups(p.Cgroups)
	if got.ID != dockerID || got.Runtime != "docker" {
		t.Fatalf("%+v from %q", got, p.Cgroups)
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, in := range []string{"", "1 (x", "1 x) S", "1 (x) S 1 2", "1 (x) S a 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"} {
		if _, _, _, err := ParseStat([]byte(in)); err == nil {
			t.Errorf("ParseStat(%q): no error", in)
		}
	}
}

// TestMountinfo covers the glue; internal/mountinfo tests the parsing.
func TestMountinfo(t *testing.T) {
	if p, err := testTable().findCgroup2(); err != nil || p != "/sys/fs/cgroup/unified" {
		t.Fatalf("findCgroup2 = %q, %v", p, err)
	}
	if _, err := New(Config{ProcRoot: t.TempDir()}).findCgroup2(); err == nil {
		t.Fatal("no mountinfo: no error")
	}
}

func TestCgroupPathByID(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "system.slice", "docker-"+dockerID+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := inode(fi)
	if !ok {
		t.Skip("no inode numbers on this system")
	}
	tab := New(Config{ProcRoot: "testdata/proc", CgroupRoot: root})
	got, err := tab.CgroupPath(id)
	if err != nil || got != "/system.slice/docker-"+dockerID+".scope" {
		t.Fatalf("CgroupPath = %q, %v", got, err)
	}
	if _, err := tab.CgroupPath(1); err == nil {
		t.Fatal("unknown id: no error")
	}
	if _, err := New(Config{ProcRoot: t.TempDir()}).CgroupPath(1); err == nil {
		t.Fatal("no mountinfo: no error")
	}
}

func TestSocketOwner(t *testing.T) {
	tab := testTable()
	pid, err := tab.SocketOwner(netip.MustParseAddrPort("10.0.0.5:40001"), netip.MustParseAddrPort("169.254.169.254:80"))
	if err != nil || pid != 100 {
		t.Fatalf("v4: %d, %v", pid, err)
	}
	pid, err = tab.SocketOwner(netip.MustParseAddrPort("[fd00:ec2::5]:40002"), netip.MustParseAddrPort("[fd00:ec2::254]:80"))
	if err != nil || pid != 200 {
		t.Fatalf("v6: %d, %v", pid, err)
	}
	if _, err := tab.SocketOwner(netip.MustParseAddrPort("10.0.0.5:1"), netip.MustParseAddrPort("169.254.169.254:80")); !errors.Is(err, ErrNoSocket) {
		t.Fatalf("unknown socket: %v", err)
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{"0100007F:0050": "127.0.0.1:80", "FEA9FEA9:1F90": "169.254.169.254:8080"} {
		got, ok := parseProcAddr(in)
		if !ok || got.String() != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "zz:0050", "0100007F", "0100007F:zz", "01007F:0050"} {
		if _, ok := parseProcAddr(in); ok {
			t.Errorf("%q parsed", in)
		}
	}
}

// fakeNetProcess is a process of fakeNetProc: its network namespace, the lines of its
// namespace's net/tcp and the socket inodes it holds.
type fakeNetProcess struct {
	netns   string
	tcp     []string
	sockets []uint64
}

// fakeNetProc builds a /proc whose reader's net/tcp has the lines own, with procs in it.
func fakeNetProc(t *testing.T, own []string, procs map[int]fakeNetProcess) string {
	t.Helper()
	root := t.TempDir()
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "net", "tcp"), header+strings.Join(own, "\n")+"\n")
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		write(filepath.Join(dir, "net", "tcp"), header+strings.Join(p.tcp, "\n")+"\n")
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p.netns, filepath.Join(dir, "ns", "net")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, inode := range p.sockets {
			if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(dir, "fd", strconv.Itoa(i+3))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// tcpLine is a net/tcp line of an established IPv4 socket from local (hex address:port) to
// 169.254.169.254:80.
func tcpLine(sl int, local string, inode uint64) string {
	return fmt.Sprintf("%4d: %s FEA9FEA9:0050 01 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1", sl, local, inode)
}

// A connection opened before the agent, by a process in a network namespace of its own (a
// container on a bridge): its socket is not in the reader's /proc/net/tcp but in
// /proc/PID/net/tcp. It used to be attributed to nobody (pid 0).
func TestSocketOwnerInAnotherNetworkNamespace(t *testing.T) {
	// 10.200.0.2:41000 (0200C80A:A028) in namespace B, held by pid 800; pid 700 is in the
	// reader's namespace A, which does not have it.
	root := fakeNetProc(t, []string{tcpLine(0, "0500000A:9C41", 777)}, map[int]fakeNetProcess{
		700: {netns: "net:[4026531840]", tcp: []string{tcpLine(0, "0500000A:9C41", 777)}, sockets: []uint64{777}},
		800: {netns: "net:[4026532100]", tcp: []string{tcpLine(0, "0200C80A:A028", 888)}, sockets: []uint64{888}},
		801: {netns: "net:[4026532100]", tcp: []string{tcpLine(0, "0200C80A:A028", 888)}},
	})
	tab := New(Config{ProcRoot: root})
	pid, err := tab.SocketOwner(netip.MustParseAddrPort("10.200.0.2:41000"), netip.MustParseAddrPort("169.254.169.254:80"))
	if err != nil || pid != 800 {
		t.Fatalf("socket in another namespace: pid %d, %v", pid, err)
	}
	if pid, err := tab.SocketOwner(netip.MustParseAddrPort("10.0.0.5:40001"), netip.MustParseAddrPort("169.254.169.254:80")); err != nil || pid != 700 {
		t.Fatalf("socket in the reader's namespace: pid %d, %v", pid, err)
	}
}

// Two containers behind two bridges may have the same address: the same pair in two
// namespaces names no owner rather than the wrong one.
func TestSocketOwnerAmbiguousAcrossNamespaces(t *testing.T) {
	root := fakeNetProc(t, nil, map[int]fakeNetProcess{
		810: {netns: "net:[4026532110]", tcp: []string{tcpLine(0, "020011AC:A410", 901)}, sockets: []uint64{901}},
		820: {netns: "net:[4026532120]", tcp: []string{tcpLine(0, "020011AC:A410", 902)}, sockets: []uint64{902}},
	})
	pid, err := New(Config{ProcRoot: root}).SocketOwner(netip.MustParseAddrPort("172.17.0.2:42000"), netip.MustParseAddrPort("169.254.169.254:80"))
	if !errors.Is(err, ErrNoSocket) || !strings.Contains(fmt.Sprint(err), "more than one network namespace") {
		t.Fatalf("pid %d, %v", pid, err)
	}
}

// A busy host's net/tcp is longer than the 64 KiB read of other /proc files: a socket at its
// end is found.
func TestSocketOwnerInALongTable(t *testing.T) {
	var lines []string
	for i := range 2000 { // about 300 KiB
		lines = append(lines, tcpLine(i, fmt.Sprintf("0500000A:%04X", 10000+i), uint64(5000+i)))
	}
	lines = append(lines, tcpLine(2000, "0500000A:9C41", 777))
	root := fakeNetProc(t, lines, map[int]fakeNetProcess{
		700: {netns: "net:[4026531840]", sockets: []uint64{777}},
	})
	if b, _ := os.ReadFile(filepath.Join(root, "net", "tcp")); len(b) <= maxFile {
		t.Fatalf("table of %d bytes is not longer than %d", len(b), maxFile)
	}
	pid, err := New(Config{ProcRoot: root}).SocketOwner(netip.MustParseAddrPort("10.0.0.5:40001"), netip.MustParseAddrPort("169.254.169.254:80"))
	if err != nil || pid != 700 {
		t.Fatalf("pid %d, %v", pid, err)
	}
}
