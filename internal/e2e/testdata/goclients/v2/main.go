// Command v2 is a workload of the end-to-end test of real clients (realclients_test.go): it calls
// IMDS through the AWS SDK for Go v2 at the versions go.mod names. It runs only inside the test
// bed's namespaces, started by the test.
//
//	v2 metadata PATH             feature/ec2/imds GetMetadata(PATH), default options
//	v2 metadata-nofallback PATH  the same with EnableFallback: aws.FalseTernary
//	v2 credentials               config.LoadDefaultConfig's credential chain (ending in ec2rolecreds)
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: v2 metadata PATH | metadata-nofallback PATH | credentials")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "v2:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode string, args []string) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return err
	}
	switch mode {
	case "metadata", "metadata-nofallback":
		if len(args) != 1 {
			return fmt.Errorf("%s takes one path", mode)
		}
		client := imds.NewFromConfig(cfg, func(o *imds.Options) {
			if mode == "metadata-nofallback" {
				o.EnableFallback = aws.FalseTernary
			}
		})
		out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: args[0]})
		if err != nil {
			return err
		}
		defer out.Content.Close()
		_, err = io.Copy(os.Stdout, out.Content)
		return err
	case "credentials":
		c, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return err
		}
		fmt.Println(c.Source)
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}
