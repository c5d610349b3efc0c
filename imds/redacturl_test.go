package imds

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://169.254.169.254":                       "http://169.254.169.254",
		"http://admin:pw@127.0.0.1:1":                  "http://[redacted]@127.0.0.1:1",
		"https://tok@example.com/p?q=1":                "https://[redacted]@example.com/p?q=1",
		"http://a:b@c@127.0.0.1/x":                     "http://[redacted]@127.0.0.1/x",
		"http://admin:p/w@127.0.0.1":                   "http://[redacted]@127.0.0.1", // "/" in the password
		"http://admin:1#w@127.0.0.1":                   "http://[redacted]@127.0.0.1", // "#" in the password
		"http://admin:pw@[::1":                         "http://[redacted]@[::1",      // does not parse
		"admin:pw@127.0.0.1:1":                         "[redacted]@127.0.0.1:1",
		"//admin:pw@127.0.0.1":                         "//[redacted]@127.0.0.1",
		"http://evil.example/@me":                      "http://[redacted]@me", // errs on the side of hiding
		"":                                             "",
		"mailto:someone@example.com (not http at all)": "[redacted]@example.com (not http at all)",
	} {
		assert.Equal(t, want, RedactURL(in), "RedactURL(%q)", in)
	}
}

// TestEndpointUserInfoNotRepeated: New refuses an endpoint with user information, from Options or
// from AWS_EC2_METADATA_SERVICE_ENDPOINT, and its error does not repeat the password.
func TestEndpointUserInfoNotRepeated(t *testing.T) {
	const pw = "hunter2secret"
	for _, ep := range []string{
		"http://admin:" + pw + "@127.0.0.1:1",
		"http://" + pw + "@127.0.0.1:1",
		"http://admin:" + pw + "@[::1",
		"http://admin:" + pw + "/x@127.0.0.1:1",
		"http://admin:1#" + pw + "@127.0.0.1:1",
		"http://admin:1?" + pw + "@127.0.0.1:1",
		"ftp://admin:" + pw + "@127.0.0.1:1",
		"admin:" + pw + "@127.0.0.1:1",
	} {
		_, err := New(Options{Endpoint: ep, Getenv: noEnv})
		require.Error(t, err, ep)
		assert.NotContains(t, err.Error(), pw)
		assert.Contains(t, err.Error(), "Options.Endpoint")

		_, err = New(Options{Getenv: envMap(map[string]string{EnvEndpoint: ep})})
		require.Error(t, err, ep)
		assert.NotContains(t, err.Error(), pw)
		assert.Contains(t, err.Error(), EnvEndpoint)
	}
	_, err := New(Options{Endpoint: "http://admin:" + pw + "@127.0.0.1:1", Getenv: noEnv})
	assert.EqualError(t, err, `imds: endpoint "http://[redacted]@127.0.0.1:1" contains user information `+
		`(user:password@), which IMDS does not take; remove it (from Options.Endpoint)`)
}
