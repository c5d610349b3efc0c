package main

import (
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the golden files in testdata (doctor and ready JSON, help texts)")

// goldenJSON compares got, normalised by replacing each regexp match with its replacement,
// with testdata/name.
func goldenJSON(t *testing.T, name, got string, replace map[*regexp.Regexp]string) {
	t.Helper()
	for re, with := range replace {
		got = re.ReplaceAllString(got, with)
	}
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/imdsv2 -update-golden to create it")
	assert.JSONEq(t, string(want), got, "%s differs (go test -update-golden rewrites it; review the diff)", path)
}

func doctorJSON(t *testing.T, args ...string) (int, doctorReport, string) {
	t.Helper()
	code, out, errOut := cli(t, append([]string{"doctor", "--timeout=20s", "--output=json"}, args...)...)
	var rep doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "stdout %q stderr %q", out, errOut)
	return code, rep, out
}

var loopbackURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)

func TestDoctorHealthy(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0d0c000000000001", Region: "eu-west-1", HTTPTokens: imdstest.TokensRequired})
	t.Cleanup(srv.Close)
	code, rep, out := doctorJSON(t, "--endpoint="+srv.URL())
	require.Equal(t, exitOK, code, out)
	assert.True(t, rep.Healthy)
	require.NotNil(t, rep.Identity)
	assert.Equal(t, "i-0d0c000000000001", rep.Identity.InstanceID)
	goldenJSON(t, "doctor-healthy.golden.json", out, map[*regexp.Regexp]string{loopbackURL: "http://EMULATOR"})
	for _, r := range srv.Requests() {
		assert.True(t, r.Method == http.MethodPut || r.TokenSent, "doctor sent IMDSv1 without --probe-v1: %s %s", r.Method, r.Path)
	}

	code, text, _ := cli(t, "doctor", "--timeout=20s", "--endpoint="+srv.URL())
	assert.Equal(t, exitOK, code)
	assert.Contains(t, text, "HEALTHY")
	assert.Contains(t, text, "i-0d0c000000000001")
	assert.Contains(t, text, "not probed")

	// --probe-v1 sends exactly one tokenless GET and reads the answer.
	srv.ResetRequests()
	code, rep, _ = doctorJSON(t, "--endpoint="+srv.URL(), "--probe-v1")
	assert.Equal(t, exitOK, code)
	require.NotNil(t, rep.IMDSv1)
	assert.False(t, rep.IMDSv1.Accepted)
	assert.Equal(t, http.StatusUnauthorized, rep.IMDSv1.StatusCode)
	v1 := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && !r.TokenSent {
			v1++
		}
	}
	assert.Equal(t, 1, v1)
	srv.Update(func(c *imdstest.Config) { c.HTTPTokens = imdstest.TokensOptional })
	_, rep, _ = doctorJSON(t, "--endpoint="+srv.URL(), "--probe-v1")
	require.NotNil(t, rep.IMDSv1)
	assert.True(t, rep.IMDSv1.Accepted)
	assert.Contains(t, rep.IMDSv1.Meaning, "MetadataNoToken")
}

func TestDoctorProblems(t *testing.T) {
	noEnv(t)
	disabled := imdstest.NewServer(imdstest.Config{EndpointDisabled: true})
	t.Cleanup(disabled.Close)
	code, rep, out := doctorJSON(t, "--endpoint="+disabled.URL())
	assert.Equal(t, exitFail, code)
	assert.Equal(t, "unhealthy", rep.Status)
	require.Len(t, rep.Endpoints, 1)
	assert.Equal(t, "disabled", rep.Endpoints[0].Status)
	require.NotEmpty(t, rep.Problems)
	assert.Contains(t, rep.Problems[0], "--http-endpoint enabled")
	goldenJSON(t, "doctor-disabled.golden.json", out, map[*regexp.Regexp]string{loopbackURL: "http://EMULATOR"})

	hang := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(hang.Close)
	hang.InjectFault(imdstest.Fault{Method: http.MethodPut, Kind: imdstest.FaultHang})
	code, rep, _ = doctorJSON(t, "--endpoint="+hang.URL())
	assert.Equal(t, exitFail, code)
	require.Len(t, rep.Endpoints, 1)
	assert.Equal(t, "hop-limit", rep.Endpoints[0].Status)
	require.NotEmpty(t, rep.Problems)
	assert.Contains(t, rep.Problems[0], "--http-put-response-hop-limit 2")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	ln.Close()
	code, rep, _ = doctorJSON(t, "--endpoint="+closed, "--probe-v1")
	assert.Equal(t, exitUsage, code)
	assert.Equal(t, "unreachable", rep.Status)
	assert.Nil(t, rep.IMDSv1, "no probe when nothing answers")

	for _, args := range [][]string{{"extra"}, {"--output", "yaml"}, {"--timeout", "0s"}} {
		code, _, _ := cli(t, append([]string{"doctor"}, args...)...)
		assert.Equal(t, exitUsage, code, "%v", args)
	}
	code, out, _ = cli(t, "doctor", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "MetadataNoToken")
}
