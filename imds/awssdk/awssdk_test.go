package awssdk

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// The adapter must satisfy the interface ec2rolecreds accepts.
var _ ec2rolecreds.GetMetadataAPIClient = (*MetadataClient)(nil)

// newTestClient returns a client of an emulator configured by cfg, with an empty environment
// and time limits generous enough for a loaded machine.
func newTestClient(t *testing.T, cfg imdstest.Config) (*imds.Client, *imdstest.Server) {
	t.Helper()
	srv := imdstest.NewServer(cfg)
	t.Cleanup(srv.Close)
	c, err := imds.New(imds.Options{Endpoint: srv.URL(), Getenv: func(string) string { return "" },
		Timeout: time.Minute, TokenTimeout: 30 * time.Second, RequestTimeout: 30 * time.Second})
	require.NoError(t, err)
	return c, srv
}

// requireNoIMDSv1 fails the test if srv ever received a GET without a token.
func requireNoIMDSv1(t *testing.T, srv *imdstest.Server) {
	t.Helper()
	for _, r := range srv.Requests() {
		require.Truef(t, r.Method != "GET" || r.TokenSent, "tokenless GET %s was sent", r.Path)
	}
}

func TestMetadataClientGetMetadata(t *testing.T) {
	c, srv := newTestClient(t, imdstest.Config{InstanceID: "i-0sdk"})
	for _, p := range []string{"instance-id", "/instance-id"} {
		out, err := NewMetadataClient(c).GetMetadata(context.Background(), &sdkimds.GetMetadataInput{Path: p})
		require.NoError(t, err)
		b, err := io.ReadAll(out.Content)
		require.NoError(t, err)
		require.NoError(t, out.Content.Close())
		assert.Equal(t, "i-0sdk", string(b))
	}
	_, err := NewMetadataClient(c).GetMetadata(context.Background(), &sdkimds.GetMetadataInput{Path: "nope"})
	require.ErrorIs(t, err, imds.ErrNotFound)
	requireNoIMDSv1(t, srv)
}

// TestSDKProvidersKeepErrors checks that package imds's errors survive the SDK's wrapping, so
// that a program can still tell why credentials are missing.
func TestSDKProvidersKeepErrors(t *testing.T) {
	c, srv := newTestClient(t, imdstest.Config{}) // no instance profile
	ctx := context.Background()

	_, err := aws.NewCredentialsCache(NewCredentialsProvider(c)).Retrieve(ctx)
	require.ErrorIs(t, err, imds.ErrNotFound)
	assert.Contains(t, err.Error(), "associate-iam-instance-profile")

	_, err = ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = NewMetadataClient(c) }).Retrieve(ctx)
	require.ErrorIs(t, err, imds.ErrNotFound)

	srv.Update(func(cfg *imdstest.Config) { cfg.RoleName = "app" })
	v, err := NewCredentialsProvider(c).Retrieve(ctx)
	require.NoError(t, err)
	assert.Equal(t, CredentialsSource, v.Source)
	assert.True(t, v.CanExpire)
	assert.NotEmpty(t, v.SessionToken)
	requireNoIMDSv1(t, srv)
}
