package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/sdk/sdktest"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// npmBefore pins what the npm registry resolves: every dependency range is resolved as it stood
// at this time, so an install made today and one made next year get the same packages.
const npmBefore = "2026-12-01T00:00:00Z"

// npmInstallLimit bounds one install (aws-sdk v2 is tens of MB unpacked).
const npmInstallLimit = 5 * time.Minute

// testCache is the directory the tests install clients into: IMDSV2_TEST_CACHE, else the user's
// cache directory. Never the repository.
func testCache(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("IMDSV2_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache directory (set IMDSV2_TEST_CACHE): %v", err)
	}
	return filepath.Join(d, "imdsv2-test")
}

// npmPackage is an npm package installed for a test at an exact version.
type npmPackage struct {
	spec string // name@version
	dir  string // the install prefix: NODE_PATH is dir/node_modules
}

// nodeModules is the NODE_PATH for the package.
func (p npmPackage) nodeModules() string { return filepath.Join(p.dir, "node_modules") }

// version returns the installed version of a package in the tree (the package itself or a
// dependency such as @smithy/credential-provider-imds).
func (p npmPackage) version(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.nodeModules(), name, "package.json"))
	if err != nil {
		t.Fatalf("%s: %v", p.spec, err)
	}
	var pj struct{ Version string }
	if err := json.Unmarshal(b, &pj); err != nil {
		t.Fatalf("%s: %s/package.json: %v", p.spec, name, err)
	}
	return pj.Version
}

// npmInstall installs spec ("aws-sdk@2.600.0") from the npm registry into the test cache, once:
// later runs use what is there. An unreachable registry skips the test with the reason, and
// fails it in CI. npm runs in the network namespace the test binary was started from (the test
// itself runs in a private one, netguard): it talks to the registry only.
func npmInstall(t *testing.T, spec string) npmPackage {
	t.Helper()
	p := npmPackage{spec: spec, dir: filepath.Join(testCache(t), "npm", strings.NewReplacer("/", "+", "@", "_").Replace(spec))}
	done := filepath.Join(p.dir, ".installed")
	if _, err := os.Stat(done); err == nil {
		return p
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		privtest.Unavailable(t, "npm is not installed (the machine's Node.js 20 comes with it): "+err.Error())
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmInstallLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", p.dir, "--no-save", "--no-audit", "--no-fund",
		"--ignore-scripts", "--loglevel=error", "--before", npmBefore, spec)
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(testCache(t), "npm-cache"), "npm_config_update_notifier=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = startOutsideNetguard(t, cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		privtest.Unavailable(t, "npm install "+spec+" from the npm registry failed: "+err.Error()+"\n"+out.String())
	}
	if err := os.WriteFile(done, []byte(spec+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("installed %s into %s", spec, p.dir)
	return p
}

// node returns the path of node, or skips (fails in CI) without it.
func nodePath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		privtest.Unavailable(t, "node is not installed (the machine has Node.js 20): "+err.Error())
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsClient is the path of the test's JavaScript client program.
func jsClient(t *testing.T) string {
	t.Helper()
	return filepath.Join(testdataDir(t), "jsclient", "imds.js")
}

// jsCase is one JavaScript SDK API run against the emulator.
type jsCase struct {
	pkg     string // npm spec installed
	client  string // product, as audit/sdk names it
	version string // of the SDK
	api     string // imds.js argument
	ns      testbed.NS
	// imdsPkg is the package in the tree that makes the IMDS calls, when not pkg itself: its
	// version goes into the capture's source.
	imdsPkg string
}

const (
	jsV2Old     = "2.574.0"  // before EC2MetadataCredentials fetched tokens
	jsV2First   = "2.575.0"  // imdsfacts.JavaScriptV2TokenAPI
	jsV2Token   = "2.600.0"  // its token path sends no User-Agent
	jsV2Current = "2.1693.0" // the last v2 release
	jsV3        = "3.1175.0" // @aws-sdk/credential-providers
)

func jsCases() []jsCase {
	var cs []jsCase
	for _, v := range []string{jsV2Old, jsV2First, jsV2Token, jsV2Current} {
		for _, api := range []string{"EC2MetadataCredentials", "MetadataService.request"} {
			cs = append(cs, jsCase{pkg: "aws-sdk@" + v, client: "aws-sdk-js-v2", version: v, api: api, ns: testbed.Instance})
		}
	}
	// Behind the bridge with hop limit 1 the token PUT gets no answer: what each falls back to.
	cs = append(cs, jsCase{pkg: "aws-sdk@" + jsV2Current, client: "aws-sdk-js-v2", version: jsV2Current,
		api: "EC2MetadataCredentials", ns: testbed.Container})
	for _, ns := range []testbed.NS{testbed.Instance, testbed.Container} {
		cs = append(cs, jsCase{pkg: "@aws-sdk/credential-providers@" + jsV3, client: "aws-sdk-js-v3", version: jsV3,
			api: "fromInstanceMetadata", ns: ns, imdsPkg: "@smithy/credential-provider-imds"})
	}
	return cs
}

// capture is the capture record of c, without its requests.
func (c jsCase) capture(t *testing.T, p npmPackage, node, script string) sdktest.Capture {
	source := "npm:" + c.pkg
	if c.imdsPkg != "" {
		source += " (" + c.imdsPkg + "@" + p.version(t, c.imdsPkg) + ")"
	}
	return sdktest.Capture{Client: c.client, Version: c.version, Source: source, API: c.api,
		Where: c.ns.String() + ", hop limit 1", Exe: node, Argv: relArgs([]string{"node", script, c.api}, filepath.Dir(script))}
}

// TestCaptureJavaScriptClients captures the AWS SDK for JavaScript v2 and v3 as installed from
// the npm registry, each API in the namespaces of jsCases.
func TestCaptureJavaScriptClients(t *testing.T) {
	makingCaptures(t)
	node, script := nodePath(t), jsClient(t)
	for _, c := range jsCases() {
		name := c.client + "-" + c.version + "-" + c.api + "-" + c.ns.String()
		t.Run(name, func(t *testing.T) {
			p := npmInstall(t, c.pkg)
			capture := c.capture(t, p, node, script)
			capture.Requests = captureCommand(t, imdstest.Config{HopLimit: 1, RoleName: "imdsv2-test-role"}, c.ns,
				[]string{"NODE_PATH=" + p.nodeModules()}, node, script, c.api)
			keepCapture(t, &capture)
		})
	}
	t.Run("node-http", func(t *testing.T) {
		// Node's http.get with no SDK: the shape a tokenless SDK request must not be taken for.
		version, source := debianVersion(t, "nodejs"), debianSource(t, "nodejs")
		capture := sdktest.Capture{Client: "node-http", Version: version, Source: source, API: "http.get",
			Where: "instance, hop limit 1", Exe: node, Argv: relArgs([]string{"node", script, "http.get"}, filepath.Dir(script))}
		capture.Requests = captureCommand(t, imdstest.Config{HopLimit: 1}, testbed.Instance, nil, node, script, "http.get")
		keepCapture(t, &capture)
	})
}

// TestJavaScriptClientsEndToEnd runs the AWS SDK for JavaScript, as installed from the npm
// registry, under the agent in the bed, and checks who the audit says sent each request and what
// it advises: by User-Agent where the SDK sends one, by header shape where it does not, per API.
func TestJavaScriptClientsEndToEnd(t *testing.T) {
	skipInVM(t)
	node, script := nodePath(t), jsClient(t)
	h := newHarness(t)
	h.srv.Update(func(c *imdstest.Config) { c.RoleName = "imdsv2-test-role" })
	cases := []struct {
		c jsCase
		// classes of the requests, in order
		classes []audit.Class
		product string // of every request ("" : not checked per request)
		process string // the process's identity in the hints
		advice  []string
		notSaid []string
	}{
		{c: jsCase{pkg: "aws-sdk@" + jsV2Current, api: "MetadataService.request", ns: testbed.Instance},
			classes: []audit.Class{audit.ClassIMDSv1}, product: "aws-sdk-js-v2", process: "aws-sdk-js-v2",
			advice:  []string{"AWS.MetadataService.request(path)", "upgrading does not help", "fetchMetadataToken"},
			notSaid: []string{"upgrade aws-sdk to"}},
		{c: jsCase{pkg: "aws-sdk@" + jsV2Old, api: "EC2MetadataCredentials", ns: testbed.Instance},
			classes: []audit.Class{audit.ClassIMDSv1, audit.ClassIMDSv1}, product: "aws-sdk-js-v2", process: "aws-sdk-js-v2",
			advice: []string{"upgrade aws-sdk to 2.575.0 or later", "EC2MetadataCredentials fetches one"}},
		{c: jsCase{pkg: "aws-sdk@" + jsV2Token, api: "EC2MetadataCredentials", ns: testbed.Instance},
			classes: []audit.Class{audit.ClassTokenPUT, audit.ClassIMDSv2, audit.ClassIMDSv2}, product: "aws-sdk-js"},
		{c: jsCase{pkg: "aws-sdk@" + jsV2Current, api: "EC2MetadataCredentials", ns: testbed.Container},
			classes: []audit.Class{audit.ClassTokenPUT, audit.ClassIMDSv1, audit.ClassIMDSv1}, process: "aws-sdk-js-v2",
			advice:  []string{"got no answer", "raise HttpPutResponseHopLimit to 2", "AWS_EC2_METADATA_V1_DISABLED=true"},
			notSaid: []string{"fetch an IMDSv2 token first", "MetadataService.request"}},
		{c: jsCase{pkg: "@aws-sdk/credential-providers@" + jsV3, api: "fromInstanceMetadata", ns: testbed.Instance},
			classes: []audit.Class{audit.ClassTokenPUT, audit.ClassIMDSv2, audit.ClassIMDSv2}, product: "aws-sdk-js-v3"},
		{c: jsCase{pkg: "@aws-sdk/credential-providers@" + jsV3, api: "fromInstanceMetadata", ns: testbed.Container},
			classes: []audit.Class{audit.ClassTokenPUT, audit.ClassIMDSv1, audit.ClassIMDSv1}, process: "aws-sdk-js-v3",
			advice:  []string{"got no answer", "raise HttpPutResponseHopLimit to 2", "AWS_EC2_METADATA_V1_DISABLED=true"},
			notSaid: []string{"fetch an IMDSv2 token first", "never asked"}},
	}
	for _, tc := range cases {
		t.Run(tc.c.pkg+"-"+tc.c.api+"-"+tc.c.ns.String(), func(t *testing.T) {
			p := npmInstall(t, tc.c.pkg)
			t.Setenv("NODE_PATH", p.nodeModules())
			// The package in the command line keeps each run a caller of its own (before the API:
			// an argument after a name ending in Credentials is redacted as a secret).
			label := strings.Trim(strings.NewReplacer("@", "-", "/", "-").Replace(tc.c.pkg), "-")
			cmd, out := h.run(t, tc.c.ns, true, node, script, label, tc.c.api)
			t.Logf("%s: %s", tc.c.api, strings.TrimSpace(out))
			rs := h.byPID(t, cmd.Process.Pid, len(tc.classes))
			if len(rs) != len(tc.classes) {
				t.Fatalf("%d requests, want %d:%s", len(rs), len(tc.classes), describe(rs))
			}
			for i, r := range rs {
				if r.Class != tc.classes[i] {
					t.Errorf("request %d is %s, want %s:%s", i, r.Class, tc.classes[i], describe(rs))
				}
				if r.SDK == nil || tc.product != "" && r.SDK.Product != tc.product {
					t.Errorf("request %d (%s) identified as %+v, want %s", i, r.Class, r.SDK, tc.product)
				}
				if r.SDK != nil && r.UserAgent == "" && r.SDK.Headers == "" {
					t.Errorf("request %d has no User-Agent and no header shape: %+v", i, r.SDK)
				}
			}
			if tc.process == "" {
				for _, hint := range h.auditor.Snapshot().ReadyHints.IMDSv1Callers {
					if strings.Contains(hint.Process.Cmdline, label) {
						t.Errorf("an IMDSv2 client listed as an IMDSv1 caller: %+v", hint)
					}
				}
				return
			}
			// The v3 fallback: its token PUT is reported unanswered when node closes it.
			hint := h.v1Hint(t, cmd.Process.Pid)
			if hint.SDK == nil || hint.SDK.Product != tc.process {
				t.Errorf("caller identified as %+v, want %s", hint.SDK, tc.process)
			}
			wantAdvice(t, hint, tc.advice...)
			for _, n := range tc.notSaid {
				if strings.Contains(hint.Advice, n) {
					t.Errorf("advice says %q: %s", n, hint.Advice)
				}
			}
			t.Logf("identity %s (%s), advice: %s", hint.SDK.Name, hint.SDK.Fingerprint, hint.Advice)
		})
	}
}
