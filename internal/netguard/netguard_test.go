package netguard_test

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

func TestMain(m *testing.M) { netguard.TestMain(m) }

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
	if os.Getenv("IMDSV2_PRIVATE_NETNS") != "1" {
		t.Fatal("marker missing")
	}
}
