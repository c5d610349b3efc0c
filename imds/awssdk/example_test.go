package awssdk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/awssdk"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// The examples talk to an emulator on loopback. On EC2, leave Options.Endpoint empty.

func ExampleNewCredentialsProvider() {
	srv := imdstest.NewServer(imdstest.Config{RoleName: "web-server"})
	defer srv.Close()
	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	// Give this to an SDK client as aws.Config.Credentials.
	creds := aws.NewCredentialsCache(awssdk.NewCredentialsProvider(c), func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = 5 * time.Minute
	})
	v, err := creds.Retrieve(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Source, v.AccessKeyID[:4], v.CanExpire)
	// Output: imdsv2 ASIA true
}

func ExampleNewMetadataClient() {
	srv := imdstest.NewServer(imdstest.Config{RoleName: "web-server"})
	defer srv.Close()
	c, err := imds.New(imds.Options{Endpoint: srv.URL()})
	if err != nil {
		log.Fatal(err)
	}
	// The SDK's own EC2 role provider, reading IMDS through this client.
	provider := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = awssdk.NewMetadataClient(c) })
	v, err := aws.NewCredentialsCache(provider).Retrieve(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Source, v.AccessKeyID[:4])
	// Output: EC2RoleProvider ASIA
}
