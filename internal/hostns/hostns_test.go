//go:build linux

package hostns

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

// printEnv makes the test binary print Detect's facts as JSON and exit (the child of
// TestDetectInPrivateNamespaces).
const printEnv = "IMDSV2_HOSTNS_TEST_PRINT"

func TestMain(m *testing.M) {
	if os.Getenv(printEnv) == "1" {
		f, err := Detect("", PathsFromEnv(os.Getenv))
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		b, _ := json.Marshal(f)
		os.Stdout.Write(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSeesHostAndRequireHost(t *testing.T) {
	for _, tt := range []struct {
		f    Facts
		sees bool
		want []string // in the error
	}{
		{Facts{InitialCgroupNS: true, InitialPIDNS: true}, true, nil},
		{Facts{HostCgroup: true, HostProc: true}, true, nil},
		{Facts{InitialPIDNS: true, HostCgroup: true}, true, nil},
		{Facts{InitialPIDNS: true}, false, []string{"own cgroup namespace", "--host-cgroup /host/sys/fs/cgroup", "hostPID: true", "--cgroupns=host"}},
		{Facts{InitialCgroupNS: true}, false, []string{"own pid namespace", "--host-proc /host/proc"}},
		{Facts{HostProc: true}, false, []string{"own cgroup namespace"}},
		{Facts{}, false, []string{"own cgroup namespace", "and its own pid namespace", "privileged: true", "--cgroup"}},
	} {
		if got := tt.f.SeesHost(); got != tt.sees {
			t.Errorf("%+v.SeesHost() = %v, want %v", tt.f, got, tt.sees)
		}
		err := RequireHost(tt.f)
		if (err == nil) != tt.sees || (err != nil && !errors.Is(err, ErrNotHost)) {
			t.Errorf("RequireHost(%+v) = %v", tt.f, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("RequireHost(%+v) = %q, want it to contain %q", tt.f, err, w)
			}
		}
	}
	if (Facts{}).HostPaths() || !(Facts{HostProc: true}).HostPaths() || !(Facts{HostCgroup: true}).HostPaths() {
		t.Error("HostPaths does not follow HostProc and HostCgroup")
	}
}

func TestPathsFromEnvAndCheck(t *testing.T) {
	env := map[string]string{EnvProc: "/host/proc", EnvCgroup: "/host/sys/fs/cgroup"}
	if p := PathsFromEnv(func(k string) string { return env[k] }); p != (Paths{Proc: "/host/proc", Cgroup: "/host/sys/fs/cgroup"}) {
		t.Errorf("PathsFromEnv = %+v", p)
	}
	if err := (Paths{}).Check(); err != nil {
		t.Errorf("empty Paths: %v", err)
	}
	if err := (Paths{Proc: "/proc"}).Check(); err != nil {
		t.Errorf("/proc: %v", err)
	}
	dir := t.TempDir()
	err := (Paths{Proc: dir, Cgroup: dir}).Check()
	for _, w := range []string{"is not a proc file system", "is not a cgroup2 file system"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Check of a plain directory = %v, want %q", err, w)
		}
	}
	if err := (Paths{Cgroup: "/nonexistent/imdsv2"}).Check(); err == nil || !strings.Contains(err.Error(), "/nonexistent/imdsv2") {
		t.Errorf("missing cgroup dir: %v", err)
	}
}

// TestDetect: this process, and a child in new cgroup and pid namespaces.
func TestDetect(t *testing.T) {
	f, err := Detect("", Paths{Cgroup: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.HostCgroup || f.HostProc {
		t.Errorf("Detect = %+v, want HostCgroup only of the paths", f)
	}
	if _, err := Detect(t.TempDir(), Paths{}); err == nil || !strings.Contains(err.Error(), "self/ns/cgroup") {
		t.Errorf("Detect of a tree without namespaces = %v, want an error naming self/ns/cgroup", err)
	}

	privtest.Require(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), printEnv+"=1", EnvProc+"=/host/proc", EnvCgroup+"=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWCGROUP | syscall.CLONE_NEWPID}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child in new namespaces: %v", err)
	}
	var child Facts
	if err := json.Unmarshal(out, &child); err != nil {
		t.Fatalf("child printed %q: %v", out, err)
	}
	if child != (Facts{HostProc: true}) {
		t.Errorf("Detect in new cgroup and pid namespaces = %+v, want only HostProc", child)
	}
}
