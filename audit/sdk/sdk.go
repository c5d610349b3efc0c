// Package sdk names the software behind an IMDS request from its User-Agent
// header and says what to do about its IMDSv1 use: the minimum version that
// can use IMDSv2 (IMDS-FACTS section 2), whether the seen version is below
// it, and the switch that turns the IMDSv1 fallback off.
package sdk

import (
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Kind groups products by what the fix looks like.
type Kind string

// Kinds.
const (
	KindAWSSDK  Kind = "aws-sdk"      // an AWS SDK, CLI or PowerShell tools: upgrade and configure
	KindAgent   Kind = "agent"        // a distribution agent such as cloud-init: upgrade the image
	KindScript  Kind = "script"       // curl, wget, PowerShell cmdlets: fix the script
	KindLibrary Kind = "http-library" // a generic HTTP client inside some program: fix the program
	KindUnknown Kind = "unknown"
)

// DisableV1Fallback is the setting that stops current AWS SDKs and the CLI
// from falling back to IMDSv1 when their token request fails.
const DisableV1Fallback = "AWS_EC2_METADATA_V1_DISABLED=true (environment) or ec2_metadata_v1_disabled = true (shared config file)"

// Info describes the sender of a request as told by its User-Agent.
type Info struct {
	// Product is a stable identifier such as "aws-cli-v1", "botocore",
	// "aws-sdk-go-v2", "curl", "go-net-http", "unknown" or "none".
	Product string `json:"product"`
	// Name is for people, e.g. "AWS SDK for Java v1".
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Kind    Kind   `json:"kind"`
	// MinIMDSv2 is the first version able to use IMDSv2: "any" when every
	// release can, "" when no minimum applies or it is not known. Versions
	// compare as package imdsfacts describes.
	MinIMDSv2 string `json:"min_imdsv2_version,omitempty"`
	// BelowMin says Version is older than MinIMDSv2: this caller cannot use
	// IMDSv2 at all until upgraded.
	BelowMin bool `json:"below_min_version,omitempty"`
	// DisableV1 is the switch that turns the IMDSv1 fallback off, for
	// products that have one.
	DisableV1 string `json:"disable_v1_fallback,omitempty"`
	// Fingerprint, for a request without a User-Agent, names the fingerprint that identified
	// its sender by the request's shape (fingerprint.go).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Headers is, for a request without a User-Agent, its shape: header names in order and
	// case, with the values that tell clients apart (Shape.String).
	Headers string `json:"header_shape,omitempty"`
	// Advice says what to do when this sender is seen using IMDSv1.
	Advice string `json:"advice"`
}

// rule recognises one product by a User-Agent token prefix.
type rule struct {
	token   string // product token before "/", compared without regard to case
	product string
	name    string
	kind    Kind
	min     string
	// major, when non-zero, restricts the rule to versions of that major.
	major int
	// prefix makes token match any product token that starts with it.
	prefix bool
}

// rules are tried in order; the first whose token is present wins. Tokens
// that occur inside other products' User-Agents (botocore inside the CLI's,
// aws-sdk-dotnet inside PowerShell's) come after those products.
var rules = []rule{
	{token: "AWSPowerShell", product: "aws-tools-powershell", name: "AWS Tools for PowerShell", kind: KindAWSSDK, min: imdsfacts.PowerShell.MinIMDSv2},
	{token: "AWSPowerShell.NetCore", product: "aws-tools-powershell", name: "AWS Tools for PowerShell", kind: KindAWSSDK, min: imdsfacts.PowerShell.MinIMDSv2},
	{token: "AWS.Tools.Common", product: "aws-tools-powershell", name: "AWS Tools for PowerShell", kind: KindAWSSDK, min: imdsfacts.PowerShell.MinIMDSv2},
	{token: "aws-cli", major: 1, product: "aws-cli-v1", name: "AWS CLI v1", kind: KindAWSSDK, min: imdsfacts.AWSCLIv1.MinIMDSv2},
	{token: "aws-cli", major: 2, product: "aws-cli-v2", name: "AWS CLI v2", kind: KindAWSSDK, min: imdsfacts.AWSCLIv2.MinIMDSv2},
	{token: "aws-sdk-go-v2", product: "aws-sdk-go-v2", name: "AWS SDK for Go v2", kind: KindAWSSDK, min: imdsfacts.GoV2.MinIMDSv2},
	{token: "aws-sdk-go", product: "aws-sdk-go", name: "AWS SDK for Go v1", kind: KindAWSSDK, min: imdsfacts.GoV1.MinIMDSv2},
	{token: "aws-sdk-java-v2", product: "aws-sdk-java-v2", name: "AWS SDK for Java v2", kind: KindAWSSDK, min: imdsfacts.JavaV2.MinIMDSv2},
	{token: "aws-sdk-java", major: 1, product: "aws-sdk-java-v1", name: "AWS SDK for Java v1", kind: KindAWSSDK, min: imdsfacts.JavaV1.MinIMDSv2},
	{token: "aws-sdk-java", major: 2, product: "aws-sdk-java-v2", name: "AWS SDK for Java v2", kind: KindAWSSDK, min: imdsfacts.JavaV2.MinIMDSv2},
	{token: "aws-sdk-js", major: 2, product: "aws-sdk-js-v2", name: "AWS SDK for JavaScript v2", kind: KindAWSSDK, min: imdsfacts.JavaScriptV2.MinIMDSv2},
	{token: "aws-sdk-nodejs", major: 2, product: "aws-sdk-js-v2", name: "AWS SDK for JavaScript v2", kind: KindAWSSDK, min: imdsfacts.JavaScriptV2.MinIMDSv2},
	{token: "aws-sdk-js", major: 3, product: "aws-sdk-js-v3", name: "AWS SDK for JavaScript v3", kind: KindAWSSDK, min: imdsfacts.JavaScriptV3.MinIMDSv2},
	{token: "aws-sdk-js-v3", prefix: true, product: "aws-sdk-js-v3", name: "AWS SDK for JavaScript v3", kind: KindAWSSDK, min: imdsfacts.JavaScriptV3.MinIMDSv2},
	{token: "aws-sdk-nodejs-v3", prefix: true, product: "aws-sdk-js-v3", name: "AWS SDK for JavaScript v3", kind: KindAWSSDK, min: imdsfacts.JavaScriptV3.MinIMDSv2},
	{token: "aws-sdk-dotnet-core", product: "aws-sdk-dotnet", name: "AWS SDK for .NET", kind: KindAWSSDK, min: imdsfacts.DotNet.MinIMDSv2},
	{token: "aws-sdk-dotnet", prefix: true, product: "aws-sdk-dotnet", name: "AWS SDK for .NET", kind: KindAWSSDK, min: imdsfacts.DotNet.MinIMDSv2},
	{token: "aws-sdk-ruby3", product: "aws-sdk-ruby", name: "AWS SDK for Ruby v3", kind: KindAWSSDK, min: imdsfacts.Ruby.MinIMDSv2},
	{token: "aws-sdk-ruby2", product: "aws-sdk-ruby", name: "AWS SDK for Ruby v2", kind: KindAWSSDK, min: imdsfacts.Ruby.MinIMDSv2},
	{token: "aws-sdk-php", product: "aws-sdk-php", name: "AWS SDK for PHP", kind: KindAWSSDK, min: imdsfacts.PHP.MinIMDSv2},
	{token: "aws-sdk-cpp", product: "aws-sdk-cpp", name: "AWS SDK for C++", kind: KindAWSSDK, min: imdsfacts.CPP.MinIMDSv2},
	{token: "aws-sdk-rust", product: "aws-sdk-rust", name: "AWS SDK for Rust", kind: KindAWSSDK, min: imdsfacts.Rust.MinIMDSv2},
	// botocore makes the IMDS calls for boto3, so its version decides.
	{token: "botocore", product: "botocore", name: "boto3/botocore (Python)", kind: KindAWSSDK, min: imdsfacts.Botocore.MinIMDSv2},
	{token: "Boto3", product: "boto3", name: "boto3 (Python)", kind: KindAWSSDK, min: imdsfacts.Boto3.MinIMDSv2},
	{token: "Cloud-Init", product: "cloud-init", name: "cloud-init", kind: KindAgent, min: imdsfacts.CloudInit.MinIMDSv2},
	{token: "curl", product: "curl", name: "curl", kind: KindScript},
	{token: "Wget", product: "wget", name: "wget", kind: KindScript},
	{token: "WindowsPowerShell", product: "powershell", name: "PowerShell (Invoke-RestMethod)", kind: KindScript},
	{token: "PowerShell", product: "powershell", name: "PowerShell (Invoke-RestMethod)", kind: KindScript},
	{token: "Python-urllib", product: "python-urllib", name: "Python urllib", kind: KindLibrary},
	{token: "python-requests", product: "python-requests", name: "Python requests", kind: KindLibrary},
	{token: "Go-http-client", product: "go-net-http", name: "Go net/http", kind: KindLibrary},
	{token: "Apache-HttpClient", product: "apache-httpclient", name: "Apache HttpClient (Java)", kind: KindLibrary},
	{token: "okhttp", product: "okhttp", name: "OkHttp", kind: KindLibrary},
	{token: "Java", product: "java-http", name: "Java HttpURLConnection", kind: KindLibrary},
	{token: "node-fetch", product: "node-fetch", name: "node-fetch", kind: KindLibrary},
	{token: "axios", product: "axios", name: "axios (Node.js)", kind: KindLibrary},
	{token: "libwww-perl", product: "perl-lwp", name: "Perl LWP", kind: KindLibrary},
	{token: "Ruby", product: "ruby-net-http", name: "Ruby Net::HTTP", kind: KindLibrary},
}

// Identify names the product behind a User-Agent. It never fails: an empty
// or unknown User-Agent gives Product "none" or "unknown".
func Identify(userAgent string) Info {
	if len(userAgent) > 1024 {
		userAgent = userAgent[:1024]
	}
	toks := tokens(userAgent)
	for _, r := range rules {
		for _, t := range toks {
			if !r.matches(t.name) {
				continue
			}
			if r.major != 0 && major(t.version) != r.major {
				continue
			}
			return r.info(t.version)
		}
	}
	if strings.TrimSpace(userAgent) == "" {
		return Info{Product: "none", Name: "no User-Agent", Kind: KindUnknown,
			Advice: "the request carried no User-Agent and its header shape matches no known client: find the program " +
				"by its command line; if it never asks for a token, make it fetch one first (PUT /latest/api/token)"}
	}
	name := "unknown"
	if len(toks) > 0 {
		name = toks[0].name
	}
	return Info{Product: "unknown", Name: name, Kind: KindUnknown,
		Advice: "unrecognised client: find the program by its command line and make it fetch an IMDSv2 token first (PUT /latest/api/token)"}
}

func (r rule) matches(name string) bool {
	if r.prefix {
		return len(name) >= len(r.token) && strings.EqualFold(name[:len(r.token)], r.token)
	}
	return strings.EqualFold(name, r.token)
}

func (r rule) info(version string) Info {
	i := Info{Product: r.product, Name: r.name, Version: version, Kind: r.kind, MinIMDSv2: r.min}
	switch r.kind {
	case KindAWSSDK:
		i.DisableV1 = v1Switch(r.product, version)
		older, known := imdsfacts.OlderThan(version, r.min)
		switch {
		case r.min == imdsfacts.AllReleases:
			i.Advice = "every " + r.name + " release can use IMDSv2; it sends IMDSv1 only after its token request failed (hop limit too low, proxy, 403/404/405): fix that, then set " + i.DisableV1
		case !known:
			// No version, or one that is not a version: say so rather than guess.
			i.Advice = "version unknown: make sure " + r.name + " is " + r.min + " or later, then set " + DisableV1Fallback
		case older:
			i.BelowMin = true
			target, why := upgradeTarget(r.product, r.min)
			i.Advice = "upgrade " + r.name + " from " + version + " to " + target + " or later (" + why + "), then set " + DisableV1Fallback
		default:
			i.Advice = r.name + " " + version + " can use IMDSv2; it sends IMDSv1 only after its token request failed (hop limit too low, proxy, 403/404/405): fix that, then set " + i.DisableV1
		}
		if r.product == imdsfacts.JavaScriptV2.ID {
			i.Advice = jsV2Advice(version)
		}
		if r.product == "aws-sdk-rust" {
			i.DisableV1 = ""
			i.Advice = "the AWS SDK for Rust never sends IMDSv1: this request came from something else in the process"
		}
	case KindAgent:
		i.Advice = "an old " + r.name + " sends IMDSv1: update it (or move to a newer image) before enforcing IMDSv2"
		if older, known := imdsfacts.OlderThan(version, r.min); r.min != "" && known && older {
			i.BelowMin = true
			i.Advice = "upgrade " + r.name + " from " + version + " to " + r.min + " or later (older releases never use an " +
				"IMDSv2 token), or move to a newer image"
		} else if known {
			i.Advice = r.name + " " + version + " uses IMDSv2 once it has identified the platform as AWS, and IMDSv1 " +
				"when it took the machine for another EC2-compatible cloud"
		}
	case KindScript:
		i.Advice = "a script reads metadata without a token: fetch one first with PUT /latest/api/token " +
			"(header X-aws-ec2-metadata-token-ttl-seconds: 21600) and send it as X-aws-ec2-metadata-token, or use `imdsv2 get`"
	case KindLibrary:
		i.Advice = "a program calls IMDS with a plain HTTP client (" + r.name + "): find it by its command line and make it " +
			"fetch a token first (PUT /latest/api/token), or switch it to an AWS SDK"
	}
	return i
}

// JSMetadataServiceFix is what to call instead of the JavaScript v2 SDK's tokenless API.
const JSMetadataServiceFix = "call new AWS.MetadataService().fetchMetadataToken(cb) first and pass the token as " +
	"request(path, {headers: {'x-aws-ec2-metadata-token': token}}, cb), or move to the v3 SDK " +
	"(@aws-sdk/credential-providers fromInstanceMetadata for credentials, @aws-sdk/ec2-metadata-service for other paths)"

// jsV2Advice is the advice for a request that carries the JavaScript v2 SDK's User-Agent. Its
// token path sends none (captures 2.575.0 to 2.1693.0), so such a request comes from
// AWS.MetadataService.request(path), which never sends a token, from EC2MetadataCredentials
// before 2.575.0, or from its IMDSv1 fallback after a failed token request.
func jsV2Advice(version string) string {
	first := imdsfacts.JavaScriptV2TokenAPI
	s := "AWS.MetadataService.request(path) of the AWS SDK for JavaScript v2 sends no token in any release " +
		"(upgrading does not help): " + JSMetadataServiceFix + "; EC2MetadataCredentials fetches one from " + first + " on"
	if older, known := imdsfacts.OlderThan(version, imdsfacts.JavaScriptV2.MinIMDSv2); older || !known {
		s += "; upgrade aws-sdk to " + imdsfacts.JavaScriptV2.MinIMDSv2 + " or later, the first whose own metadata calls all use a token"
	}
	return s + "; set " + DisableV1Fallback + " to stop its fallback after a failed token request"
}

type token struct{ name, version string }

// tokens splits a User-Agent into product/version tokens (a bare product
// such as Ruby's "Ruby" has no version). It also reads the "md/Name#version"
// form of the newer AWS User-Agent format.
func tokens(ua string) []token {
	var out []token
	for _, f := range strings.Fields(ua) {
		// The version follows the last slash: "aws-sdk-nodejs-v3-@aws-sdk/client-s3/3.4.1".
		name, version, _ := strings.Cut(f, "/")
		if i := strings.LastIndexByte(version, '/'); i >= 0 && name != "md" && name != "lib" {
			version = version[i+1:]
		}
		if name == "md" || name == "lib" {
			var ok bool
			name, version, ok = strings.Cut(version, "#")
			if !ok {
				continue
			}
		}
		out = append(out, token{name: cleanName(name), version: cleanVersion(version)})
		if len(out) == 32 {
			break
		}
	}
	return out
}

// cleanVersion keeps the leading version-like characters.
func cleanVersion(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '_' || c == '+') {
			v = v[:i]
			break
		}
	}
	if len(v) > 40 {
		v = v[:40]
	}
	return v
}

func cleanName(n string) string {
	n = strings.TrimLeft(n, "(")
	if len(n) > 64 {
		n = n[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, n)
}

// major returns the first component of v, 0 when v is not a version.
func major(v string) int {
	pv, err := imdsfacts.ParseVersion(v)
	if err != nil {
		return 0
	}
	n, _ := pv.Major()
	return n
}
