package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestRun(t *testing.T) {
	// The SDK's default chain must not find credentials elsewhere first.
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	srv := imdstest.NewServer(imdstest.Config{RoleName: "app-role", HTTPTokens: imdstest.TokensRequired})
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), imds.Options{Endpoint: srv.URL()}, &out))
	require.Contains(t, out.String(), "access key ASIAEMUL...")
	require.NotContains(t, out.String(), "Secret")
}
