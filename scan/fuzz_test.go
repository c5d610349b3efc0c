package scan

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

func FuzzParsers(f *testing.F) {
	f.Add([]byte(metadata("botocore", "1.12.0")))
	f.Add([]byte(pomProperties("com.amazonaws", "aws-java-sdk-core", "1.11.500")))
	f.Add([]byte(`{"name":"aws-sdk","version":"2.500.0"}`))
	f.Add([]byte("[default]\nec2_metadata_v1_disabled = false\n"))
	f.Add([]byte("Environment=\"AWS_EC2_METADATA_V1_DISABLED=false\" AWS_EC2_METADATA_DISABLED=true\n"))
	f.Add([]byte("Name: x\r\n\tcont\r\nVersion:\xff\x00\n\n"))
	f.Add([]byte("__VERSION__ = \"22.4.2\"\n_PACKAGED_VERSION = \"22.4.2-1+deb12u4\"\n"))
	f.Add([]byte("const AWS = require('aws-sdk');\nnew AWS.MetadataService()\n  .request('/latest/meta-data/', cb);\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parsePythonMetadata(data)
		parsePomProperties(data)
		parsePackageJSON(data)
		if v, p := parseCloudInitVersion(data); len(v) > 40 || len(p) > 60 {
			t.Errorf("cloud-init version %q, packaged %q: longer than the patterns allow", v, p)
		}
		if line, ok := findTokenlessRequest(data); ok && (line < 1 || line > lines(data)) {
			t.Errorf("tokenless call on line %d of %d", line, lines(data))
		}
		for _, s := range append(parseEnvSettings(data), parseAWSConfig(data)...) {
			if s.line < 1 || s.line > lines(data) {
				t.Errorf("setting %+v on a line outside 1..%d", s, lines(data))
			}
			for _, field := range []string{s.value, s.scope} {
				if strings.ContainsFunc(field, func(r rune) bool { return !strconv.IsPrint(r) }) {
					t.Errorf("unsanitized %q from %q", field, data)
				}
			}
			if f, ok := settingFinding("etc/environment", "environment file", s); ok && (f.Why == "" || f.Fix == "") {
				t.Errorf("finding without why or fix: %+v", f)
			}
		}
	})
}

func lines(data []byte) int { return strings.Count(string(data), "\n") + 1 }

// FuzzScanArchive runs a whole scan over a tree holding one fuzzed jar,
// package.json (of aws-sdk and of the v3 client), METADATA, cloud-init
// version file and application source: no panic, no finding without a valid
// version, no tokenless-api finding outside the application.
func FuzzScanArchive(f *testing.F) {
	f.Add(zipBytes(f, map[string]string{
		"META-INF/maven/com.amazonaws/aws-java-sdk-core/pom.properties": pomProperties("com.amazonaws", "aws-java-sdk-core", "1.11.500"),
		"BOOT-INF/lib/sdk-core-2.1.0.jar":                               "x",
	}))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Add([]byte(`{"name":"aws-sdk","version":"2.1693.0","x":"require('aws-sdk'); AWS.MetadataService; m.request(p)"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"opt/app.jar":                                                    {Data: data},
			"opt/node_modules/aws-sdk/package.json":                          {Data: data},
			"opt/botocore-1.0.dist-info/METADATA":                            {Data: data},
			"opt/.aws/config":                                                {Data: data},
			"opt/vendor/aws/aws-sdk-php/src/Sdk.php":                         {Data: data},
			"opt/node_modules/@smithy/credential-provider-imds/package.json": {Data: data},
			"opt/cloudinit/version.py":                                       {Data: data},
			"opt/src/index.js":                                               {Data: data},
		}
		rep, err := Run(context.Background(), Options{FS: fsys, Roots: []string{"/opt"}, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Findings {
			switch f.Kind {
			case KindOldSDK, KindCurrentSDK:
				if _, err := imdsfacts.ParseVersion(f.Version); err != nil {
					t.Errorf("finding with an unparsable version: %+v", f)
				}
			case KindTokenlessAPI:
				if f.Path != "/opt/src/index.js" || f.Line < 1 {
					t.Errorf("tokenless-api finding outside the application's source: %+v", f)
				}
			}
		}
	})
}
