// Package scan finds installed software that cannot use IMDSv2, and
// configuration that lets AWS SDKs fall back to IMDSv1, so that an operator
// knows what breaks before setting HttpTokens=required. It backs
// `imdsv2 ready --scan`.
//
// # What it finds
//
// The software the auditor names as IMDS callers, each installed copy one
// finding, judged by the minimum-version table and the version order of
// internal/imdsfacts (which the auditor uses too; Finding.SDK is the
// auditor's product identifier):
//
//   - Python: botocore, boto3, the AWS CLI (awscli 1.x is v1; 2.x, as Debian
//     packages it, is v2) and cloud-init, from *.dist-info/METADATA,
//     *.egg-info (PKG-INFO) and EGG-INFO/PKG-INFO in site-packages and
//     dist-packages (Debian's python3-botocore, awscli and cloud-init install
//     an .egg-info or .dist-info there), and cloud-init's
//     cloudinit/version.py where it has no such metadata;
//   - Go: github.com/aws/aws-sdk-go and aws-sdk-go-v2, from the module list
//     embedded in executables (debug/buildinfo);
//   - Java: aws-java-sdk-core (and -bundle) and software.amazon.awssdk
//     sdk-core/auth/bundle, from jar file names, from
//     META-INF/maven/.../pom.properties inside jars, wars and ears (kept in
//     fat and shaded jars), from com/amazonaws/sdk/versionInfo.properties (kept
//     where shading drops the pom), and from jars nested in application
//     archives;
//   - JavaScript: aws-sdk (v2) and the IMDS client of v3,
//     @smithy/credential-provider-imds (what @aws-sdk/credential-providers and
//     the default credential chain call; npm installs it beside them), the
//     older @aws-sdk/credential-provider-imds and @aws-sdk/ec2-metadata-service,
//     from node_modules/<name>/package.json;
//   - Ruby: aws-sdk-core (gem specifications); PHP: aws/aws-sdk-php
//     (Composer's vendor/aws/aws-sdk-php/src/Sdk.php).
//
// A release older than the first that can use IMDSv2 is a blocker
// (KindOldSDK). A newer one is listed as information (KindCurrentSDK), with
// what keeps it from falling back to IMDSv1 when its token request fails
// (IMDS-FACTS.md section 2): for the JavaScript v3 client, whether its
// release reads AWS_EC2_METADATA_V1_DISABLED at all; for cloud-init, that it
// asks for a token only where it identifies the platform as AWS. A cloud-init
// older than the minimum whose cloudinit/sources/DataSourceEc2.py asks for a
// token (a distribution's backport) counts as one that can. Software whose
// version cannot be read is not reported.
//
// MetadataService.request(path) of aws-sdk v2 never sends a token, in any
// release. Where an application installed aws-sdk (app/node_modules/aws-sdk,
// not a dependency's copy or a global install), the scan searches the
// application's own source for it: the .js, .mjs, .cjs and .ts files under
// app/, outside node_modules and dot directories, at most 300 files of at
// most 512 KiB and 16 MiB in all, 6 levels deep and 20 000 directory entries
// (and 64 MiB for all applications of a scan). A file that uses
// MetadataService of aws-sdk, calls .request( and never mentions
// fetchMetadataToken or the x-aws-ec2-metadata-token header is a blocker
// (KindTokenlessAPI) at the line of the first call. It is a text search: a
// MetadataService made in one file and used in another, code outside app/
// (bundles elsewhere, other services), larger files and unusual spellings
// are missed, and a .request( of another object in such a file is taken for
// the call; the aws-sdk finding says what was searched.
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
