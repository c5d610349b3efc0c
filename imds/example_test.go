package imds_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// The examples talk to an emulator on loopback. On EC2, leave Options.Endpoint empty.

func Example() {
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0abc123", Region: "eu-west-1"})
	defer srv.Close()

	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.InstanceID(ctx)
	if err != nil {
		log.Fatal(err)
	}
	region, err := c.Region(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id, region)
	// Output: i-0abc123 eu-west-1
}

// A container behind a bridge on an instance whose HttpPutResponseHopLimit is 1 never gets its
// token answer; the error says so and gives the fix.
func Example_hopLimit() {
	srv := imdstest.NewServer(imdstest.Config{})
	defer srv.Close()
	// Emulate the lost answer: the token request is read and never answered.
	srv.InjectFault(imdstest.Fault{Method: "PUT", PathPrefix: "/latest/api/token", Kind: imdstest.FaultHang})

	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.InstanceID(context.Background())
	fmt.Println(errors.Is(err, imds.ErrHopLimit))
	var e *imds.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind, e.Op, e.Path)
	}
	// Output:
	// true
	// hop limit PUT /latest/api/token
}

func ExampleClient_IAMCredentials() {
	srv := imdstest.NewServer(imdstest.Config{RoleName: "web-server"})
	defer srv.Close()
	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	cr, err := c.IAMCredentials(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cr.RoleName, cr.AccessKeyID[:4], cr.Expiration.After(time.Now()))
	// Printing never shows the secrets.
	printed := fmt.Sprintf("%+v", cr)
	fmt.Println(strings.Contains(printed, cr.SecretAccessKey), strings.Contains(printed, cr.Token))
	// Output:
	// web-server ASIA true
	// false false
}

func ExampleClient_VerifiedIdentityDocument() {
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0abc123", Region: "eu-west-1"})
	defer srv.Close()
	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	// On EC2, pass AWS's public certificate for the region (EC2 documentation, "Verify the
	// instance identity document"); the emulator signs with a test key.
	doc, err := c.VerifiedIdentityDocument(context.Background(), srv.SigningCertificate())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(doc.InstanceID, doc.Region, doc.AccountID)
	// Output: i-0abc123 eu-west-1 123456789012
}

func ExampleClient_Tags() {
	srv := imdstest.NewServer(imdstest.Config{})
	defer srv.Close()
	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Tags(context.Background())
	fmt.Println(errors.Is(err, imds.ErrTagsNotEnabled))

	// What modify-instance-metadata-options --instance-metadata-tags enabled does:
	srv.Update(func(cfg *imdstest.Config) {
		cfg.TagsEnabled, cfg.Tags = true, map[string]string{"Name": "web-1"}
	})
	name, err := c.Tag(context.Background(), "Name")
	fmt.Println(name, err)
	// Output:
	// true
	// web-1 <nil>
}
