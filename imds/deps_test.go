package imds

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsNothing checks the promise of the package documentation: importing imds pulls in
// the standard library, golang.org/x/sync and this module's internal packages (which must in turn
// import only those), nothing else; the AWS SDK adapter lives in imds/awssdk. It asks the go
// command for the package's import graph (go test puts its own go first on PATH), test files not
// included.
func TestImportsNothing(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	var deps, bad []string
	for _, p := range strings.Fields(string(out)) {
		deps = append(deps, p)
		switch {
		case p == "github.com/imdsv2/imdsv2/imds",
			strings.HasPrefix(p, "github.com/imdsv2/imdsv2/internal/"),
			p == "golang.org/x/sync" || strings.HasPrefix(p, "golang.org/x/sync/"):
		default:
			bad = append(bad, p)
		}
	}
	require.Contains(t, deps, "github.com/imdsv2/imdsv2/imds", "go list did not list the package itself: %s", out)
	require.Empty(t, bad, "imds must import only the standard library and golang.org/x/sync; "+
		"adapters to other libraries (the AWS SDK, smithy) belong in a subpackage such as imds/awssdk")
}
