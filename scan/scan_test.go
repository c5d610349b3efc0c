package scan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plantOld builds a tree with one old SDK (or risky setting) of every kind
// and returns it with the findings expected, keyed like findingsAt.
func plantOld(t *testing.T) (string, map[string]Finding) {
	root := t.TempDir()
	put := func(name, data string) { writeFile(t, filepath.Join(root, name), data) }
	put("usr/lib/python3/dist-packages/botocore-1.12.0.dist-info/METADATA", metadata("botocore", "1.12.0"))
	put("usr/lib/python3/dist-packages/botocore-1.12.0.dist-info/RECORD", "botocore/__init__.py,,\n")
	put("usr/lib/python3/dist-packages/boto3-1.9.0.egg-info/PKG-INFO", metadata("boto3", "1.9.0"))
	put("usr/local/lib/python3.8/site-packages/awscli-1.16.0.dist-info/METADATA", metadata("awscli", "1.16.0"))
	put("usr/share/java/aws-java-sdk-core-1.11.500.jar", string(zipBytes(t, map[string]string{"com/amazonaws/SDKGlobalConfiguration.class": "x"})))
	put("opt/app/lib/aws-java-sdk-core.jar", string(zipBytes(t, map[string]string{
		"META-INF/maven/com.amazonaws/aws-java-sdk-core/pom.properties": pomProperties("com.amazonaws", "aws-java-sdk-core", "1.11.600"),
		"com/amazonaws/util/EC2MetadataUtils.class":                     "x",
	})))
	put("opt/app/service.jar", string(zipBytes(t, map[string]string{
		"BOOT-INF/lib/sdk-core-2.10.0.jar": "nested",
		"BOOT-INF/lib/auth-2.10.0.jar":     "nested",
		"BOOT-INF/classes/App.class":       "x",
	})))
	put("opt/shaded/app-all.jar", string(zipBytes(t, map[string]string{ // shaded: no pom.properties of the SDK
		"com/amazonaws/sdk/versionInfo.properties":  "#Tue Nov 19 00:00:00 UTC 2019\nplatform=java\nversion=1.11.300\n",
		"com/amazonaws/util/EC2MetadataUtils.class": "x",
	})))
	put("srv/web/node_modules/aws-sdk/package.json", `{"name": "aws-sdk", "version": "2.500.0", "main": "lib/aws.js"}`)
	put("srv/web/lib/instance.js", "const AWS = require('aws-sdk');\nconst meta = new AWS.MetadataService();\n\n"+
		"meta.request('/latest/meta-data/instance-id', (err, id) => console.log(id));\n")
	put("srv/web/lib/creds.js", "const AWS = require('aws-sdk');\nnew AWS.MetadataService().fetchMetadataToken((e, token) =>\n"+
		"  meta.request('/latest/meta-data/iam/info', {headers: {'x-aws-ec2-metadata-token': token}}, cb));\n")
	// Layouts of Debian 12's packages (dpkg -c): cloud-init 22.4.2 and
	// awscli 2.9.19 as Python distributions, cloud-init's version file.
	put("usr/lib/python3/dist-packages/cloud_init-22.4.2.egg-info/PKG-INFO", metadata("cloud-init", "22.4.2"))
	put("usr/lib/python3/dist-packages/cloudinit/version.py", "__VERSION__ = \"22.4.2\"\n_PACKAGED_VERSION = \"@@PACKAGED_VERSION@@\"\n")
	put("usr/lib/python3/dist-packages/awscli-2.9.19.dist-info/METADATA", metadata("awscli", "2.9.19"))
	put("srv/v3/node_modules/@aws-sdk/credential-providers/package.json", `{"name": "@aws-sdk/credential-providers", "version": "3.400.0"}`)
	put("srv/v3/node_modules/@smithy/credential-provider-imds/package.json", `{"name": "@smithy/credential-provider-imds", "version": "2.0.18"}`)
	put("var/lib/gems/3.0.0/specifications/aws-sdk-core-3.78.0.gemspec", "# gemspec\n")
	put("var/www/app/vendor/aws/aws-sdk-php/src/Sdk.php", "<?php\nnamespace Aws;\nclass Sdk\n{\n    const VERSION = '3.100.0';\n}\n")
	put("root/.aws/config", "[default]\nregion = us-east-1\nec2_metadata_v1_disabled = false\n")
	put("home/alice/.aws/config", "[profile batch]\nEC2_METADATA_V1_DISABLED=true\n")
	put("home/alice/.aws/credentials", "[default]\nec2_metadata_v1_disabled = false\naws_secret_access_key = SECRET\n")
	put("etc/environment", "PATH=/usr/bin\nAWS_EC2_METADATA_DISABLED=\"true\"\n")
	put("etc/systemd/system/app.service", "[Service]\nExecStart=/usr/local/bin/oldsdk\nEnvironment=\"LANG=C\" AWS_EC2_METADATA_V1_DISABLED=false\n")
	copyFile(t, goBinary(t, "v1.25.0"), filepath.Join(root, "usr/local/bin/oldsdk"))

	want := map[string]Finding{
		"/usr/lib/python3/dist-packages/botocore-1.12.0.dist-info":       {Product: "botocore", Version: "1.12.0", MinVersion: "1.13.25", Evidence: "METADATA Version"},
		"/usr/lib/python3/dist-packages/boto3-1.9.0.egg-info":            {Product: "boto3", Version: "1.9.0", MinVersion: "1.12.6", Evidence: "PKG-INFO Version"},
		"/usr/local/lib/python3.8/site-packages/awscli-1.16.0.dist-info": {Product: "AWS CLI v1", Version: "1.16.0", MinVersion: "1.16.289"},
		"/usr/share/java/aws-java-sdk-core-1.11.500.jar":                 {Product: "AWS SDK for Java v1", Version: "1.11.500", MinVersion: "1.11.678", Evidence: "file name"},
		"/opt/app/lib/aws-java-sdk-core.jar": {Product: "AWS SDK for Java v1", Version: "1.11.600", MinVersion: "1.11.678",
			Evidence: "META-INF/maven/com.amazonaws/aws-java-sdk-core/pom.properties"},
		"/opt/app/service.jar":                       {Product: "AWS SDK for Java v2", Version: "2.10.0", MinVersion: "2.10.21", Evidence: "nested BOOT-INF/lib/sdk-core-2.10.0.jar"},
		"/srv/web/node_modules/aws-sdk/package.json": {Product: "AWS SDK for JavaScript v2", Version: "2.500.0", MinVersion: "2.722.0"},
		"/opt/shaded/app-all.jar":                    {Product: "AWS SDK for Java v1", Version: "1.11.300", Evidence: "com/amazonaws/sdk/versionInfo.properties"},
		"/srv/web/lib/instance.js:4": {Kind: KindTokenlessAPI, Severity: SeverityBlocker, Product: "AWS SDK for JavaScript v2",
			Version: "2.500.0", SDK: "aws-sdk-js-v2"},
		"/usr/lib/python3/dist-packages/cloud_init-22.4.2.egg-info": {Kind: KindCurrentSDK, Severity: SeverityInfo, Product: "cloud-init",
			Version: "22.4.2", MinVersion: "19.4", SDK: "cloud-init", Evidence: "PKG-INFO Version"},
		"/usr/lib/python3/dist-packages/awscli-2.9.19.dist-info": {Kind: KindCurrentSDK, Severity: SeverityInfo, Product: "AWS CLI v2",
			Version: "2.9.19", MinVersion: "any", SDK: "aws-cli-v2"},
		"/srv/v3/node_modules/@smithy/credential-provider-imds/package.json": {Kind: KindCurrentSDK, Severity: SeverityInfo,
			Product: "AWS SDK for JavaScript v3, @smithy/credential-provider-imds", Version: "2.0.18", MinVersion: "any", SDK: "aws-sdk-js-v3",
			Package: "pkg:npm/%40smithy/credential-provider-imds"},
		"/var/lib/gems/3.0.0/specifications/aws-sdk-core-3.78.0.gemspec": {Product: "AWS SDK for Ruby", Version: "3.78.0", MinVersion: "3.79.0"},
		"/var/www/app/vendor/aws/aws-sdk-php/src/Sdk.php":                {Product: "AWS SDK for PHP", Version: "3.100.0", MinVersion: "3.147.7"},
		"/usr/local/bin/oldsdk":                                          {Product: "AWS SDK for Go v1", Version: "v1.25.0", MinVersion: "v1.25.38", Package: "pkg:golang/github.com/aws/aws-sdk-go"},
		"/root/.aws/config:3":                                            {Kind: KindV1FallbackAllowed, Severity: SeverityWarning, Setting: "ec2_metadata_v1_disabled = false"},
		"/home/alice/.aws/config:2":                                      {Kind: KindV1FallbackDisabled, Severity: SeverityInfo, Setting: "ec2_metadata_v1_disabled = true"},
		"/etc/environment:2":                                             {Kind: KindIMDSDisabled, Severity: SeverityWarning, Setting: "AWS_EC2_METADATA_DISABLED=true"},
		"/etc/systemd/system/app.service:3": {Kind: KindV1FallbackAllowed, Severity: SeverityWarning,
			Setting: "AWS_EC2_METADATA_V1_DISABLED=false", Evidence: "systemd unit Environment="},
	}
	return root, want
}

func TestRunFindsOldSDKs(t *testing.T) {
	root, want := plantOld(t)
	rep, err := Run(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsAt(rep)
	for key, w := range want {
		f, ok := got[key]
		if !ok {
			t.Errorf("no finding for %s\nreport:\n%s", key, describe(rep))
			continue
		}
		if w.Kind == "" {
			w.Kind, w.Severity = KindOldSDK, SeverityBlocker
		}
		if f.Kind != w.Kind || f.Severity != w.Severity {
			t.Errorf("%s: kind %s severity %s, want %s %s", key, f.Kind, f.Severity, w.Kind, w.Severity)
		}
		check := func(field, got, want string) {
			if want != "" && got != want {
				t.Errorf("%s: %s = %q, want %q", key, field, got, want)
			}
		}
		check("Product", f.Product, w.Product)
		check("Version", f.Version, w.Version)
		check("MinVersion", f.MinVersion, w.MinVersion)
		check("Evidence", f.Evidence, w.Evidence)
		check("Setting", f.Setting, w.Setting)
		check("Package", f.Package, w.Package)
		check("SDK", f.SDK, w.SDK)
		if f.Why == "" || f.Fix == "" {
			t.Errorf("%s: why %q fix %q, want both", key, f.Why, f.Fix)
		}
		if f.Kind == KindOldSDK && (!strings.Contains(f.Summary(), w.MinVersion) || !strings.Contains(f.Why, "HttpTokens=required")) {
			t.Errorf("%s: %q does not name the minimum and the consequence", key, f.Summary())
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected finding %s: %+v", key, got[key])
		}
	}
	if fix := got["/usr/local/bin/oldsdk"].Fix; !strings.Contains(fix, "aws-sdk-go") {
		t.Errorf("Go fix %q does not say which module to upgrade", fix)
	}
	if ev := got["/usr/local/bin/oldsdk"].Evidence; !strings.Contains(ev, "example.com/oldsdk") {
		t.Errorf("Go evidence %q does not name the program", ev)
	}
	if rep.Truncated || rep.Unreadable != 0 {
		t.Errorf("truncated=%v unreadable=%d, want a complete clean walk", rep.Truncated, rep.Unreadable)
	}
	if rep.Count(SeverityBlocker) != 12 || !rep.Blockers() {
		t.Errorf("Count(blocker) = %d, want 12", rep.Count(SeverityBlocker))
	}
	if f := got["/srv/v3/node_modules/@smithy/credential-provider-imds/package.json"]; !strings.Contains(f.Fix, "2.1.0") {
		t.Errorf("@smithy/credential-provider-imds 2.0.18 reads no %s; the fix %q does not say to upgrade first", envV1Disabled, f.Fix)
	}
	if f := got["/srv/web/node_modules/aws-sdk/package.json"]; !strings.Contains(f.Why, "1 call MetadataService.request without a token") {
		t.Errorf("the aws-sdk finding does not say what the source search found: %q", f.Why)
	}
	if rep.Findings[0].Severity != SeverityBlocker || rep.Findings[len(rep.Findings)-1].Severity != SeverityInfo {
		t.Errorf("findings not sorted blockers first, info last")
	}
	if text := describe(rep); strings.Contains(text, "SECRET") {
		t.Errorf("the report shows content of a credentials file:\n%s", text)
	}
}

func TestRunCleanTree(t *testing.T) {
	root := t.TempDir()
	put := func(name, data string) { writeFile(t, filepath.Join(root, name), data) }
	put("usr/lib/python3/dist-packages/botocore-1.34.0.dist-info/METADATA", metadata("botocore", "1.34.0"))
	put("usr/lib/python3/dist-packages/boto3-1.34.0.dist-info/METADATA", metadata("boto3", "1.34.0"))
	put("usr/lib/python3/dist-packages/awscli-1.16.289.dist-info/METADATA", metadata("awscli", "1.16.289"))
	put("usr/lib/python3/dist-packages/requests-2.0.0.dist-info/METADATA", metadata("requests", "2.0.0"))
	put("usr/share/java/aws-java-sdk-core-1.12.600.jar", string(zipBytes(t, map[string]string{"a.class": "x"})))
	put("usr/share/java/commons-io.jar", string(zipBytes(t, map[string]string{
		"META-INF/maven/commons-io/commons-io/pom.properties": pomProperties("commons-io", "commons-io", "1.0"),
	})))
	put("opt/app/lib/sdk-core.jar", string(zipBytes(t, map[string]string{
		"META-INF/maven/software.amazon.awssdk/sdk-core/pom.properties": pomProperties("software.amazon.awssdk", "sdk-core", "2.25.0"),
	})))
	put("srv/web/node_modules/aws-sdk/package.json", `{"name": "aws-sdk", "version": "2.1500.0"}`)
	put("srv/web/node_modules/left-pad/package.json", `{"name": "left-pad", "version": "1.0.0"}`)
	put("root/.aws/config", "[default]\nregion = us-east-1\n")
	put("etc/environment", "PATH=/usr/bin\nMY_AWS_EC2_METADATA_DISABLED=true\n# AWS_EC2_METADATA_V1_DISABLED=false\nAWS_EC2_METADATA_DISABLED=false\n")
	put("etc/systemd/system/app.service", "[Service]\nExecStart=/usr/local/bin/newsdk\n")
	copyFile(t, goBinary(t, "v1.55.0"), filepath.Join(root, "usr/local/bin/newsdk"))

	rep, err := Run(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	// Every SDK there can use IMDSv2: listed (where the audit's callers are
	// installed), nothing to act on before enforcing.
	products := map[string]bool{}
	for _, f := range rep.Findings {
		products[f.Product] = true
		if f.Kind != KindCurrentSDK || f.Severity != SeverityInfo || f.MinVersion == "" || f.SDK == "" {
			t.Errorf("clean tree: %s %s is %s %s", f.Path, f.Product, f.Kind, f.Severity)
		}
	}
	if len(rep.Findings) != 7 || rep.Blockers() || rep.Unreadable != 0 || rep.Truncated {
		t.Errorf("clean tree: want 7 current SDKs and nothing else, got:\n%s", describe(rep))
	}
	if rep.FilesRead < 10 {
		t.Errorf("FilesRead = %d, want the planted files read", rep.FilesRead)
	}
}

func TestNonGoExecutableIsCheap(t *testing.T) {
	const bash = "/bin/bash"
	st, err := os.Stat(bash)
	if err != nil || st.Size() < minGoBinary {
		t.Skipf("needs a C executable of at least %d bytes at %s", minGoBinary, bash)
	}
	root := t.TempDir()
	copyFile(t, bash, filepath.Join(root, "usr/bin/bash"))
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/usr/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	// Only the ELF headers are read: no search of the data segment for a Go
	// build information blob that a C program does not have.
	if len(rep.Findings) != 0 || rep.FilesRead != 1 || rep.Unreadable != 0 || rep.BytesRead > 64<<10 {
		t.Errorf("findings %d, files read %d, unreadable %d, bytes read %d; want 0, 1, 0, < 64 KiB",
			len(rep.Findings), rep.FilesRead, rep.Unreadable, rep.BytesRead)
	}
}

func TestGoBinaryWithinByteBudget(t *testing.T) {
	root := t.TempDir()
	copyFile(t, goBinary(t, "v1.25.0"), filepath.Join(root, "opt/bin/agent"))
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/opt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.BytesRead > 1<<20 {
		t.Errorf("findings %d, bytes read %d; want 1 finding from well under 1 MiB read", len(rep.Findings), rep.BytesRead)
	}
	rep, err = Run(context.Background(), Options{Root: root, Roots: []string{"/opt"}, MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TruncatedBy != TruncatedByMaxBytes || len(rep.Findings) != 0 {
		t.Errorf("MaxBytes 100: truncated %v by %q, %d findings", rep.Truncated, rep.TruncatedBy, len(rep.Findings))
	}
}

// TestCloudInitByItsCode: a cloud-init older than 19.4 is a blocker unless
// its Ec2 data source asks for a token (a distribution's backport; Amazon
// Linux 2's 19.3 is said to be one); the version file alone judges it where the metadata is missing.
func TestCloudInitByItsCode(t *testing.T) {
	root := t.TempDir()
	put := func(name, data string) { writeFile(t, filepath.Join(root, name), data) }
	const tokenRoute = "API_TOKEN_ROUTE = \"latest/api/token\"\n"
	put("usr/lib/python3.7/site-packages/cloud_init-19.3-py3.7.egg-info/PKG-INFO", metadata("cloud-init", "19.3"))
	put("usr/lib/python3.7/site-packages/cloudinit/sources/DataSourceEc2.py", tokenRoute)
	put("usr/lib/python3/dist-packages/cloud_init-19.2.egg-info/PKG-INFO", metadata("cloud-init", "19.2"))
	put("usr/lib/python3/dist-packages/cloudinit/sources/DataSourceEc2.py", "API_VERSION = '2016-09-02'\n")
	put("opt/ci/lib/cloudinit/version.py", "__VERSION__ = '18.5'\n_PACKAGED_VERSION = '18.5-1ubuntu1'\n")
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/usr/lib", "/opt"}})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsAt(rep)
	for path, want := range map[string]struct {
		kind     Kind
		evidence string
	}{
		"/usr/lib/python3.7/site-packages/cloud_init-19.3-py3.7.egg-info": {KindCurrentSDK, "its DataSourceEc2.py asks for a token"},
		"/usr/lib/python3/dist-packages/cloud_init-19.2.egg-info":         {KindOldSDK, "PKG-INFO Version"},
		"/opt/ci/lib/cloudinit": {KindOldSDK, "cloudinit/version.py __VERSION__ (packaged as 18.5-1ubuntu1)"},
	} {
		f := got[path]
		if f.Kind != want.kind || !strings.Contains(f.Evidence, want.evidence) || f.SDK != "cloud-init" || f.MinVersion != "19.4" {
			t.Errorf("%s: %+v, want %s with evidence %q", path, f, want.kind, want.evidence)
		}
	}
	if len(rep.Findings) != 3 {
		t.Errorf("want 3 findings:\n%s", describe(rep))
	}
}
