// Package scan finds installed software that cannot use IMDSv2, and
// configuration that lets AWS SDKs fall back to IMDSv1, so that an operator
// knows what breaks before setting HttpTokens=required. It backs
// `imdsv2 ready --scan`.
//
// # What it finds
//
// AWS SDKs and tools older than the first version with IMDSv2 support
// (severity blocker):
//
//   - Python: botocore < 1.13.25, boto3 < 1.12.6, AWS CLI v1 (awscli) <
//     1.16.289, from *.dist-info/METADATA, *.egg-info (PKG-INFO) and
//     EGG-INFO/PKG-INFO;
//   - Go: github.com/aws/aws-sdk-go < v1.25.38 and aws-sdk-go-v2 < v0.19.0,
//     from the module list embedded in executables (debug/buildinfo);
//   - Java: aws-java-sdk-core (and -bundle) < 1.11.678 and
//     software.amazon.awssdk sdk-core/auth < 2.10.21, from jar file names,
//     from META-INF/maven/.../pom.properties inside jars, wars and ears, and
//     from jars nested in application archives;
//   - JavaScript: aws-sdk < 2.722.0 (node_modules/aws-sdk/package.json);
//   - Ruby: aws-sdk-core < 3.79.0 (gem specifications); PHP: aws/aws-sdk-php <
//     3.147.7 (Composer's vendor/aws/aws-sdk-php/src/Sdk.php).
//
// The minimums and the order of versions (pre-releases, a leading "v", four
// parts) are those of internal/imdsfacts, which the auditor uses too.
//
// Settings in environment files (/etc/environment, /etc/default, shell
// profiles, systemd units and drop-ins, .env files) and AWS shared config
// files (~/.aws/config): AWS_EC2_METADATA_V1_DISABLED=false or
// ec2_metadata_v1_disabled = false explicitly allow the IMDSv1 fallback, and
// AWS_EC2_METADATA_DISABLED=true turns IMDS off for SDKs (severity warning);
// the V1_DISABLED settings set to true are reported as good news (severity
// info).
//
// A new enough SDK is not reported, and neither is software whose version
// cannot be read. Newer SDKs can still send IMDSv1 when their token request
// fails (IMDS-FACTS.md section 2); that is for the auditor to see, not a scan.
//
// # Bounds
//
// A scan reads only, and is bounded by Options.Timeout, Options.MaxFiles
// (files looked at) and Options.MaxBytes (bytes read); hitting a bound is
// reported in Report.Truncated, not as an error. It never enters /proc, /sys,
// /dev, or pseudo, network and FUSE file systems, does not follow symbolic
// links to directories, and never opens anything but regular files.
//
// # Output
//
// Report and Finding have stable JSON field names for scripts; WriteText
// renders the report for people, escaping hostile file names.
package scan
