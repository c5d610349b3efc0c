package httpreq

import (
	"fmt"
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
