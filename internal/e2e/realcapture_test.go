package e2e

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/imdsv2/imdsv2/audit/sdk/sdktest"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// TestCaptureRealClients captures the clients of TestRealClients (Debian's botocore, AWS CLI,
// requests and cloud-init; aws-sdk-go v1 and v2 from the Go module proxy) reading metadata in the
// instance. They send a User-Agent, so audit/sdk's TestFingerprintsAgainstCaptures checks with
// them that no fingerprint of a client without one takes their requests, and that a process is
// named by its most specific request (cloud-init over the python-requests of its GETs).
func TestCaptureRealClients(t *testing.T) {
	makingCaptures(t)
	bin := t.TempDir()
	for _, c := range goClients {
		buildGoClient(t, bin, c.name, c.dir, c.modfile)
		wantModule(t, filepath.Join(bin, c.name), c.module, c.version)
	}
	pyDir := filepath.Join(testdataDir(t), "pyclients")
	py := func(name string) string { return filepath.Join(pyDir, name) }
	gov1Old, gov1, gov2 := filepath.Join(bin, "gov1-old"), filepath.Join(bin, "gov1"), filepath.Join(bin, "gov2")
	debian := func(client, pkg, api string) sdktest.Capture {
		return sdktest.Capture{Client: client, Version: debianVersion(t, pkg), Source: debianSource(t, pkg), API: api}
	}
	goProxy := func(client, module, version, api string) sdktest.Capture {
		return sdktest.Capture{Client: client, Version: version, Source: "go:" + module + "@v" + version, API: api}
	}
	const goV1Module, goV2Module = "github.com/aws/aws-sdk-go", "github.com/aws/aws-sdk-go-v2"
	cases := []struct {
		c    sdktest.Capture
		argv []string
	}{
		{debian("botocore", "python3-botocore", "credentials"), []string{debPython, py("botocore_client.py"), "credentials"}},
		{debian("aws-cli-v2", "awscli", "configure-list"), []string{debAWS, "configure", "list", "--output", "text"}},
		{debian("python-requests", "python3-requests", "requests.get"), []string{debPython, "-c",
			`import requests; print(requests.get("` + base + `/latest/meta-data/placement/region", timeout=5).text)`}},
		// cloud-init's token PUT says Cloud-Init, its GETs python-requests.
		{debian("cloud-init", "cloud-init", "crawl-aws"), []string{debPython, py("cloudinit_crawl.py"), "aws"}},
		{debian("cloud-init", "cloud-init", "crawl-unknown"), []string{debPython, py("cloudinit_crawl.py"), "unknown"}},
		{goProxy("aws-sdk-go", goV1Module, goV1Old, "ec2metadata.GetMetadata"), []string{gov1Old, "metadata", "instance-type"}},
		{goProxy("aws-sdk-go", goV1Module, goV1, "credentials"), []string{gov1, "credentials"}},
		{goProxy("aws-sdk-go-v2", goV2Module, goV2, "imds.GetMetadata"), []string{gov2, "metadata", "ami-id"}},
		{goProxy("aws-sdk-go-v2", goV2Module, goV2, "credentials"), []string{gov2, "credentials"}},
	}
	env := clientEnv(t)
	for _, tc := range cases {
		t.Run(tc.c.FileName(), func(t *testing.T) {
			c := tc.c
			c.Where, c.Exe, c.Argv = "instance, hop limit 1", relArgs(tc.argv[:1], bin)[0], relArgs(tc.argv, bin, pyDir)
			c.Requests = captureCommand(t, imdstest.Config{HopLimit: 1, RoleName: "imdsv2-e2e-role"}, testbed.Instance, nil,
				slices.Concat(env, tc.argv)...)
			keepCapture(t, &c)
		})
	}
}
