// Package awssdk connects an imds.Client to the AWS SDK for Go v2, so that SDK clients read
// instance metadata and role credentials with this module's IMDSv2-only client: its session
// tokens, time-outs and errors (errors.Is(err, imds.ErrHopLimit) works through the SDK).
//
// It lives apart from package imds so that imds imports nothing but the standard library and
// golang.org/x/sync: only a program that imports this package pulls in the SDK.
//
//   - NewCredentialsProvider is an aws.CredentialsProvider of the instance profile's role
//     credentials, for aws.Config.Credentials.
//   - NewMetadataClient satisfies the GetMetadataAPIClient interface of credentials/ec2rolecreds
//     (and anything else that takes the feature/ec2/imds client's GetMetadata).
package awssdk

import (
	"bytes"
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsv2/imdsv2/imds"
)

// CredentialsSource is the Source of the aws.Credentials NewCredentialsProvider returns.
const CredentialsSource = "imdsv2"

// NewCredentialsProvider returns an aws.CredentialsProvider that reads the instance profile's
// role credentials through c. Wrap it in aws.NewCredentialsCache, so that credentials are read
// once and renewed before they expire:
//
//	cfg.Credentials = aws.NewCredentialsCache(awssdk.NewCredentialsProvider(c),
//		func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
//
// Errors are package imds's *Error, so errors.Is(err, imds.ErrHopLimit) works through the SDK.
func NewCredentialsProvider(c *imds.Client) aws.CredentialsProvider {
	return credentialsProvider{c: c}
}

type credentialsProvider struct{ c *imds.Client }

// Retrieve implements aws.CredentialsProvider.
func (p credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := p.c.IAMCredentials(ctx)
	if err != nil {
		return aws.Credentials{}, err
	}
	return aws.Credentials{
		AccessKeyID:     cr.AccessKeyID,
		SecretAccessKey: cr.SecretAccessKey,
		SessionToken:    cr.Token,
		Source:          CredentialsSource,
		CanExpire:       true,
		Expires:         cr.Expiration,
	}, nil
}

// MetadataClient lets SDK code that expects the feature/ec2/imds client use an imds.Client
// instead; it satisfies the GetMetadataAPIClient interface of credentials/ec2rolecreds:
//
//	ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = awssdk.NewMetadataClient(c) })
type MetadataClient struct{ c *imds.Client }

// NewMetadataClient returns c as a MetadataClient.
func NewMetadataClient(c *imds.Client) *MetadataClient { return &MetadataClient{c: c} }

// GetMetadata reads the metadata path in.Path, relative to /latest/meta-data/ like the SDK's
// (a leading slash is ignored), with c's tokens, time-outs and errors. The option functions are
// ignored: c's Options govern.
func (a *MetadataClient) GetMetadata(ctx context.Context, in *sdkimds.GetMetadataInput, _ ...func(*sdkimds.Options)) (*sdkimds.GetMetadataOutput, error) {
	var p string
	if in != nil {
		p = in.Path
	}
	b, err := a.c.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	return &sdkimds.GetMetadataOutput{Content: io.NopCloser(bytes.NewReader(b))}, nil
}
