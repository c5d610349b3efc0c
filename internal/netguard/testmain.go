package netguard

import (
	"fmt"
	"os"
	"testing"
)

// TestMain is the TestMain of every package whose tests use network namespaces: as root the whole
// test binary runs in a private network namespace with only loopback; otherwise the tests run
// as they are (and the privileged ones skip, or fail in CI, on their own).
func TestMain(m *testing.M) {
	if err := Reexec(); err != nil && !Active() {
		fmt.Fprintf(os.Stderr, "%v; privileged tests will skip (or fail with CI=true)\n", err)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
