package scan

import (
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// product is one AWS SDK or tool as it is installed: its entry in the table
// of internal/imdsfacts (the auditor names callers by the same entry), the
// package that carries it, and the changes to make.
type product struct {
	sdk  imdsfacts.SDK
	name string // for people; sdk.Name when empty
	pkg  string // Package URL without version
	// goModule: versions (and so the minimum) are written with a leading "v".
	goModule bool
	fix      string // for a release older than the minimum
	note     string // optional extra sentence for Why of an old release
	// current replaces, for a release that can use IMDSv2, the usual Why and
	// Fix (fall back only after a failed token request; switch it off).
	current *advice
}

type advice struct{ why, fix string }

func (p product) displayName() string {
	if p.name != "" {
		return p.name
	}
	return p.sdk.Name
}

// minVersion is the first release that can use IMDSv2, spelled as the
// package's ecosystem does, or imdsfacts.AllReleases.
func (p product) minVersion() string {
	if p.goModule && p.sdk.MinIMDSv2 != imdsfacts.AllReleases {
		return "v" + p.sdk.MinIMDSv2
	}
	return p.sdk.MinIMDSv2
}

// v1Switch is the change that keeps a release that can use IMDSv2 from
// falling back to IMDSv1; fallbackWhy says when it falls back.
const (
	v1Switch = "set " + envV1Disabled + "=true in its environment (or " + cfgV1Disabled + " = true in its AWS config " +
		"profile) so that a failed token request is an error instead of an IMDSv1 call (releases from late 2023 " +
		"on read it; upgrade older ones), and for containers set HttpPutResponseHopLimit to 2"
	fallbackWhy = "It asks for a token first and sends IMDSv1 only when that request fails (hop limit 1 behind " +
		"a container bridge, a proxy, 403/404/405)."
)

// The products this package recognises. The fixes name the usual way to
// upgrade; software that bundles an SDK has to be upgraded by its vendor.
var (
	prodBotocore = product{
		sdk: imdsfacts.Botocore, pkg: "pkg:pypi/botocore",
		fix: "upgrade botocore to " + imdsfacts.Botocore.MinIMDSv2 + " or later (pip install --upgrade botocore, or the OS package that installed it); if an application bundles it, upgrade that application",
	}
	prodBoto3 = product{
		sdk: imdsfacts.Boto3, pkg: "pkg:pypi/boto3",
		fix: "upgrade boto3 to " + imdsfacts.Boto3.MinIMDSv2 + " or later together with botocore (pip install --upgrade boto3 botocore, or the OS package that installed it)",
	}
	prodAWSCLIv1 = product{
		sdk: imdsfacts.AWSCLIv1, pkg: "pkg:pypi/awscli",
		fix: "upgrade the AWS CLI v1 to " + imdsfacts.AWSCLIv1.MinIMDSv2 + " or later (pip install --upgrade awscli, or the OS package), or replace it with AWS CLI v2",
	}
	// prodAWSCLIv2 is the awscli distribution at major version 2, as Debian
	// packages it (awscli 2.9.19 in Debian 12).
	prodAWSCLIv2  = product{sdk: imdsfacts.AWSCLIv2, pkg: "pkg:pypi/awscli"}
	prodCloudInit = product{
		sdk: imdsfacts.CloudInit, pkg: "pkg:pypi/cloud-init",
		fix: "upgrade cloud-init to " + imdsfacts.CloudInit.MinIMDSv2 + " or later (the distribution's package), or move to a newer image",
		current: &advice{
			why: "It asks for a token only when it has identified the platform as AWS (from DMI: `cloud-id` prints aws); " +
				"elsewhere its whole metadata crawl is IMDSv1, and its crawl requests carry python-requests' User-Agent, not its own.",
			fix: "nothing to change where `cloud-id` prints aws; if the audit sees cloud-init send IMDSv1, " +
				"look in /run/cloud-init/ds-identify.log for why it did not identify AWS",
		},
	}
	prodGoV1 = product{
		sdk: imdsfacts.GoV1, pkg: "pkg:golang/github.com/aws/aws-sdk-go", goModule: true,
		fix: "rebuild the program with github.com/aws/aws-sdk-go v" + imdsfacts.GoV1.MinIMDSv2 + " or later (go get github.com/aws/aws-sdk-go@latest), or get a newer build from its vendor; v1 of the Go SDK is out of support, so plan the move to aws-sdk-go-v2",
	}
	prodGoV2 = product{
		sdk: imdsfacts.GoV2, pkg: "pkg:golang/github.com/aws/aws-sdk-go-v2", goModule: true,
		fix: "rebuild the program with a current github.com/aws/aws-sdk-go-v2 (v1.x), or get a newer build from its vendor",
		current: &advice{
			why: fallbackWhy,
			fix: v1Switch + "; in the program's code, imds.Options{EnableFallback: aws.FalseTernary} does the same",
		},
	}
	prodJavaV1 = product{
		sdk: imdsfacts.JavaV1, pkg: "pkg:maven/com.amazonaws/aws-java-sdk-core",
		fix: "raise com.amazonaws:aws-java-sdk-core (usually through aws-java-sdk-bom) to " + imdsfacts.JavaV1.MinIMDSv2 + " or later and redeploy, or get a newer build of the application from its vendor",
	}
	prodJavaV1Bundle = product{
		sdk: imdsfacts.JavaV1, name: imdsfacts.JavaV1.Name + " (bundle)", pkg: "pkg:maven/com.amazonaws/aws-java-sdk-bundle",
		fix: "raise com.amazonaws:aws-java-sdk-bundle to " + imdsfacts.JavaV1.MinIMDSv2 + " or later (for Hadoop, a hadoop-aws release that depends on it) and redeploy",
	}
	prodJavaV2 = product{
		sdk: imdsfacts.JavaV2, pkg: "pkg:maven/software.amazon.awssdk/sdk-core",
		fix: "raise software.amazon.awssdk (usually through the bom artifact) to " + imdsfacts.JavaV2.MinIMDSv2 + " or later and redeploy, or get a newer build of the application from its vendor",
	}
	prodJSv2 = product{
		sdk: imdsfacts.JavaScriptV2, pkg: "pkg:npm/aws-sdk",
		fix:  "npm install aws-sdk@^" + imdsfacts.JavaScriptV2.MinIMDSv2 + " (better: move to the AWS SDK for JavaScript v3, @aws-sdk/*) and redeploy",
		note: " Some earlier v2 releases used tokens for instance-profile credentials only, so their other metadata calls are still IMDSv1.",
		current: &advice{
			why: fallbackWhy + " That holds for its credential and region lookups only: MetadataService.request(path) " +
				"never sends a token, in any v2 release.",
			fix: v1Switch + "; where the application calls MetadataService.request, pass a token (see the tokenless-api finding, if any)",
		},
	}
	// prodJSv3 is the IMDS client of the AWS SDK for JavaScript v3, which
	// @aws-sdk/credential-providers (fromInstanceMetadata) and
	// @aws-sdk/credential-provider-node use; see jsV3Packages.
	prodJSv3 = product{
		sdk: imdsfacts.JavaScriptV3, name: imdsfacts.JavaScriptV3.Name + ", @smithy/credential-provider-imds",
		pkg: "pkg:npm/%40smithy/credential-provider-imds",
		current: &advice{
			why: fallbackWhy + " Its requests carry no User-Agent.",
			fix: v1Switch,
		},
	}
	prodJSv3Old = product{
		sdk: imdsfacts.JavaScriptV3, name: imdsfacts.JavaScriptV3.Name + ", @aws-sdk/credential-provider-imds",
		pkg: "pkg:npm/%40aws-sdk/credential-provider-imds",
		current: &advice{
			why: fallbackWhy + " Its requests carry no User-Agent, and no setting turns the fallback off in this package.",
			fix: "update the application's @aws-sdk/* packages (npm update) until its tree holds @smithy/credential-provider-imds " +
				imdsfacts.SmithyIMDSV1Switch + " or later, then " + v1Switch,
		},
	}
	prodJSv3MetadataService = product{
		sdk: imdsfacts.JavaScriptV3, name: imdsfacts.JavaScriptV3.Name + ", @aws-sdk/ec2-metadata-service",
		pkg: "pkg:npm/%40aws-sdk/ec2-metadata-service",
		current: &advice{
			why: "Its MetadataService asks for a token first unless the application set disableFetchToken: true.",
			fix: "make sure the application does not pass disableFetchToken: true",
		},
	}
	prodRuby = product{
		sdk: imdsfacts.Ruby, pkg: "pkg:gem/aws-sdk-core",
		fix: "bundle update aws-sdk-core (or gem update aws-sdk-core) to " + imdsfacts.Ruby.MinIMDSv2 + " or later",
	}
	prodPHP = product{
		sdk: imdsfacts.PHP, pkg: "pkg:composer/aws/aws-sdk-php",
		fix: "composer update aws/aws-sdk-php to " + imdsfacts.PHP.MinIMDSv2 + " or later",
	}
)

// allProducts lists every product, for tests.
var allProducts = []product{prodBotocore, prodBoto3, prodAWSCLIv1, prodAWSCLIv2, prodCloudInit, prodGoV1, prodGoV2,
	prodJavaV1, prodJavaV1Bundle, prodJavaV2, prodJSv2, prodJSv3, prodJSv3Old, prodJSv3MetadataService, prodRuby, prodPHP}

// checkVersion judges an installed release found at path: a blocker
// (KindOldSDK) when it is older than p's minimum, an inventory line
// (KindCurrentSDK) when it can use IMDSv2. ok is false when found is not a
// version at all: no verdict is better than a guess.
func checkVersion(p product, path, found, evidence string) (Finding, bool) {
	min := p.minVersion()
	older, ok := false, true
	if min == imdsfacts.AllReleases {
		_, err := imdsfacts.ParseVersion(found)
		ok = err == nil
	} else {
		older, ok = imdsfacts.OlderThan(found, min)
	}
	if !ok {
		return Finding{}, false
	}
	f := Finding{
		Path:       path,
		Product:    p.displayName(),
		SDK:        p.sdk.ID,
		Package:    p.pkg,
		Version:    sanitize(found, imdsfacts.MaxVersionLen),
		MinVersion: min,
		Evidence:   sanitize(evidence, 200),
	}
	if older {
		f.Kind, f.Severity = KindOldSDK, SeverityBlocker
		// Product, Version and MinVersion say what is old; Summary puts them
		// in words, so Why gives only the consequence.
		f.Why = "Its instance metadata requests (instance-profile credentials, region) are tokenless IMDSv1 " +
			"requests, which fail once the instance requires IMDSv2 (HttpTokens=required)." + p.note
		f.Fix = p.fix
		return f, true
	}
	p.canUse(&f)
	return f, true
}

// canUse makes f the finding of a release of p that can use IMDSv2.
func (p product) canUse(f *Finding) {
	f.Kind, f.Severity = KindCurrentSDK, SeverityInfo
	f.Why, f.Fix = fallbackWhy, v1Switch
	if p.current != nil {
		f.Why, f.Fix = p.current.why, p.current.fix
	}
}

// canUse words MinVersion for a release that can use IMDSv2.
func canUse(min string) string {
	if min == imdsfacts.AllReleases {
		return "every release can"
	}
	return "since " + strings.TrimSpace(min)
}
