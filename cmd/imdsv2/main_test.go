package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/netguard"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// As root the tests run in a private network namespace with only loopback.
func TestMain(m *testing.M) { netguard.TestMain(m) }

// cli runs the command line in-process and returns its exit status and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// buildBinary builds the command into bin, for tests that run it as a process. When
// IMDSV2_E2E_PREBUILT names a directory holding imdsv2 already built from the same tree, bin is a
// link to that one: make test-vm builds it on the host, since compiling under software emulation
// takes minutes and a VM of another architecture has no Go toolchain.
func buildBinary(t *testing.T, bin string) {
	t.Helper()
	if dir := os.Getenv("IMDSV2_E2E_PREBUILT"); dir != "" {
		src := filepath.Join(dir, "imdsv2")
		_, err := os.Stat(src)
		require.NoError(t, err, "IMDSV2_E2E_PREBUILT=%s", dir)
		require.NoError(t, os.Symlink(src, bin))
		return
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
}

// noEnv keeps the caller's AWS_EC2_METADATA_* variables from changing the tests.
func noEnv(t *testing.T) {
	for _, v := range []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
		"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED"} {
		t.Setenv(v, "")
	}
}

func TestUsage(t *testing.T) {
	code, _, errOut := cli(t)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "Commands:")
	code, out, _ := cli(t, "help")
	assert.Equal(t, exitOK, code)
	for _, c := range commands() {
		assert.Contains(t, out, c.name)
	}
	code, _, errOut = cli(t, "frobnicate")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
	code, out, errOut = cli(t, "get", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "Examples:", "the help goes to stdout")
	assert.Empty(t, errOut)
}

func TestGet(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0cli0000000000001", HTTPTokens: imdstest.TokensRequired})
	t.Cleanup(srv.Close)
	ep := "--endpoint=" + srv.URL()
	slow := "--timeout=1m" // a loaded test machine: these tests check answers, not speed

	code, out, errOut := cli(t, "get", ep, slow, "meta-data/instance-id")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "i-0cli0000000000001\n", out)

	code, out, _ = cli(t, "get", ep, slow, "/latest/meta-data/placement/")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "region\n")

	code, out, _ = cli(t, "get", ep, slow, "--output", "json", "meta-data/instance-id")
	require.Equal(t, exitOK, code)
	var res getResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.NotNil(t, res.Value)
	assert.Equal(t, "i-0cli0000000000001", *res.Value)
	assert.Equal(t, "/latest/meta-data/instance-id", res.Path)

	code, out, _ = cli(t, "get", ep, slow, "--output", "json", "meta-data/no-such-thing")
	assert.Equal(t, exitFail, code)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.NotNil(t, res.Error)
	assert.Equal(t, "not-found", res.Error.Kind)

	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			assert.True(t, r.TokenSent, "tokenless GET %s", r.Path)
		}
	}
}

func TestGetHopLimitAndUsageErrors(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	srv.InjectFault(imdstest.Fault{Method: http.MethodPut, Kind: imdstest.FaultHang})
	code, _, errOut := cli(t, "get", "--endpoint="+srv.URL(), "--timeout=1m", "meta-data/instance-id")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "HttpPutResponseHopLimit")
	for _, r := range srv.Requests() {
		assert.NotEqual(t, http.MethodGet, r.Method, "no tokenless GET may follow a failed token request")
	}

	code, _, errOut = cli(t, "get", "--endpoint-mode", "ipv5", "meta-data/instance-id")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--endpoint-mode")
	code, _, _ = cli(t, "get", "--output", "yaml", "x")
	assert.Equal(t, exitUsage, code)
	code, _, _ = cli(t, "get")
	assert.Equal(t, exitUsage, code)
}

func TestGetAllowV1Reports(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0v1000000000000001"})
	t.Cleanup(srv.Close)
	srv.InjectFault(imdstest.Fault{Method: http.MethodPut, Kind: imdstest.FaultStatus, Status: http.StatusForbidden})
	code, out, errOut := cli(t, "get", "--allow-v1", "--endpoint="+srv.URL(), "--timeout=1m", "meta-data/instance-id")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "i-0v1000000000000001\n", out)
	assert.Contains(t, errOut, "fell back to IMDSv1")
}

func TestTagsFlag(t *testing.T) {
	var f tagsFlag
	require.NoError(t, f.Set("Name=web,Env=prod"))
	require.NoError(t, f.Set("Env=dev,Empty="))
	assert.Equal(t, "Empty=,Env=dev,Name=web", f.String())
	for _, bad := range []string{"novalue", "=x", "a/b=c"} {
		var g tagsFlag
		assert.Error(t, g.Set(bad), bad)
	}
}

func TestMockFlags(t *testing.T) {
	for _, args := range [][]string{{"--tokens", "sometimes"}, {"--hop-limit", "0"}, {"--hop-limit", "65"}, {"--user-data", "/nonexistent/file"}} {
		code, _, _ := cli(t, append([]string{"mock"}, args...)...)
		assert.Equal(t, exitUsage, code, "%v", args)
	}
}

func TestMockServes(t *testing.T) {
	noEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _, errb, done := startMock(t, ctx, "--tokens", "required", "--tags", "Name=web", "--log")
	code, got, errOut := cli(t, "get", "--endpoint="+url, "--timeout=1m", "meta-data/tags/instance/Name")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "web\n", got)
	require.Eventually(t, func() bool { return strings.Contains(errb.String(), "/latest/meta-data/tags/instance/Name") }, 10e9, 10e6)
	assert.NotContains(t, errb.String(), "AQAE", "no token in the log")
	cancel()
	assert.Equal(t, exitOK, <-done)
}

func TestVersion(t *testing.T) {
	code, out, _ := cli(t, "version")
	assert.Equal(t, exitOK, code)
	assert.True(t, strings.HasPrefix(out, "imdsv2 "), out)
	code, out, _ = cli(t, "version", "--output", "json")
	assert.Equal(t, exitOK, code)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.NotEmpty(t, v.GoVersion)
}

// TestDemo builds the real binary and runs `imdsv2 demo`, the README's main command.
func TestDemo(t *testing.T) {
	privtest.Require(t)
	bin := filepath.Join(t.TempDir(), "imdsv2")
	buildBinary(t, bin)
	out, err := exec.Command(bin, "demo").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{
		"i-0demo1234567890ab", "eu-west-1", "HttpPutResponseHopLimit is probably 1",
		"NOT READY (cgroup ", "[imdsv1-caller]", "[token-unanswered]", "--http-tokens required --http-put-response-hop-limit 2",
		"-> NO ANSWER (the token answer was lost on the way: hop limit)",
		"imdsv2 get (container)   before: FAILS  after: works",
		"Verdict before enforcing: NOT READY", "are gone",
	} {
		assert.Contains(t, string(out), want)
	}
	// Each IMDSv1 caller is named in the report and refused with 401 after enforcement.
	for _, name := range []string{"curl", "python3"} {
		if _, err := lookPath(name); err != nil {
			continue
		}
		assert.Regexp(t, name+` \(pid \d+, user \w+\)\s+\[imdsv1-caller\]`, string(out))
		assert.Regexp(t, name+` \(pid \d+, host\): GET \S+ without a token \(IMDSv1\) -> 401 Unauthorized`, string(out))
		assert.Regexp(t, name+` \(\w+ ?\w*\)\s+before: works  after: FAILS`, string(out))
	}
	if mnt, err := cgroup.Mountpoint(); err == nil {
		left, _ := filepath.Glob(filepath.Join(mnt, "imdsv2demo-*"))
		assert.Empty(t, left, "demo cgroups left behind")
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "imdsv2demo-"), "namespace %s left behind", e.Name())
	}
}
