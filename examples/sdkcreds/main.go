// Command sdkcreds uses this project's client as the credentials source of the AWS SDK for Go
// v2, through the adapter package imds/awssdk (package imds itself does not import the SDK). The SDK then reads the instance profile's role credentials with IMDSv2 only: no silent
// IMDSv1 fallback, and a hop-limit failure arrives as imds.ErrHopLimit with the fix in its text.
//
// It prints the first characters of the access key ID and the expiry, never the secret.
//
// On EC2 run it as it is. Anywhere else point it at the emulator:
//
//	imdsv2 mock --role app-role &
//	AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 go run ./examples/sdkcreds
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
	"github.com/imdsv2/imdsv2/imds/awssdk"
)

func main() {
	if err := run(context.Background(), imds.Options{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sdkcreds:", err)
		os.Exit(1)
	}
}

// run builds an SDK configuration whose credentials come from a client made from opts, retrieves
// them once, and prints where they came from.
func run(ctx context.Context, opts imds.Options, w io.Writer) error {
	c, err := imds.New(opts)
	if err != nil {
		return err
	}
	// The SDK would read the region from IMDS through its own client; reading it here keeps every
	// metadata request on this one.
	region, err := c.Region(ctx)
	if err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		// The cache renews the credentials before they expire; the provider reads them with IMDSv2.
		config.WithCredentialsProvider(aws.NewCredentialsCache(awssdk.NewCredentialsProvider(c))),
	)
	if err != nil {
		return err
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "SDK credentials in %s from %s: access key %s..., expire %s\n",
		cfg.Region, creds.Source, keyPrefix(creds.AccessKeyID), creds.Expires.UTC().Format(time.RFC3339))
	return nil
}

// keyPrefix keeps enough of an access key ID to tell keys apart in a log ("ASIA" plus four).
func keyPrefix(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
