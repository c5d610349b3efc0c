// Command identity prints who and where this instance is, read with IMDSv2: the instance
// identity document and the region. With -cert it first checks the document's signature against
// AWS's public certificate for the region (from the EC2 documentation, "Verify the instance
// identity document"), so the answer can be trusted as coming from AWS.
//
// On EC2 run it as it is. Anywhere else point it at the emulator:
//
//	imdsv2 mock &
//	AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 go run ./examples/identity
package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/imdsv2/imdsv2/imds"
)

func main() {
	certFile := flag.String("cert", "", "PEM file with AWS's certificate for the region; checks the document's signature")
	flag.Parse()
	var cert *x509.Certificate
	if *certFile != "" {
		var err error
		if cert, err = readCert(*certFile); err != nil {
			fmt.Fprintln(os.Stderr, "identity:", err)
			os.Exit(2)
		}
	}
	if err := run(context.Background(), imds.Options{}, cert, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "identity:", err)
		os.Exit(1)
	}
}

// run reads the identity document (verified against cert when it is not nil) and the region
// with a client made from opts, and prints one line.
func run(ctx context.Context, opts imds.Options, cert *x509.Certificate, w io.Writer) error {
	c, err := imds.New(opts)
	if err != nil {
		return err
	}
	var doc *imds.IdentityDocument
	if cert != nil {
		doc, err = c.VerifiedIdentityDocument(ctx, cert)
	} else {
		doc, err = c.IdentityDocument(ctx)
	}
	if err != nil {
		return err
	}
	// The region has its own path too; reading it shows the plain accessors next to the document.
	region, err := c.Region(ctx)
	if err != nil {
		return err
	}
	verified := "signature not checked (use -cert)"
	if cert != nil {
		verified = "signature verified"
	}
	fmt.Fprintf(w, "instance %s (%s) in %s (%s), account %s, image %s; %s\n",
		doc.InstanceID, doc.InstanceType, region, doc.AvailabilityZone, doc.AccountID, doc.ImageID, verified)
	return nil
}

// readCert loads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New(path + ": no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}
