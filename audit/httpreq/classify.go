package httpreq

import "strings"

// Class is the kind of a request as the auditor reports it.
type Class string

// Classes of requests. The string values are part of the JSON output.
const (
	// ClassIMDSv1 is a GET (or HEAD) without the X-aws-ec2-metadata-token
	// header: it breaks once the instance is set to HttpTokens=required.
	ClassIMDSv1 Class = "imdsv1"
	// ClassIMDSv2 is a GET (or HEAD) carrying the token header.
	ClassIMDSv2 Class = "imdsv2"
	// ClassTokenPUT is PUT /latest/api/token (or a versioned token path).
	ClassTokenPUT Class = "token-put"
	// ClassTokenPUTProxied is a token PUT carrying X-Forwarded-For; IMDS
	// refuses it with 403, so its sender falls back to IMDSv1 or fails.
	ClassTokenPUTProxied Class = "token-put-proxied"
	// ClassProbe is a request for another cloud's metadata path (an agent
	// guessing where it runs); not IMDSv1 usage.
	ClassProbe Class = "non-aws-probe"
	// ClassIncomplete is a request whose header block was not fully captured
	// and in which no token header was seen, so v1 and v2 cannot be told apart.
	ClassIncomplete Class = "incomplete"
	// ClassOther is anything else (other methods, GET of the token path, garbage).
	ClassOther Class = "other"
)

// Classes lists every class in report order.
var Classes = []Class{ClassIMDSv1, ClassIMDSv2, ClassTokenPUT, ClassTokenPUTProxied,
	ClassProbe, ClassIncomplete, ClassOther}

// Clouds whose metadata paths are recognised, returned by Classify.
const (
	CloudAzure        = "azure"
	CloudGCP          = "gcp"
	CloudOracle       = "oracle"
	CloudIBM          = "ibm"
	CloudDigitalOcean = "digitalocean"
	CloudOpenStack    = "openstack"
	CloudHetzner      = "hetzner"
	CloudLinode       = "linode"
	CloudVultr        = "vultr"
)

// probeRule maps a path prefix of another cloud's metadata service to that cloud. Only the
// path decides whether a request is a probe: IMDS ignores other clouds' headers (Metadata,
// Metadata-Flavor, Metadata-Token, Authorization) and answers an AWS path whatever else the
// request carries, so a header never makes a probe. It only tells apart clouds whose paths
// look alike. Order matters: the first match wins, so more specific prefixes come first.
type probeRule struct {
	cloud  string
	prefix string                // path prefix, compared case-sensitively like the services do; never empty
	header func(r *Request) bool // optional header test, only among requests that have the prefix
}

var probeRules = []probeRule{
	{cloud: CloudAzure, prefix: "/metadata/instance"},
	{cloud: CloudAzure, prefix: "/metadata/identity"},
	{cloud: CloudAzure, prefix: "/metadata/scheduledevents"},
	{cloud: CloudAzure, prefix: "/metadata/attested"},
	{cloud: CloudAzure, prefix: "/metadata/loadbalancer"},
	{cloud: CloudAzure, prefix: "/metadata/versions"},
	{cloud: CloudGCP, prefix: "/computeMetadata/"},
	{cloud: CloudGCP, prefix: "/0.1/meta-data"},
	{cloud: CloudOracle, prefix: "/opc/"},
	{cloud: CloudIBM, prefix: "/instance_identity/"},
	{cloud: CloudDigitalOcean, prefix: "/metadata/v1"},
	{cloud: CloudOpenStack, prefix: "/openstack"},
	{cloud: CloudHetzner, prefix: "/hetzner/"},
	{cloud: CloudLinode, prefix: "/v1/", header: func(r *Request) bool { return r.OtherCloudAuth }},
	{cloud: CloudVultr, prefix: "/v1.json"},
	{cloud: CloudVultr, prefix: "/v1/"},
}

// Classification is the result of Classify.
type Classification struct {
	Class Class
	// Cloud names the other cloud for ClassProbe ("azure", "gcp", ...).
	Cloud string
}

// Classify sorts a parsed request into a Class. It only looks at the method,
// the path and which headers are present.
func Classify(r *Request) Classification {
	if r.Method == "" {
		return Classification{Class: ClassIncomplete}
	}
	if cloud := probeCloud(r); cloud != "" {
		return Classification{Class: ClassProbe, Cloud: cloud}
	}
	// Methods are compared without regard to case: whether IMDS would take a lower-case
	// "get" is not known, and a tokenless one that it answers is IMDSv1 (fail-safe).
	switch strings.ToUpper(r.Method) {
	case "PUT":
		if !IsTokenPath(r.Path) {
			return Classification{Class: ClassOther}
		}
		if r.Forwarded {
			return Classification{Class: ClassTokenPUTProxied}
		}
		return Classification{Class: ClassTokenPUT}
	case "GET", "HEAD":
		if IsTokenPath(r.Path) {
			return Classification{Class: ClassOther} // 405 from IMDS
		}
		if r.HasToken {
			return Classification{Class: ClassIMDSv2}
		}
		if !r.Complete {
			// The token header may have been in the part not captured.
			return Classification{Class: ClassIncomplete}
		}
		return Classification{Class: ClassIMDSv1}
	}
	return Classification{Class: ClassOther}
}

// probeCloud returns the other cloud whose metadata path r asks for, or "". An AWS path is
// never a probe, whatever headers it carries.
func probeCloud(r *Request) string {
	if r.Path == "/" || r.Path == "" {
		if r.HasToken {
			return "" // an AWS client: it asked for a token first
		}
		return rootProbeCloud(r)
	}
	if isAWSPath(r.Path) || strings.Contains(r.Path, "..") || strings.ContainsAny(r.Path, "%\\") {
		// Dot segments and escapes can lead anywhere once the server cleans the path
		// (/metadata/v1/../../latest/...): never a probe.
		return ""
	}
	for _, p := range probeRules {
		if !strings.HasPrefix(r.Path, p.prefix) {
			continue
		}
		if p.header != nil && !p.header(r) {
			continue
		}
		return p.cloud
	}
	return ""
}

// rootProbeCloud names the other cloud of a request for "/" that carries that cloud's own
// metadata header. The root lists API versions only, no metadata; other clouds' libraries ping
// it with their header to learn where they run (Google's client libraries ask "/" with
// Metadata-Flavor: Google). Under HttpTokens=required such a ping gets 401, which they read as
// "not here", as they read the version listing today: nothing breaks. Below "/" the path alone
// decides: IMDS ignores these headers and answers with metadata.
func rootProbeCloud(r *Request) string {
	switch {
	case strings.EqualFold(r.MetadataFlavor, "Google"):
		return CloudGCP
	case strings.EqualFold(r.MetadataFlavor, "ibm"):
		return CloudIBM
	case strings.EqualFold(r.Metadata, "true"):
		return CloudAzure
	}
	return ""
}

// isAWSPath reports whether IMDS serves p: "/" (the version listing) or a path under /latest or
// a dated version such as /2009-04-04.
func isAWSPath(p string) bool {
	if p == "" || p == "/" {
		return true
	}
	version, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return version == "latest" || isDateVersion(version)
}

// IsTokenPath reports whether p is the token path, /latest/api/token, or a
// versioned one such as /2021-03-23/api/token (which IMDS refuses with 403).
func IsTokenPath(p string) bool {
	version, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !ok || rest != "api/token" {
		return false
	}
	return version == "latest" || isDateVersion(version)
}

// isDateVersion reports whether s looks like an IMDS API version "YYYY-MM-DD".
func isDateVersion(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i, c := range []byte(s) {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
