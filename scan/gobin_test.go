package scan

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGoV2BuildInfo builds a program with the aws-sdk-go-v2 this module
// pins (from the module cache, so without the network when the module
// builds) and checks that the scan reads the SDK's version from the binary's
// build information.
func TestGoV2BuildInfo(t *testing.T) {
	goMod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goSum, err := os.ReadFile(filepath.Join("..", "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := func(module string) string {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(goMod)
		if m == nil {
			t.Fatalf("go.mod does not require %s", module)
		}
		return string(m[1])
	}
	root, imds := pinned("github.com/aws/aws-sdk-go-v2"), pinned("github.com/aws/aws-sdk-go-v2/feature/ec2/imds")
	smithy := pinned("github.com/aws/smithy-go")
	bin := goProgram(t, "sdkv2-"+root, "module example.com/agent\n\ngo 1.21\n\nrequire (\n"+
		"\tgithub.com/aws/aws-sdk-go-v2 "+root+"\n\tgithub.com/aws/aws-sdk-go-v2/feature/ec2/imds "+imds+"\n"+
		"\tgithub.com/aws/smithy-go "+smithy+"\n)\n", string(goSum), `package main

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

func main() { fmt.Println(imds.New(imds.Options{}) != nil) }
`)
	dir := t.TempDir()
	copyFile(t, bin, filepath.Join(dir, "usr/local/bin/agent"))
	rep, err := Run(context.Background(), Options{Root: dir, Roots: []string{"/usr/local/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("want one finding, got:\n%s", describe(rep))
	}
	f := rep.Findings[0]
	if f.Kind != KindCurrentSDK || f.SDK != "aws-sdk-go-v2" || f.Version != root || f.MinVersion != "v0.19.0" ||
		f.Path != "/usr/local/bin/agent" || !strings.Contains(f.Evidence, "example.com/agent") ||
		!strings.Contains(f.Fix, "EnableFallback: aws.FalseTernary") {
		t.Errorf("finding %+v", f)
	}
	if rep.BytesRead > 1<<20 {
		t.Errorf("read %d bytes of one executable, want well under 1 MiB", rep.BytesRead)
	}
}
