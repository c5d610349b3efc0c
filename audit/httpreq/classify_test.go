package httpreq

import (
	"fmt"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		in    string
		class Class
		cloud string
	}{
		{"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", ClassIMDSv1, ""},
		{"GET / HTTP/1.1\r\n\r\n", ClassIMDSv1, ""},
		{"HEAD /latest/meta-data/ HTTP/1.1\r\n\r\n", ClassIMDSv1, ""},
		{"GET /2009-04-04/meta-data/ HTTP/1.0\r\n\r\n", ClassIMDSv1, ""},
		{"GET /latest/meta-data/ HTTP/1.1\r\nx-aws-ec2-metadata-token: abc\r\n\r\n", ClassIMDSv2, ""},
		{"GET /latest/meta-data/ HTTP/1.1\r\nX-AWS-EC2-METADATA-TOKEN: abc\r\n", ClassIMDSv2, ""},
		{"GET /latest/meta-data/ HTTP/1.1\r\nUser-Agent: x\r\n", ClassIncomplete, ""},
		{"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n", ClassTokenPUT, ""},
		{"PUT /latest/api/token HTTP/1.1\r\n\r\n", ClassTokenPUT, ""},
		{"PUT /2021-03-23/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n", ClassTokenPUT, ""},
		{"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nx-forwarded-for: 10.1.2.3\r\n\r\n", ClassTokenPUTProxied, ""},
		{"GET /latest/api/token HTTP/1.1\r\n\r\n", ClassOther, ""},
		{"POST /latest/meta-data/ HTTP/1.1\r\n\r\n", ClassOther, ""},
		{"PUT /latest/meta-data/ HTTP/1.1\r\n\r\n", ClassOther, ""},
		{"GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nMetadata: true\r\n\r\n", ClassProbe, CloudAzure},
		{"GET /metadata/identity/oauth2/token HTTP/1.1\r\n\r\n", ClassProbe, CloudAzure},
		{"GET /computeMetadata/v1/instance/id HTTP/1.1\r\nMetadata-Flavor: Google\r\n\r\n", ClassProbe, CloudGCP},
		{"GET /computeMetadata/v1/ HTTP/1.1\r\n\r\n", ClassProbe, CloudGCP},
		{"GET /opc/v2/instance/ HTTP/1.1\r\nAuthorization: Bearer Oracle\r\n\r\n", ClassProbe, CloudOracle},
		{"GET /opc/v1/instance/ HTTP/1.1\r\n\r\n", ClassProbe, CloudOracle},
		{"GET /metadata/v1/id HTTP/1.1\r\n\r\n", ClassProbe, CloudDigitalOcean},
		{"GET /metadata/v1.json HTTP/1.1\r\n\r\n", ClassProbe, CloudDigitalOcean},
		{"GET /openstack/latest/meta_data.json HTTP/1.1\r\n\r\n", ClassProbe, CloudOpenStack},
		{"GET /hetzner/v1/metadata HTTP/1.1\r\n\r\n", ClassProbe, CloudHetzner},
		{"PUT /v1/token HTTP/1.1\r\nMetadata-Token-Expiry-Seconds: 3600\r\n\r\n", ClassProbe, CloudLinode},
		{"GET /v1.json HTTP/1.1\r\n\r\n", ClassProbe, CloudVultr},
		{"PUT /instance_identity/v1/token?version=2022-03-01 HTTP/1.1\r\nMetadata-Flavor: ibm\r\n\r\n", ClassProbe, CloudIBM},
	}
	for _, tt := range tests {
		r, err := ParseRequest([]byte(tt.in))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		got := Classify(&r)
		if got.Class != tt.class || got.Cloud != tt.cloud {
			t.Errorf("%q: got %+v, want %s/%s", tt.in, got, tt.class, tt.cloud)
		}
	}
	if c := Classify(&Request{}); c.Class != ClassIncomplete {
		t.Errorf("empty request: %v", c)
	}
}

// otherCloudHeaders are the headers other clouds' metadata services want. IMDS ignores them.
var otherCloudHeaders = []string{
	"Metadata: true",                      // Azure
	"Metadata: True",                      // Azure, as some SDKs spell it
	"Metadata-Flavor: Google",             // GCP
	"Metadata-Flavor: ibm",                // IBM Cloud
	"Metadata-Token: abc",                 // Linode
	"Metadata-Token-Expiry-Seconds: 3600", // Linode token PUT
	"Authorization: Bearer Oracle",        // Oracle IMDSv2
	"Metadata: true\r\nMetadata-Flavor: Google\r\nAuthorization: Bearer Oracle", // all at once
}

// rootIdentity maps the headers that name another cloud to it, for requests of "/".
var rootIdentity = map[string]string{"Metadata: true": CloudAzure, "Metadata: True": CloudAzure,
	"Metadata-Flavor: Google": CloudGCP, "Metadata-Flavor: ibm": CloudIBM,
	"Metadata: true\r\nMetadata-Flavor: Google\r\nAuthorization: Bearer Oracle": CloudGCP}

// TestOtherCloudHeadersOnAWSPaths: only the path makes a probe, but for pings of "/". An AWS path with another
// cloud's headers is what it would be without them (IMDS answers it), and another cloud's path
// is a probe with or without them.
func TestOtherCloudHeadersOnAWSPaths(t *testing.T) {
	const token = "X-aws-ec2-metadata-token: AQAE"
	aws := []struct {
		req   string
		class Class
	}{
		{"GET /latest/meta-data/iam/security-credentials/role HTTP/1.1", ClassIMDSv1},
		{"GET /latest/meta-data/instance-id HTTP/1.1", ClassIMDSv1},
		{"GET /latest HTTP/1.1", ClassIMDSv1},
		{"GET /2009-04-04/meta-data/ HTTP/1.1", ClassIMDSv1},
		{"GET / HTTP/1.1", ClassIMDSv1},
		{"GET http://169.254.169.254/ HTTP/1.1", ClassIMDSv1},
		{"HEAD /latest/user-data HTTP/1.1", ClassIMDSv1},
		{"PUT /latest/api/token HTTP/1.1", ClassTokenPUT},
	}
	for _, h := range otherCloudHeaders {
		for _, tt := range aws {
			for _, withToken := range []bool{false, true} {
				in := tt.req + "\r\nHost: 169.254.169.254\r\n" + h + "\r\n"
				want, cloud := tt.class, ""
				if root := strings.Contains(tt.req, " / ") || strings.Contains(tt.req, ".254/ "); root && !withToken &&
					tt.class == ClassIMDSv1 && rootIdentity[h] != "" {
					// The root holds no metadata: another cloud's library pinging it with its own
					// header is a probe (rootProbeCloud).
					want, cloud = ClassProbe, rootIdentity[h]
				}
				if withToken {
					in += token + "\r\n"
					if want == ClassIMDSv1 {
						want = ClassIMDSv2
					}
				}
				r, err := ParseRequest([]byte(in + "\r\n"))
				if c := Classify(&r); err != nil || c.Class != want || c.Cloud != cloud {
					t.Errorf("%q with %q (token %v): %+v, %v; want %s", tt.req, h, withToken, c, err, want)
				}
			}
		}
	}
	others := []struct {
		req   string
		cloud string
	}{
		{"GET /metadata/instance?api-version=2021-02-01 HTTP/1.1", CloudAzure},
		{"GET /computeMetadata/v1/instance/id HTTP/1.1", CloudGCP},
		{"GET /opc/v2/instance/ HTTP/1.1", CloudOracle},
		{"PUT /instance_identity/v1/token HTTP/1.1", CloudIBM},
		{"GET /metadata/v1/id HTTP/1.1", CloudDigitalOcean},
		{"GET /openstack/latest/meta_data.json HTTP/1.1", CloudOpenStack},
		{"GET /hetzner/v1/metadata HTTP/1.1", CloudHetzner},
		{"GET /v1.json HTTP/1.1", CloudVultr},
	}
	for _, h := range append([]string{"User-Agent: x"}, otherCloudHeaders...) {
		for _, tt := range others {
			r, err := ParseRequest([]byte(tt.req + "\r\n" + h + "\r\n\r\n"))
			if c := Classify(&r); err != nil || c.Class != ClassProbe || c.Cloud != tt.cloud {
				t.Errorf("%q with %q: %+v, %v; want a probe for %s", tt.req, h, c, err, tt.cloud)
			}
		}
	}
	// Linode and Vultr share /v1/: the Linode headers tell them apart.
	for h, cloud := range map[string]string{"Metadata-Token: abc": CloudLinode, "User-Agent: x": CloudVultr} {
		r, _ := ParseRequest([]byte("GET /v1/instance HTTP/1.1\r\n" + h + "\r\n\r\n"))
		if c := Classify(&r); c.Class != ClassProbe || c.Cloud != cloud {
			t.Errorf("/v1/instance with %q: %+v, want a probe for %s", h, c, cloud)
		}
	}
}

// TestProbeRulesArePathRules: every rule names a path prefix (a header alone never makes a
// probe), and no prefix is an AWS path.
func TestProbeRulesArePathRules(t *testing.T) {
	for _, p := range probeRules {
		if p.prefix == "" || isAWSPath(p.prefix) {
			t.Errorf("probe rule for %s with prefix %q: a rule needs a prefix that is not an AWS path", p.cloud, p.prefix)
		}
	}
}

func TestIsTokenPath(t *testing.T) {
	for p, want := range map[string]bool{"/latest/api/token": true, "/2021-03-23/api/token": true,
		"latest/api/token": true, "/latest/api/token/": false, "/latest/api": false, "/x/api/token": false,
		"/2021-3-23/api/token": false, "": false} {
		if IsTokenPath(p) != want {
			t.Errorf("IsTokenPath(%q) != %v", p, want)
		}
	}
}

func ExampleClassify() {
	r, err := ParseRequest([]byte("GET /latest/meta-data/iam/info HTTP/1.1\r\n" +
		"User-Agent: curl/8.5.0\r\nX-aws-ec2-metadata-token: AQAEA...\r\n\r\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(Classify(&r).Class, r.Path, r.HasToken)
	// Output: imdsv2 /latest/meta-data/iam/info true
}
