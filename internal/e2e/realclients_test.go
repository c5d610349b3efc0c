package e2e

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// Real clients nobody here wrote, from Debian (.ci/run installs them) and the Go module proxy
// (built by the test from testdata/goclients, modules of their own), run in the test bed with
// the agent attached: each test checks who the auditor says the caller is (product, version:
// the process's identity, not one request's) and the advice it gives, from what the client did
// on the wire. The container cases run behind the bed's bridge with hop limit 1, where token
// answers die on the way.

// The Debian programs by path: a pip or pyenv install earlier in PATH may shadow them.
const (
	debPython = "/usr/bin/python3"
	debAWS    = "/usr/bin/aws"
	debCurl   = "/usr/bin/curl"
)

// The Go SDK versions that testdata/goclients pins (their User-Agents carry them).
const (
	goV1Old = "1.25.37" // tokenless: before v1.25.38
	goV1    = "1.55.8"
	goV2    = "1.48.0"
)

// The Go proxy clients: testdata/goclients/<dir>, built with go.mod or the named modfile.
var goClients = []struct{ name, dir, modfile, module, version string }{
	{"gov1-old", "v1", "old.mod", "github.com/aws/aws-sdk-go", goV1Old},
	{"gov1", "v1", "", "github.com/aws/aws-sdk-go", goV1},
	{"gov2", "v2", "", "github.com/aws/aws-sdk-go-v2", goV2},
}

// goBuildLimit bounds the module download and the build of one client.
const goBuildLimit = 10 * time.Minute

func TestRealClients(t *testing.T) {
	// Identity and advice do not depend on the kernel; compiling the SDKs and starting the
	// Python clients under software emulation would take most of the VM's time.
	skipInVM(t)
	versions := map[string]string{}
	for _, pkg := range []string{"curl", "python3-botocore", "awscli", "cloud-init", "python3-requests"} {
		versions[pkg] = debianVersion(t, pkg)
	}
	h := newHarness(t)
	for _, c := range goClients {
		buildGoClient(t, h.bin, c.name, c.dir, c.modfile)
		wantModule(t, filepath.Join(h.bin, c.name), c.module, c.version)
	}
	h.srv.Update(func(c *imdstest.Config) { c.RoleName = "imdsv2-e2e-role" })
	env := clientEnv(t)
	// client runs argv with only env (no AWS_* variable of the test's own) in ns.
	client := func(t *testing.T, ns testbed.NS, wantOK bool, argv ...string) (int, string) {
		t.Helper()
		cmd, out := h.run(t, ns, wantOK, env[0], append(env[1:], argv...)...)
		return cmd.Process.Pid, out
	}
	py := func(name string) string { return filepath.Join(testdataDir(t), "pyclients", name) }
	botocore, awscli, cloudinit := versions["python3-botocore"], versions["awscli"], versions["cloud-init"]

	gov1Old, gov1, gov2 := filepath.Join(h.bin, "gov1-old"), filepath.Join(h.bin, "gov1"), filepath.Join(h.bin, "gov2")

	// Clients that never ask for a token: their IMDSv1 caller's identity and advice.
	for _, c := range []struct {
		name, product, version string
		argv                   []string
		advice                 []string
	}{
		{"curl", "curl", versions["curl"], []string{debCurl, "-sS", "-m", "60", base + "/latest/meta-data/local-hostname"},
			[]string{"a script reads metadata without a token", "X-aws-ec2-metadata-token"}},
		{"python3 urllib", "python-urllib", pythonVersion(t), []string{debPython, "-c",
			`import urllib.request as u; print(u.urlopen("` + base + `/latest/meta-data/placement/availability-zone", timeout=60).read())`},
			[]string{"plain HTTP client (Python urllib)", "PUT /latest/api/token"}},
		{"python3 requests", "python-requests", versions["python3-requests"], []string{debPython, "-c",
			`import requests; print(requests.get("` + base + `/latest/meta-data/placement/region", timeout=60).text)`},
			[]string{"plain HTTP client (Python requests)"}},
		// cloud-init uses a token only where it identified the platform as AWS; its GETs say
		// python-requests, its first one Cloud-Init/22.4.2: the process is cloud-init, and the fix
		// is cloud-init's, not an SDK.
		{"cloud-init crawl elsewhere, no token", "cloud-init", cloudinit, []string{debPython, py("cloudinit_crawl.py"), "unknown"},
			[]string{"did not identify this machine as AWS", "datasource"}},
		{"aws-sdk-go v1 old", "aws-sdk-go", goV1Old, []string{gov1Old, "metadata", "instance-type"},
			[]string{"upgrade AWS SDK for Go v1 from " + goV1Old + " to 1.47.2 or later"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pid, _ := client(t, testbed.Instance, true, c.argv...)
			v1 := h.v1Hint(t, pid)
			wantIdentity(t, v1.SDK, c.product, c.version)
			wantAdvice(t, v1, c.advice...)
			if c.product == "cloud-init" && strings.Contains(v1.Advice, "AWS SDK") {
				t.Errorf("advice for cloud-init names an AWS SDK: %s", v1.Advice)
			}
		})
	}

	// Clients that use IMDSv2: the identity of their token PUT, and no IMDSv1. n counts the PUT
	// and the IMDSv2 requests at least made; out is in what the client prints.
	for _, c := range []struct {
		name, product, version string
		argv                   []string
		n                      int
		out                    string
	}{
		{"botocore credentials", "botocore", botocore, []string{debPython, py("botocore_client.py"), "credentials", "instance"}, 3, "iam-role"},
		{"aws configure list", "aws-cli-v2", awscli, []string{debAWS, "configure", "list", "--output", "text"}, 3, "iam-role"},
		{"cloud-init crawl on AWS", "cloud-init", cloudinit, []string{debPython, py("cloudinit_crawl.py"), "aws"}, 5, "i-"},
		{"aws-sdk-go v1 credential chain", "aws-sdk-go", goV1, []string{gov1, "credentials"}, 3, "EC2RoleProvider"},
		{"aws-sdk-go-v2 imds", "aws-sdk-go-v2", goV2, []string{gov2, "metadata", "ami-id"}, 2, "ami-"},
		{"aws-sdk-go-v2 credential chain", "aws-sdk-go-v2", goV2, []string{gov2, "credentials"}, 3, "EC2RoleProvider"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pid, out := client(t, testbed.Instance, true, c.argv...)
			if !strings.Contains(out, c.out) {
				t.Errorf("%s printed %q, want %q in it", c.argv[0], out, c.out)
			}
			rs := h.tokenAndV2(t, pid, c.n)
			wantIdentity(t, rs[0].SDK, c.product, c.version)
			h.noV1(t, pid)
			// The process's identity, on every caller entry it has.
			for _, caller := range h.auditor.Snapshot().Callers {
				if caller.Process.PID == uint32(pid) {
					wantIdentity(t, caller.SDK, c.product, c.version)
				}
			}
		})
	}

	t.Run("a child of botocore is its own caller", func(t *testing.T) {
		url := base + "/latest/meta-data/mac"
		pid, _ := client(t, testbed.Instance, true, debPython, py("botocore_client.py"), "spawn-curl", url)
		var child audit.Hint
		h.waitFor(t, "the IMDSv1 hint of botocore's curl child", func(rs []audit.Record) ([]audit.Record, bool) {
			for _, hint := range h.auditor.Snapshot().ReadyHints.IMDSv1Callers {
				if hint.Process.PPID == uint32(pid) {
					child = hint
					return nil, true
				}
			}
			return nil, false
		})
		wantIdentity(t, child.SDK, "curl", versions["curl"])
		wantAdvice(t, child, "a script reads metadata without a token")
		if len(child.Process.Parents) == 0 || child.Process.Parents[0].PID != uint32(pid) ||
			!strings.Contains(child.Process.Parents[0].Cmdline, "botocore_client.py spawn-curl") {
			t.Errorf("curl's parents %+v, want botocore's process %d first", child.Process.Parents, pid)
		}
		h.tokenAndV2(t, pid, 3)
		h.noV1(t, pid)
	})

	t.Run("token PUT refused: botocore falls back", func(t *testing.T) {
		h.srv.InjectFault(imdstest.Fault{Method: "PUT", PathPrefix: "/latest/api/token", Kind: imdstest.FaultStatus, Status: 403})
		defer h.srv.ClearFaults()
		pid, _ := client(t, testbed.Instance, true, debPython, py("botocore_client.py"), "credentials", "refused")
		v1 := h.v1Hint(t, pid)
		wantIdentity(t, v1.SDK, "botocore", botocore)
		wantAdvice(t, v1, "its token requests were refused (403)", "after upgrading botocore to 1.32.4 or later")
		if strings.Contains(v1.Advice, "HopLimit") {
			t.Errorf("advice for a refused PUT blames the hop limit: %s", v1.Advice)
		}
		f := h.hintOf(t, "failed-PUT", pid, func(r audit.ReadyHints) []audit.Hint { return r.FailedTokenPUTs })
		wantAdvice(t, f, "refused the token PUT with 403")
	})

	// Behind the bridge with hop limit 1 the token PUT gets no answer: the advice raises the hop
	// limit and names the client's own switch, and whether its release has it. wantOK says the
	// client fell back to IMDSv1 (and so succeeded); those that did not make no IMDSv1 request.
	for _, c := range []struct {
		name, product, version string
		argv                   []string
		fellBack               bool
		advice                 []string
	}{
		{"container: botocore falls back", "botocore", botocore, []string{debPython, py("botocore_client.py"), "credentials", "container"},
			true, []string{"AWS_EC2_METADATA_V1_DISABLED", "after upgrading botocore to 1.32.4 or later (" + botocore + " ignores it)"}},
		{"container: aws CLI falls back", "aws-cli-v2", awscli, []string{debAWS, "configure", "list", "--output", "json"},
			true, []string{"AWS_EC2_METADATA_V1_DISABLED", "after upgrading AWS CLI v2 to 2.15.1 or later (" + awscli + " ignores it)"}},
		{"container: aws-sdk-go v1 falls back", "aws-sdk-go", goV1, []string{gov1, "metadata", "instance-id"},
			true, []string{"set AWS_EC2_METADATA_V1_DISABLED=true"}},
		{"container: aws-sdk-go-v2 falls back", "aws-sdk-go-v2", goV2, []string{gov2, "metadata", "hostname"},
			true, []string{"EnableFallback: aws.FalseTernary"}},
		{"container: aws-sdk-go-v2 without fallback fails", "aws-sdk-go-v2", goV2, []string{gov2, "metadata-nofallback", "hostname"},
			false, nil},
		{"container: cloud-init on AWS gives up", "cloud-init", cloudinit, []string{debPython, py("cloudinit_crawl.py"), "aws"},
			false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			pid, _ := client(t, testbed.Container, c.fellBack, c.argv...)
			if !c.fellBack {
				u := h.unansweredHint(t, pid, "did not fall back")
				wantIdentity(t, u.SDK, c.product, c.version)
				h.noV1(t, pid)
				return
			}
			v1 := h.v1Hint(t, pid)
			wantIdentity(t, v1.SDK, c.product, c.version)
			wantAdvice(t, v1, append([]string{"raise HttpPutResponseHopLimit to 2"}, c.advice...)...)
			if !strings.Contains(v1.SDK.DisableV1, "ignores it") && strings.Contains(v1.Advice, "upgrad") {
				t.Errorf("advice for a release that has the switch asks for an upgrade: %s", v1.Advice)
			}
			h.unansweredHint(t, pid, "falls back to IMDSv1")
		})
	}
}

// clientEnv is the command that runs a real client with an environment of its own (no AWS_*
// variable of the test's, an empty HOME and AWS configuration): argv follows it.
func clientEnv(t *testing.T) []string {
	home := t.TempDir()
	// botocore's and the CLI's IMDS time-out is 1 s by default: on a loaded machine a token answer
	// can take longer, and they would fall back to IMDSv1 in the instance too. (The Go SDKs retry.)
	return []string{"/usr/bin/env", "-i", "HOME=" + home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_METADATA_SERVICE_TIMEOUT=5"}
}

// debianVersion returns the upstream version of an installed Debian package ("1.29.27" of
// "1.29.27+repack-1"), or stops the test: skipped with the reason, failed in CI.
func debianVersion(t *testing.T, pkg string) string {
	t.Helper()
	v := dpkgVersion(t, pkg)
	if _, rest, ok := strings.Cut(v, ":"); ok { // epoch
		v = rest
	}
	if i := strings.IndexAny(v, "+-~"); i >= 0 {
		v = v[:i]
	}
	return v
}

// dpkgVersion returns the Debian version of an installed package ("1.29.27+repack-1"), or stops
// the test: skipped with the reason, failed in CI.
func dpkgVersion(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status} ${Version}", pkg).Output()
	version, installed := strings.CutPrefix(string(out), "install ok installed ")
	if err != nil || !installed {
		privtest.Unavailable(t, "Debian package "+pkg+" is not installed (.ci/run installs it): "+string(out)+errText(err))
	}
	return strings.TrimSpace(version)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// pythonVersion is Debian's python3 as Python-urllib names it ("3.11").
func pythonVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(debPython, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
	if err != nil {
		privtest.Unavailable(t, debPython+" does not run: "+err.Error())
	}
	return strings.TrimSpace(string(out))
}

func testdataDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// buildGoClient builds testdata/goclients/<dir> (with modfile, when not "") into bin/name. Its
// modules come from the Go module proxy (GOPROXY) into the module cache: `go mod download` runs
// in the network namespace the test binary was started from, since the test itself runs in a
// private one (netguard); an unreachable proxy skips the test with the reason, and fails it in
// CI. The build itself then runs offline. The project's go.mod gains nothing.
func buildGoClient(t *testing.T, bin, name, dir, modfile string) {
	t.Helper()
	if pre := os.Getenv("IMDSV2_E2E_PREBUILT"); pre != "" && fileExists(filepath.Join(pre, name)) {
		if err := os.Symlink(filepath.Join(pre, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
		return
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	var mf []string
	if modfile != "" {
		mf = []string{"-modfile=" + modfile}
	}
	ctx, cancel := context.WithTimeout(context.Background(), goBuildLimit)
	defer cancel()
	goCmd := func(args ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = filepath.Join(testdataDir(t), "goclients", dir)
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd, &out
	}
	dl, out := goCmd(append([]string{"mod", "download"}, mf...)...)
	err = startOutsideNetguard(t, dl)
	if err == nil {
		err = dl.Wait()
	}
	if err != nil {
		privtest.Unavailable(t, "go mod download of goclients/"+dir+" "+modfile+" from the Go module proxy failed: "+
			err.Error()+"\n"+out.String())
	}
	build, out := goCmd(append(append([]string{"build"}, mf...), "-o", filepath.Join(bin, name), ".")...)
	build.Env = append(build.Env, "GOPROXY=off")
	if err := build.Run(); err != nil {
		t.Fatalf("go build goclients/%s %s: %v\n%s", dir, modfile, err, out)
	}
}

// wantModule checks that the binary at path was built with module at version.
func wantModule(t *testing.T, path, module, version string) {
	t.Helper()
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Deps {
		if d.Path == module {
			if d.Version != "v"+version {
				t.Fatalf("%s was built with %s %s, want v%s", path, module, d.Version, version)
			}
			return
		}
	}
	t.Fatalf("%s was built without %s", path, module)
}

// startOutsideNetguard starts cmd in the network namespace the test binary was started from:
// netguard's parent process is still there. For a program that talks to a registry only.
func startOutsideNetguard(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	if !netguard.Active() {
		return cmd.Start()
	}
	ns, err := netns.GetFromPid(os.Getppid())
	if err != nil {
		t.Fatalf("network namespace of the test's parent: %v", err)
	}
	defer ns.Close()
	return testbed.InNamespace(ns, cmd.Start)
}

// v1Hint waits for the IMDSv1 hint of the process pid.
func (h *harness) v1Hint(t *testing.T, pid int) audit.Hint {
	t.Helper()
	found := h.hintOf(t, "IMDSv1", pid, func(r audit.ReadyHints) []audit.Hint { return r.IMDSv1Callers })
	t.Logf("pid %d: IMDSv1 caller %+v: %s", pid, found.SDK, found.Advice)
	return found
}

// unansweredHint waits for the unanswered-token-PUT hint of the process pid and checks that its
// advice raises the hop limit and says fellBack.
func (h *harness) unansweredHint(t *testing.T, pid int, fellBack string) audit.Hint {
	t.Helper()
	found := h.hintOf(t, "unanswered-PUT", pid, func(r audit.ReadyHints) []audit.Hint { return r.UnansweredTokenPUTs })
	wantAdvice(t, found, "HttpPutResponseHopLimit", "set it to 2", fellBack)
	return found
}

// hintOf waits for the hint of the process pid in the list of the auditor's ready hints.
func (h *harness) hintOf(t *testing.T, what string, pid int, list func(audit.ReadyHints) []audit.Hint) audit.Hint {
	t.Helper()
	var found audit.Hint
	h.waitFor(t, "the "+what+" hint of pid "+strconv.Itoa(pid), func([]audit.Record) ([]audit.Record, bool) {
		for _, hint := range list(h.auditor.Snapshot().ReadyHints) {
			if hint.Process.PID == uint32(pid) {
				found = hint
				return nil, true
			}
		}
		return h.pidRecords(pid), false
	})
	return found
}

func (h *harness) pidRecords(pid int) []audit.Record {
	return filter(h.snapshot(), func(r audit.Record) bool { return r.Type == audit.RecordRequest && r.Process.PID == uint32(pid) })
}

// tokenAndV2 waits for a token PUT answered 200 and at least n-1 IMDSv2 requests of pid, and
// returns its requests, the PUT first.
func (h *harness) tokenAndV2(t *testing.T, pid, n int) []audit.Record {
	t.Helper()
	return h.waitFor(t, "a token PUT and IMDSv2 requests of pid "+strconv.Itoa(pid), func([]audit.Record) ([]audit.Record, bool) {
		rs := h.pidRecords(pid)
		v2 := 0
		var put []audit.Record
		for _, r := range rs {
			switch {
			case r.Class == audit.ClassTokenPUT && r.Status == 200 && len(put) == 0:
				put = append(put, r)
			case r.Class == audit.ClassIMDSv2:
				v2++
			}
		}
		if len(put) == 0 || v2 < n-1 {
			return rs, false
		}
		return append(put, filter(rs, func(r audit.Record) bool { return r.Class == audit.ClassIMDSv2 })...), true
	})
}

// noV1 checks that the process pid made no IMDSv1 request (after its records are in).
func (h *harness) noV1(t *testing.T, pid int) {
	t.Helper()
	for _, r := range h.pidRecords(pid) {
		if r.Class == audit.ClassIMDSv1 {
			t.Errorf("pid %d sent IMDSv1:%s", pid, describe([]audit.Record{r}))
		}
	}
}

// wantIdentity checks the product and version of an identity.
func wantIdentity(t *testing.T, got *sdk.Info, product, version string) {
	t.Helper()
	if got == nil || got.Product != product || got.Version != version {
		t.Errorf("identity %+v, want %s %s", got, product, version)
	}
}

// wantAdvice checks that a hint's advice says each of parts.
func wantAdvice(t *testing.T, h audit.Hint, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(h.Advice, p) {
			t.Errorf("advice for %s (pid %d) lacks %q: %s", h.Process.Exe, h.Process.PID, p, h.Advice)
		}
	}
}
