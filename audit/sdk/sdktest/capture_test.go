package sdktest

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	in := "GET /latest/meta-data/AQAEAJ3k9xQ2rZ7vW1mN8bT4yU6iO0pL5sD3fG7 HTTP/1.1\r\nx-aws-ec2-metadata-token: secret-value\r\n" +
		"Authorization: Bearer x\r\nHost: 169.254.169.254\r\n\r\n"
	got := Redact(in)
	want := "GET /latest/meta-data/<token> HTTP/1.1\r\nx-aws-ec2-metadata-token: <token>\r\n" +
		"Authorization: <redacted>\r\nHost: 169.254.169.254\r\n\r\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if strings.Contains(got, "secret-value") {
		t.Error("token value kept")
	}
}

// The stored captures load, and none holds a token value.
func TestStoredCaptures(t *testing.T) {
	cs, err := Load("../testdata/captures")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		for _, r := range c.Requests {
			if Redact(r) != r {
				t.Errorf("%s holds a value Redact would replace: %q", c.FileName(), r)
			}
		}
	}
}
