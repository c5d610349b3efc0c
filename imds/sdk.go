package imds

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// CredentialsSource is the Source of the aws.Credentials NewCredentialsProvider returns.
const CredentialsSource = "imdsv2"

// NewCredentialsProvider returns an aws.CredentialsProvider that reads the instance profile's
// role credentials through c. Wrap it in aws.NewCredentialsCache, so that credentials are read
// once and renewed before they expire:
//
//	cfg.Credentials = aws.NewCredentialsCache(imds.NewCredentialsProvider(c),
//		func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
//
// Errors are this package's *Error, so errors.Is(err, imds.ErrHopLimit) works through the SDK.
func NewCredentialsProvider(c *Client) aws.CredentialsProvider {
	return credentialsProvider{c: c}
}

type credentialsProvider struct{ c *Client }

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

// SDKClient lets SDK code that expects the feature/ec2/imds client use a Client instead; it
// satisfies the GetMetadataAPIClient interface of credentials/ec2rolecreds:
//
//	ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = c.SDK() })
type SDKClient struct{ c *Client }

// SDK returns c as an SDKClient.
func (c *Client) SDK() *SDKClient { return &SDKClient{c: c} }

// GetMetadata reads the metadata path in.Path, relative to /latest/meta-data/ like the SDK's
// (a leading slash is ignored), with c's tokens, time-outs and errors. The option functions are
// ignored: c's Options govern.
func (a *SDKClient) GetMetadata(ctx context.Context, in *sdkimds.GetMetadataInput, _ ...func(*sdkimds.Options)) (*sdkimds.GetMetadataOutput, error) {
	var p string
	if in != nil {
		p = strings.TrimLeft(in.Path, "/")
	}
	b, err := a.c.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	return &sdkimds.GetMetadataOutput{Content: io.NopCloser(bytes.NewReader(b))}, nil
}
