// Command identity prints the instance's identity and region, read with IMDSv2.
//
// On EC2 run it as it is. Anywhere else point it at an emulator:
//
//	imdsv2 mock &
//	AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 go run ./examples/identity
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/imdsv2/imdsv2/imds"
)

func main() {
	if err := run(context.Background(), imds.Options{}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "identity:", err)
		os.Exit(1)
	}
}

// run reads the identity document and the region with a client made from opts.
func run(ctx context.Context, opts imds.Options, w io.Writer) error {
	c, err := imds.New(opts)
	if err != nil {
		return err
	}
	doc, err := c.IdentityDocument(ctx)
	if err != nil {
		return err
	}
	region, err := c.Region(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "instance %s (%s) in %s, account %s, image %s\n",
		doc.InstanceID, doc.InstanceType, region, doc.AccountID, doc.ImageID)
	return nil
}
