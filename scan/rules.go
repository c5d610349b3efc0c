package scan

import "github.com/imdsv2/imdsv2/internal/imdsfacts"

// product is one AWS SDK or tool as it is installed, with the first version
// that can use IMDSv2 (imdsfacts, spelled as the package's ecosystem does).
type product struct {
	name       string // human name
	pkg        string // Package URL without version
	minVersion string
	fix        string
	note       string // optional extra sentence for Why
}

// The products this package recognises. The fixes name the usual way to
// upgrade; software that bundles an SDK has to be upgraded by its vendor.
var (
	prodBotocore = product{
		name: "botocore", pkg: "pkg:pypi/botocore", minVersion: imdsfacts.Botocore.MinIMDSv2,
		fix: "upgrade botocore to " + imdsfacts.Botocore.MinIMDSv2 + " or later (pip install --upgrade botocore, or the OS package that installed it); if an application bundles it, upgrade that application",
	}
	prodBoto3 = product{
		name: "boto3", pkg: "pkg:pypi/boto3", minVersion: imdsfacts.Boto3.MinIMDSv2,
		fix: "upgrade boto3 to " + imdsfacts.Boto3.MinIMDSv2 + " or later together with botocore (pip install --upgrade boto3 botocore, or the OS package that installed it)",
	}
	prodAWSCLIv1 = product{
		name: "AWS CLI v1", pkg: "pkg:pypi/awscli", minVersion: imdsfacts.AWSCLIv1.MinIMDSv2,
		fix: "upgrade the AWS CLI v1 to " + imdsfacts.AWSCLIv1.MinIMDSv2 + " or later (pip install --upgrade awscli, or the OS package), or replace it with AWS CLI v2",
	}
	prodGoV1 = product{
		name: "AWS SDK for Go v1", pkg: "pkg:golang/github.com/aws/aws-sdk-go", minVersion: "v" + imdsfacts.GoV1.MinIMDSv2,
		fix: "rebuild the program with github.com/aws/aws-sdk-go v" + imdsfacts.GoV1.MinIMDSv2 + " or later (go get github.com/aws/aws-sdk-go@latest), or get a newer build from its vendor; v1 of the Go SDK is out of support, so plan the move to aws-sdk-go-v2",
	}
	prodGoV2 = product{
		name: "AWS SDK for Go v2", pkg: "pkg:golang/github.com/aws/aws-sdk-go-v2", minVersion: "v" + imdsfacts.GoV2.MinIMDSv2,
		fix: "rebuild the program with a current github.com/aws/aws-sdk-go-v2 (v1.x), or get a newer build from its vendor",
	}
	prodJavaV1 = product{
		name: "AWS SDK for Java 1.x", pkg: "pkg:maven/com.amazonaws/aws-java-sdk-core", minVersion: imdsfacts.JavaV1.MinIMDSv2,
		fix: "raise com.amazonaws:aws-java-sdk-core (usually through aws-java-sdk-bom) to " + imdsfacts.JavaV1.MinIMDSv2 + " or later and redeploy, or get a newer build of the application from its vendor",
	}
	prodJavaV1Bundle = product{
		name: "AWS SDK for Java 1.x (bundle)", pkg: "pkg:maven/com.amazonaws/aws-java-sdk-bundle", minVersion: imdsfacts.JavaV1.MinIMDSv2,
		fix: "raise com.amazonaws:aws-java-sdk-bundle to " + imdsfacts.JavaV1.MinIMDSv2 + " or later (for Hadoop, a hadoop-aws release that depends on it) and redeploy",
	}
	prodJavaV2 = product{
		name: "AWS SDK for Java 2.x", pkg: "pkg:maven/software.amazon.awssdk/sdk-core", minVersion: imdsfacts.JavaV2.MinIMDSv2,
		fix: "raise software.amazon.awssdk (usually through the bom artifact) to " + imdsfacts.JavaV2.MinIMDSv2 + " or later and redeploy, or get a newer build of the application from its vendor",
	}
	prodJSv2 = product{
		name: "AWS SDK for JavaScript v2", pkg: "pkg:npm/aws-sdk", minVersion: imdsfacts.JavaScriptV2.MinIMDSv2,
		fix:  "npm install aws-sdk@^" + imdsfacts.JavaScriptV2.MinIMDSv2 + " (better: move to the AWS SDK for JavaScript v3, @aws-sdk/*) and redeploy",
		note: " Some earlier v2 releases used tokens for instance-profile credentials only, so their other metadata calls are still IMDSv1.",
	}
	prodRuby = product{
		name: "AWS SDK for Ruby", pkg: "pkg:gem/aws-sdk-core", minVersion: imdsfacts.Ruby.MinIMDSv2,
		fix: "bundle update aws-sdk-core (or gem update aws-sdk-core) to " + imdsfacts.Ruby.MinIMDSv2 + " or later",
	}
	prodPHP = product{
		name: "AWS SDK for PHP", pkg: "pkg:composer/aws/aws-sdk-php", minVersion: imdsfacts.PHP.MinIMDSv2,
		fix: "composer update aws/aws-sdk-php to " + imdsfacts.PHP.MinIMDSv2 + " or later",
	}
)

// allProducts lists every product, for tests.
var allProducts = []product{prodBotocore, prodBoto3, prodAWSCLIv1, prodGoV1, prodGoV2, prodJavaV1,
	prodJavaV1Bundle, prodJavaV2, prodJSv2, prodRuby, prodPHP}

// checkVersion returns a blocker finding when found is older than p's
// minimum, and ok=false when found is newer, or not a version at all (no
// verdict is better than a guess here).
func checkVersion(p product, path, found, evidence string) (Finding, bool) {
	older, ok := imdsfacts.OlderThan(found, p.minVersion)
	if !ok || !older {
		return Finding{}, false
	}
	return Finding{
		Kind:       KindOldSDK,
		Severity:   SeverityBlocker,
		Path:       path,
		Product:    p.name,
		Package:    p.pkg,
		Version:    sanitize(found, imdsfacts.MaxVersionLen),
		MinVersion: p.minVersion,
		Evidence:   sanitize(evidence, 200),
		// Product, Version and MinVersion say what is old; Summary puts them
		// in words, so Why gives only the consequence.
		Why: "Its instance metadata requests (instance-profile credentials, region) are tokenless IMDSv1 " +
			"requests, which fail once the instance requires IMDSv2 (HttpTokens=required)." + p.note,
		Fix: p.fix,
	}, true
}
