package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// getJSON runs `imdsv2 get --output json` against url and decodes the answer.
func getJSON(t *testing.T, url, path string) (int, getResult) {
	t.Helper()
	code, out, errOut := cli(t, "get", "--endpoint="+url, "--timeout=1m", "--output=json", path)
	var res getResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), "stdout %q, stderr %q", out, errOut)
	assert.Empty(t, errOut, "with --output json everything goes to stdout")
	return code, res
}

func TestGetJSONList(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{TagsEnabled: true, Tags: map[string]string{"Name": "web", "Env": "prod"}})
	t.Cleanup(srv.Close)
	code, res := getJSON(t, srv.URL(), "meta-data/tags/instance/")
	require.Equal(t, exitOK, code)
	assert.Equal(t, getResult{Schema: getSchema, Path: "/latest/meta-data/tags/instance/", Items: []string{"Env", "Name"}}, res)
}

// TestGetErrorKinds checks the one-word error kinds scripts read from --output json.
func TestGetErrorKinds(t *testing.T) {
	noEnv(t)
	disabled := imdstest.NewServer(imdstest.Config{EndpointDisabled: true})
	t.Cleanup(disabled.Close)
	plain := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(plain.Close)
	hang := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(hang.Close)
	hang.InjectFault(imdstest.Fault{Method: http.MethodPut, Kind: imdstest.FaultHang})
	// A closed port on loopback: nothing answers, as off EC2 (exit 2, as doctor's).
	closed := plain.URL()[:strings.LastIndex(plain.URL(), ":")] + ":9"
	for _, tc := range []struct {
		url, path, kind string
		code            int
	}{
		{disabled.URL(), "meta-data/instance-id", "disabled", exitFail},
		{plain.URL(), "user-data", "not-found", exitFail},
		{hang.URL(), "meta-data/instance-id", "hop-limit", exitFail}, // multi-word kinds use dashes
		{closed, "meta-data/instance-id", "unreachable", exitUsage},
	} {
		code, res := getJSON(t, tc.url, tc.path)
		assert.Equal(t, tc.code, code, tc.path)
		require.NotNil(t, res.Error, tc.path)
		assert.Equal(t, tc.kind, res.Error.Kind, tc.path)
		assert.NotEmpty(t, res.Error.Message)
		assert.Nil(t, res.Value)
	}
	assert.Equal(t, "error", errorKind(errors.New("plain")))
	assert.Equal(t, "timeout", errorKind(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)))
}

// TestGetBinary: an answer that is not UTF-8 is base64 in JSON and raw in text. User data is
// read with imds.UserData, which decompresses gzip (so the bytes here do not start with the gzip
// magic number, which would make them an invalid gzip stream).
func TestGetBinary(t *testing.T) {
	noEnv(t)
	raw := []byte{0xff, 0x00, 0xfe, 0x80}
	srv := imdstest.NewServer(imdstest.Config{UserData: raw})
	t.Cleanup(srv.Close)
	code, out, errOut := cli(t, "get", "--endpoint="+srv.URL(), "--timeout=1m", "user-data")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, string(raw), out)
	_, res := getJSON(t, srv.URL(), "user-data")
	assert.Nil(t, res.Value)
	assert.Equal(t, raw, res.ValueBase64)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("#cloud-config\n"))
	require.NoError(t, zw.Close())
	srv.Update(func(cfg *imdstest.Config) { cfg.UserData = gz.Bytes() })
	code, out, errOut = cli(t, "get", "--endpoint="+srv.URL(), "--timeout=1m", "user-data")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "#cloud-config\n", out, "gzip-compressed user data is printed decompressed")
}

// TestGetPaths: a PATH outside meta-data/, dynamic/, user-data and api/ is read under
// meta-data/ ("instance-id", the name the SDKs take); dynamic/ has its own tree; api/ is refused.
func TestGetPaths(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0paths"})
	t.Cleanup(srv.Close)
	// The emulator makes its identity signing key on first use, inside the request that lists
	// dynamic/instance-identity/; under software emulation (make test-vm) that takes longer than
	// the client's 500 ms per attempt. The test is about paths: make the key first.
	require.NotNil(t, srv.SigningCertificate())
	for _, p := range []string{"instance-id", "/instance-id", "meta-data/instance-id", "/latest/meta-data/instance-id", "latest/instance-id"} {
		code, res := getJSON(t, srv.URL(), p)
		require.Equal(t, exitOK, code, p)
		require.NotNil(t, res.Value, p)
		assert.Equal(t, "i-0paths", *res.Value, p)
		assert.Equal(t, "/latest/meta-data/instance-id", res.Path, p)
	}
	for p, want := range map[string]string{"": "/latest/meta-data/", "meta-data": "/latest/meta-data/",
		"placement/": "/latest/meta-data/placement/", "dynamic": "/latest/dynamic/",
		"dynamic/instance-identity/": "/latest/dynamic/instance-identity/"} {
		code, res := getJSON(t, srv.URL(), p)
		require.Equal(t, exitOK, code, p)
		assert.Equal(t, want, res.Path, p)
		assert.NotEmpty(t, res.Items, p)
	}
	code, res := getJSON(t, srv.URL(), "dynamic/instance-identity/document")
	require.Equal(t, exitOK, code)
	require.NotNil(t, res.Value)
	assert.Contains(t, *res.Value, `"i-0paths"`)

	before := len(srv.Requests())
	for _, p := range []string{"api/token", "/latest/api/token", "user-data/x"} {
		code, _, errOut := cli(t, "get", "--endpoint="+srv.URL(), p)
		assert.Equal(t, exitUsage, code, p)
		assert.Contains(t, errOut, "imdsv2 get: PATH", p)
	}
	assert.Len(t, srv.Requests(), before, "a refused PATH sends nothing")
}

func TestOutputFlag(t *testing.T) {
	o := newOutputFlag()
	assert.Equal(t, "text", o.String())
	require.NoError(t, o.Set("json"))
	assert.Equal(t, "json", o.String())
	err := o.Set("yaml")
	assert.ErrorContains(t, err, `must be text or json, not "yaml"`)
	assert.Equal(t, "json", o.String(), "a bad value leaves the flag alone")
	require.NoError(t, o.Set(" JSON"), "case and spaces do not matter")
	assert.True(t, o.json())

	table := newChoice("text", "text", "json")
	table.aliases = map[string]string{"table": "text"}
	require.NoError(t, table.Set("json"))
	require.NoError(t, table.Set("table"))
	assert.Equal(t, "text", table.String(), "an alias sets the word it stands for")
	assert.Equal(t, "a, b or c", orList([]string{"a", "b", "c"}))
}

func TestTagsFlagServed(t *testing.T) {
	var f tagsFlag
	assert.Equal(t, "", f.String())
	require.NoError(t, f.Set(" Team =core,,Note=a=b"))
	assert.Equal(t, map[string]string{"Team": "core", "Note": "a=b"}, map[string]string(f),
		"keys are trimmed, empty items skipped, the value keeps any further '='")
}

func TestMockErrors(t *testing.T) {
	code, _, errOut := cli(t, "mock", "--listen", "127.0.0.1:notaport")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "imdsv2 mock:")

	code, _, errOut = cli(t, "mock", "--netns", "imdsv2-no-such-namespace")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "ip netns add imdsv2-no-such-namespace")

	code, _, errOut = cli(t, "mock", "--tags", "novalue")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "KEY=VALUE")
}

// TestMockUserData serves a file given with --user-data and reads it back with get.
func TestMockUserData(t *testing.T) {
	noEnv(t)
	file := filepath.Join(t.TempDir(), "user-data.sh")
	require.NoError(t, os.WriteFile(file, []byte("#!/bin/sh\necho hello\n"), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mock", "--listen", "127.0.0.1:0", "--user-data", file, "--role", "app-role"}, &out, &errb)
	}()
	url := waitServing(t, &out, done)
	code, got, errOut := cli(t, "get", "--endpoint="+url, "--timeout=1m", "user-data")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "#!/bin/sh\necho hello\n", got)
	code, got, errOut = cli(t, "get", "--endpoint="+url, "--timeout=1m", "meta-data/iam/security-credentials/")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "app-role\n", got)
	cancel()
	assert.Equal(t, exitOK, <-done)
	assert.Contains(t, out.String(), "imdsv2 mock: stopping")
}

// waitServing waits for the mock's "serving IMDS at URL" line and returns the URL.
func waitServing(t *testing.T, out *syncBuffer, done <-chan int) string {
	t.Helper()
	var url string
	require.Eventually(t, func() bool {
		select {
		case code := <-done:
			t.Fatalf("mock exited with %d before serving", code)
		default:
		}
		_, rest, ok := strings.Cut(out.String(), "serving IMDS at ")
		if ok {
			url, _, _ = strings.Cut(rest, " ")
		}
		return ok
	}, 60e9, 10e6)
	return url
}

func TestFormatRequestHasNoToken(t *testing.T) {
	line := formatRequest(imdstest.Request{Method: "GET", Path: "/latest/meta-data/", TokenSent: false, Status: 200})
	assert.Contains(t, line, "IMDSv1")
	line = formatRequest(imdstest.Request{Method: "GET", Path: "/latest/meta-data/", TokenSent: true, Status: 200})
	assert.Contains(t, line, "IMDSv2")
	line = formatRequest(imdstest.Request{Method: "PUT", Path: "/latest/api/token", Status: 200})
	assert.Contains(t, line, "token")
}

// TestVersionLdflags: the version set with -ldflags "-X main.version=..." is what is printed.
func TestVersionLdflags(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v9.8.7"
	code, out, _ := cli(t, "version")
	assert.Equal(t, exitOK, code)
	assert.True(t, strings.HasPrefix(out, "imdsv2 v9.8.7 "), out)
	code, out, _ = cli(t, "version", "--output", "json")
	assert.Equal(t, exitOK, code)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.Equal(t, "v9.8.7", v.Version)
	assert.Contains(t, v.Platform, "/")
}

// Every single-document JSON output escapes C1 and bidirectional controls, which encoding/json
// leaves raw, and a reader decodes them back to the same text.
func TestWriteJSONEscapesInvisibleControls(t *testing.T) {
	in := map[string]string{"value": "ami-\u202eevil\u0085\u2066x"}
	var b bytes.Buffer
	if err := writeJSON(&b, in); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"\u202e", "\u0085", "\u2066"} {
		if strings.Contains(b.String(), raw) {
			t.Errorf("raw %q in %s", raw, b.String())
		}
	}
	var out map[string]string
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || out["value"] != in["value"] {
		t.Fatalf("round trip: %v, %q", err, out["value"])
	}
}
