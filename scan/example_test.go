package scan_test

import (
	"context"
	"fmt"
	"log"
	"testing/fstest"

	"github.com/imdsv2/imdsv2/scan"
)

// Scanning a tree (here an in-memory one; leave Options.FS unset to scan this
// machine), listing what blocks HttpTokens=required and where SDKs that can
// use IMDSv2 are installed.
func ExampleRun() {
	tree := fstest.MapFS{
		"usr/lib/python3/dist-packages/botocore-1.12.0.dist-info/METADATA": {
			Data: []byte("Metadata-Version: 2.1\nName: botocore\nVersion: 1.12.0\n"),
		},
		"srv/app/node_modules/aws-sdk/package.json": {
			Data: []byte(`{"name": "aws-sdk", "version": "2.1500.0"}`),
		},
		"root/.aws/config": {
			Data: []byte("[default]\nec2_metadata_v1_disabled = true\n"),
		},
	}
	rep, err := scan.Run(context.Background(), scan.Options{FS: tree})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range rep.Findings {
		switch f.Kind {
		case scan.KindOldSDK:
			fmt.Printf("%s: %s %s < %s at %s\n", f.Severity, f.Product, f.Version, f.MinVersion, f.Path)
		case scan.KindCurrentSDK:
			fmt.Printf("%s: %s %s >= %s at %s\n", f.Severity, f.Product, f.Version, f.MinVersion, f.Path)
		default:
			fmt.Printf("%s: %s at %s:%d\n", f.Severity, f.Setting, f.Path, f.Line)
		}
	}
	fmt.Println("ready:", !rep.Blockers())
	// Output:
	// blocker: botocore 1.12.0 < 1.13.25 at /usr/lib/python3/dist-packages/botocore-1.12.0.dist-info
	// info: ec2_metadata_v1_disabled = true at /root/.aws/config:2
	// info: AWS SDK for JavaScript v2 2.1500.0 >= 2.722.0 at /srv/app/node_modules/aws-sdk/package.json
	// ready: false
}
