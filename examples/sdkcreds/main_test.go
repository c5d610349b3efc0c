package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/awssdk"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// testOptions points the client at the emulator, ignores the caller's AWS_* environment, and
// gives a loaded test machine generous time limits: these tests check answers, not speed.
func testOptions(url string) imds.Options {
	return imds.Options{Endpoint: url, Getenv: func(string) string { return "" },
		Timeout: time.Minute, TokenTimeout: 30 * time.Second, RequestTimeout: 30 * time.Second, DialTimeout: 10 * time.Second}
}

// isolateSDK keeps the SDK's default chain from finding a region, profile or credentials in the
// caller's environment or files.
func isolateSDK(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
}

func TestRun(t *testing.T) {
	isolateSDK(t)
	srv := imdstest.NewServer(imdstest.Config{RoleName: "app-role", Region: "eu-central-1", HTTPTokens: imdstest.TokensRequired})
	t.Cleanup(srv.Close)

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), testOptions(srv.URL()), &out))

	// What the emulator served, read directly, to check what was (not) printed.
	c, err := imds.New(testOptions(srv.URL()))
	require.NoError(t, err)
	creds, err := c.IAMCredentials(context.Background())
	require.NoError(t, err)
	got := out.String()
	assert.True(t, strings.HasPrefix(got, "SDK credentials in eu-central-1 from "+awssdk.CredentialsSource+": access key "+creds.AccessKeyID[:8]+"..., expire "), got)
	assert.NotContains(t, got, creds.AccessKeyID, "only a prefix of the key id")
	assert.NotContains(t, got, creds.SecretAccessKey)
	assert.NotContains(t, got, creds.Token)

	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			assert.True(t, r.TokenSent, "the SDK path sent a tokenless GET %s", r.Path)
		}
	}
}

func TestRunWithoutRole(t *testing.T) {
	isolateSDK(t)
	srv := imdstest.NewServer(imdstest.Config{HTTPTokens: imdstest.TokensRequired}) // no instance profile
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	err := run(context.Background(), testOptions(srv.URL()), &out)
	require.Error(t, err)
	var ierr *imds.Error
	assert.True(t, errors.As(err, &ierr), "the SDK passes the client's typed error through: %v", err)
	assert.Empty(t, out.String())
}

func TestKeyPrefix(t *testing.T) {
	assert.Equal(t, "ASIAEXAM", keyPrefix("ASIAEXAMPLEKEY123"))
	assert.Equal(t, "short", keyPrefix("short"))
}
