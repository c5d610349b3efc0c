package imdsfacts

// SDK is an AWS SDK or tool and the first release of it that can use IMDSv2.
type SDK struct {
	// ID is a stable identifier, the one the auditor reports as a caller's
	// product ("aws-sdk-go", "botocore").
	ID string
	// Name is for people.
	Name string
	// MinIMDSv2 is the first release that can use IMDSv2, as the SDK spells its
	// versions (without the "v" Go modules put in front), or AllReleases.
	MinIMDSv2 string
	// MinV1Switch is the first release that honours AWS_EC2_METADATA_V1_DISABLED
	// and ec2_metadata_v1_disabled (the switch that turns the IMDSv1 fallback
	// off), from the SDK's changelog; "" when not known or not comparable with
	// the version its User-Agent carries.
	MinV1Switch string
}

// AllReleases is SDK.MinIMDSv2 of an SDK whose every release can use IMDSv2.
const AllReleases = "any"

// The SDKs and tools, with the minimums of AWS's "use a supported SDK" page
// (IMDS-FACTS.md section 2). A release at or above the minimum can use
// IMDSv2; it may still fall back to IMDSv1 when its token request fails.
var (
	// The switch came in November 2023: the CLI's and botocore's .changes
	// (botocore 1.32.4, CLI v1 1.30.4 which pins it, CLI v2 2.15.1) and
	// aws-sdk-go's CHANGELOG (v1.47.2). Go v2's User-Agent carries the core
	// module's version, while the switch is config's (v1.22.0) and the
	// EnableFallback option feature/ec2/imds's (v1.13.0): see GoV2Switch.
	AWSCLIv1 = SDK{ID: "aws-cli-v1", Name: "AWS CLI v1", MinIMDSv2: "1.16.289", MinV1Switch: "1.30.4"}
	AWSCLIv2 = SDK{ID: "aws-cli-v2", Name: "AWS CLI v2", MinIMDSv2: AllReleases, MinV1Switch: "2.15.1"}
	// Botocore makes the IMDS calls of boto3 and the AWS CLI v1.
	Botocore = SDK{ID: "botocore", Name: "botocore", MinIMDSv2: "1.13.25", MinV1Switch: "1.32.4"}
	Boto3    = SDK{ID: "boto3", Name: "boto3", MinIMDSv2: "1.12.6"}
	GoV1     = SDK{ID: "aws-sdk-go", Name: "AWS SDK for Go v1", MinIMDSv2: "1.25.38", MinV1Switch: "1.47.2"}
	GoV2     = SDK{ID: "aws-sdk-go-v2", Name: "AWS SDK for Go v2", MinIMDSv2: "0.19.0"}
	JavaV1   = SDK{ID: "aws-sdk-java-v1", Name: "AWS SDK for Java v1", MinIMDSv2: "1.11.678"}
	JavaV2   = SDK{ID: "aws-sdk-java-v2", Name: "AWS SDK for Java v2", MinIMDSv2: "2.10.21"}
	// JavaScriptV2's minimum is where every metadata call of the SDK's own
	// credential and region code uses a token; MetadataService.request(path)
	// never sends one, in any v2 release.
	JavaScriptV2 = SDK{ID: "aws-sdk-js-v2", Name: "AWS SDK for JavaScript v2", MinIMDSv2: "2.722.0"}
	JavaScriptV3 = SDK{ID: "aws-sdk-js-v3", Name: "AWS SDK for JavaScript v3", MinIMDSv2: AllReleases}
	DotNet       = SDK{ID: "aws-sdk-dotnet", Name: "AWS SDK for .NET", MinIMDSv2: "3.3.634.1"}
	CPP          = SDK{ID: "aws-sdk-cpp", Name: "AWS SDK for C++", MinIMDSv2: "1.7.229"}
	PHP          = SDK{ID: "aws-sdk-php", Name: "AWS SDK for PHP", MinIMDSv2: "3.147.7"}
	Ruby         = SDK{ID: "aws-sdk-ruby", Name: "AWS SDK for Ruby", MinIMDSv2: "3.79.0"}
	PowerShell   = SDK{ID: "aws-tools-powershell", Name: "AWS Tools for PowerShell", MinIMDSv2: "4.0.1.0"}
	// Rust never sends IMDSv1 at all.
	Rust = SDK{ID: "aws-sdk-rust", Name: "AWS SDK for Rust", MinIMDSv2: AllReleases}
	// CloudInit is not an SDK but an agent of nearly every image: it asks for
	// a token since 19.4 ("ec2: Add support for AWS IMDS v2", its ChangeLog),
	// and then only when it has identified the platform as AWS (from DMI);
	// otherwise its whole crawl is IMDSv1 (seen with 22.4.2, Debian 12).
	CloudInit = SDK{ID: "cloud-init", Name: "cloud-init", MinIMDSv2: "19.4"}
)

// SmithyIMDSV1Switch is the first release of @smithy/credential-provider-imds
// (the IMDS client of the AWS SDK for JavaScript v3) that reads
// AWS_EC2_METADATA_V1_DISABLED and ec2_metadata_v1_disabled; older ones, and
// every @aws-sdk/credential-provider-imds (3.374.0 wraps @smithy 1.x), always
// fall back to IMDSv1 after a failed token request. Read from the published
// packages: 2.0.18 lacks the setting, 2.1.0 has it.
const SmithyIMDSV1Switch = "2.1.0"

// JavaScriptV2TokenAPI is the first aws-sdk (JavaScript v2) release whose
// MetadataService has fetchMetadataToken (2.574.0 lacks it): the call that
// gets the token MetadataService.request(path, {headers}) needs, since that
// API never fetches one itself. It is also the first whose
// EC2MetadataCredentials fetches a token (captured: 2.574.0 does not).
const JavaScriptV2TokenAPI = "2.575.0"

// GoV2Switch says where the AWS SDK for Go v2 has its IMDSv1 switches.
const GoV2Switch = "in code: imds.Options{EnableFallback: aws.FalseTernary} (feature/ec2/imds v1.13.0 or later); " +
	"the variable and the shared config setting need config v1.22.0 or later"

// SDKs lists every SDK (and cloud-init) above.
var SDKs = []SDK{AWSCLIv1, AWSCLIv2, Botocore, Boto3, GoV1, GoV2, JavaV1, JavaV2, JavaScriptV2,
	JavaScriptV3, DotNet, CPP, PHP, Ruby, PowerShell, Rust, CloudInit}
