// Command sdkcreds uses this project's client as the credentials source of the AWS SDK for Go
// v2, so the SDK reads role credentials with IMDSv2 only and never falls back to IMDSv1.
//
// It prints the access key ID's prefix and the expiry, never the secret.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/imdsv2/imdsv2/imds"
)

func main() {
	if err := run(context.Background(), imds.Options{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sdkcreds:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts imds.Options, w io.Writer) error {
	c, err := imds.New(opts)
	if err != nil {
		return err
	}
	region, err := c.Region(ctx)
	if err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(aws.NewCredentialsCache(imds.NewCredentialsProvider(c))),
	)
	if err != nil {
		return err
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	prefix := creds.AccessKeyID
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	fmt.Fprintf(w, "SDK credentials from %s: access key %s..., expire %s\n",
		creds.Source, prefix, creds.Expires.UTC().Format(time.RFC3339))
	return nil
}
