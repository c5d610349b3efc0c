package imds

import (
	"context"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// The adapter must satisfy the interface ec2rolecreds accepts.
var _ ec2rolecreds.GetMetadataAPIClient = (*SDKClient)(nil)

func TestSDKClientGetMetadata(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{InstanceID: "i-0sdk"})
	c := newTestClient(t, srv, relaxed)
	for _, p := range []string{"instance-id", "/instance-id"} {
		out, err := c.SDK().GetMetadata(context.Background(), &sdkimds.GetMetadataInput{Path: p})
		require.NoError(t, err)
		b, err := io.ReadAll(out.Content)
		require.NoError(t, err)
		require.NoError(t, out.Content.Close())
		assert.Equal(t, "i-0sdk", string(b))
	}
	_, err := c.SDK().GetMetadata(context.Background(), &sdkimds.GetMetadataInput{Path: "nope"})
	require.ErrorIs(t, err, ErrNotFound)
	requireNoIMDSv1(t, srv)
}

// TestSDKProvidersKeepErrors checks that this package's errors survive the SDK's wrapping, so that
// a program can still tell why credentials are missing.
func TestSDKProvidersKeepErrors(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{}) // no instance profile
	c := newTestClient(t, srv, relaxed)
	ctx := context.Background()

	_, err := aws.NewCredentialsCache(NewCredentialsProvider(c)).Retrieve(ctx)
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "associate-iam-instance-profile")

	_, err = ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = c.SDK() }).Retrieve(ctx)
	require.ErrorIs(t, err, ErrNotFound)

	srv.Update(func(cfg *imdstest.Config) { cfg.RoleName = "app" })
	v, err := NewCredentialsProvider(c).Retrieve(ctx)
	require.NoError(t, err)
	assert.Equal(t, CredentialsSource, v.Source)
	assert.True(t, v.CanExpire)
	assert.NotEmpty(t, v.SessionToken)
	requireNoIMDSv1(t, srv)
}
