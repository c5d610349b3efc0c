package netguard_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

func TestMain(m *testing.M) {
	if os.Getenv("NETGUARD_TEST_PRINT_ACTIVE") == "1" { // the child of TestMarkerIsCheckedAgainstTheNamespace
		fmt.Println(netguard.Active())
		os.Exit(0)
	}
	netguard.TestMain(m)
}

// TestNoRouteOutside proves the guard: inside it, the metadata address has no route, so nothing
// can reach whatever owns it on this machine's network; loopback still works.
func TestNoRouteOutside(t *testing.T) {
	privtest.Require(t)
	if !netguard.Active() {
		t.Fatal("running as root but not inside the private namespace")
	}
	_, err := net.DialTimeout("tcp", "169.254.169.254:80", 200*time.Millisecond)
	if err == nil {
		t.Fatal("169.254.169.254 is reachable from inside the guard")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("loopback unusable inside the guard: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback connect: %v", err)
	}
	c.Close()
}

// TestMarkerIsCheckedAgainstTheNamespace: the marker is inherited by every descendant, in any
// namespace; only the namespace it names counts.
func TestMarkerIsCheckedAgainstTheNamespace(t *testing.T) {
	privtest.Require(t)
	require.True(t, netguard.Active())
	mark := os.Getenv("IMDSV2_PRIVATE_NETNS")
	require.True(t, strings.HasPrefix(mark, "ns:"), "marker %q", mark)
	for _, other := range []string{"1", "ns:1", "ns:", "pid:" + strconv.Itoa(os.Getppid()), ""} {
		t.Setenv("IMDSV2_PRIVATE_NETNS", other)
		assert.False(t, netguard.Active(), "marker %q taken for this namespace", other)
	}
	t.Setenv("IMDSV2_PRIVATE_NETNS", mark)
	assert.True(t, netguard.Active())

	// A child that inherits the marker but lives in another namespace is not inside the guard;
	// one in this namespace is.
	for _, c := range []struct {
		flags uintptr
		want  string
	}{{syscall.CLONE_NEWNET, "false"}, {0, "true"}} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "NETGUARD_TEST_PRINT_ACTIVE=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: c.flags}
		out, err := cmd.Output()
		require.NoError(t, err)
		assert.Equal(t, c.want, strings.TrimSpace(string(out)), "Active() in a child, clone flags %#x", c.flags)
	}
}
