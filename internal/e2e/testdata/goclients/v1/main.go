// Command v1 is a workload of the end-to-end test of real clients (realclients_test.go): it calls
// IMDS through the AWS SDK for Go v1, built at the version go.mod (current) or old.mod (older than
// v1.25.38, tokenless) names. It runs only inside the test bed's namespaces, started by the test.
//
//	v1 metadata PATH      ec2metadata.GetMetadata(PATH)
//	v1 credentials        the session's default credential chain (ending in the EC2 role provider)
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/ec2metadata"
	"github.com/aws/aws-sdk-go/aws/session"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: v1 metadata PATH | credentials")
		os.Exit(2)
	}
	sess, err := session.NewSession(aws.NewConfig().WithRegion("us-east-1"))
	if err == nil {
		err = run(sess, os.Args[1], os.Args[2:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "v1:", err)
		os.Exit(1)
	}
}

func run(sess *session.Session, mode string, args []string) error {
	switch mode {
	case "metadata":
		if len(args) != 1 {
			return fmt.Errorf("metadata takes one path")
		}
		v, err := ec2metadata.New(sess).GetMetadata(args[0])
		if err != nil {
			return err
		}
		fmt.Println(v)
		return nil
	case "credentials":
		v, err := sess.Config.Credentials.Get()
		if err != nil {
			return err
		}
		fmt.Println(v.ProviderName)
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}
