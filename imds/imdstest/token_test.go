package imdstest_test

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestTokenRequests(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	ttl := imdstest.HeaderTokenTTL
	tests := []struct {
		name    string
		method  string
		path    string
		headers []string
		status  int
		echoTTL string
		allow   string
	}{
		{"minimum TTL", "PUT", "/latest/api/token", []string{ttl, "1"}, 200, "1", ""},
		{"SDK TTL", "PUT", "/latest/api/token", []string{ttl, "300"}, 200, "300", ""},
		{"maximum TTL", "PUT", "/latest/api/token", []string{ttl, "21600"}, 200, "21600", ""},
		{"header name case does not matter", "PUT", "/latest/api/token", []string{"x-AWS-ec2-metadata-token-ttl-seconds", "60"}, 200, "60", ""},
		{"TTL missing", "PUT", "/latest/api/token", nil, 400, "", ""},
		{"TTL empty", "PUT", "/latest/api/token", []string{ttl, ""}, 400, "", ""},
		{"TTL zero", "PUT", "/latest/api/token", []string{ttl, "0"}, 400, "", ""},
		{"TTL too large", "PUT", "/latest/api/token", []string{ttl, "21601"}, 400, "", ""},
		{"TTL huge", "PUT", "/latest/api/token", []string{ttl, "99999999999999999999"}, 400, "", ""},
		{"TTL negative", "PUT", "/latest/api/token", []string{ttl, "-5"}, 400, "", ""},
		{"TTL not a number", "PUT", "/latest/api/token", []string{ttl, "abc"}, 400, "", ""},
		{"TTL fraction", "PUT", "/latest/api/token", []string{ttl, "1.5"}, 400, "", ""},
		{"TTL twice", "PUT", "/latest/api/token", []string{ttl, "60", ttl, "60"}, 400, "", ""},
		{"through a proxy", "PUT", "/latest/api/token", []string{ttl, "60", "X-Forwarded-For", "10.1.2.3"}, 403, "", ""},
		{"through a proxy, empty value", "PUT", "/latest/api/token", []string{ttl, "60", "X-Forwarded-For", ""}, 403, "", ""},
		{"versioned path", "PUT", "/2021-03-23/api/token", []string{ttl, "60"}, 403, "", ""},
		{"other versioned path", "PUT", "/2019-10-01/api/token", []string{ttl, "60"}, 403, "", ""},
		{"GET on token path", "GET", "/latest/api/token", []string{ttl, "60"}, 405, "", "OPTIONS, PUT"},
		{"POST on token path", "POST", "/latest/api/token", []string{ttl, "60"}, 405, "", "OPTIONS, PUT"},
		{"DELETE on token path", "DELETE", "/latest/api/token", nil, 405, "", "OPTIONS, PUT"},
		{"OPTIONS on token path", "OPTIONS", "/latest/api/token", nil, 200, "", "OPTIONS, PUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, s, tc.method, tc.path, tc.headers...)
			assert.Equal(t, tc.status, a.status, a.body)
			assert.Equal(t, tc.echoTTL, a.header.Get(ttl))
			assert.Equal(t, tc.allow, a.header.Get("Allow"))
			if tc.status == 200 && tc.method == "PUT" {
				// The shape of a real IMDSv2 token: base64 beginning "AQAE".
				assert.Regexp(t, `^AQAEA[A-Za-z0-9_-]{49}==$`, a.body)
			}
		})
	}
}

func TestTokenLifetime(t *testing.T) {
	clk := newClock()
	s := newServer(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired, Now: clk.Now})
	short := token(t, s, "60")
	long := token(t, s, "21600")
	require.NotEqual(t, short, long, "every PUT gets a fresh token")

	assert.Equal(t, 200, get(t, s, short, "/latest/meta-data/instance-id").status)
	clk.Advance(59 * time.Second)
	assert.Equal(t, 200, get(t, s, short, "/latest/meta-data/instance-id").status, "valid until the TTL has passed")
	clk.Advance(time.Second)
	assert.Equal(t, 401, get(t, s, short, "/latest/meta-data/instance-id").status, "expired at exactly the TTL")
	assert.Equal(t, 200, get(t, s, long, "/latest/meta-data/instance-id").status)
	clk.Advance(6 * time.Hour)
	assert.Equal(t, 401, get(t, s, long, "/latest/meta-data/instance-id").status)
}

func TestInvalidateTokens(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "600")
	require.Equal(t, 200, get(t, s, tok, "/latest/meta-data/instance-id").status)
	s.InvalidateTokens()
	assert.Equal(t, 401, get(t, s, tok, "/latest/meta-data/instance-id").status)
	assert.Equal(t, 200, get(t, s, token(t, s, "600"), "/latest/meta-data/instance-id").status)
}

func TestTokensAreServerLocal(t *testing.T) {
	a := newServer(t, imdstest.Config{})
	b := newServer(t, imdstest.Config{})
	tok := token(t, a, "600")
	assert.Equal(t, http.StatusUnauthorized, get(t, b, tok, "/latest/meta-data/instance-id").status)
}

// TestTokenShape: tokens look like real IMDSv2 tokens (40 bytes of URL-safe base64 beginning
// "AQAE"), are unique, and a token of another shape is refused.
func TestTokenShape(t *testing.T) {
	s := newServer(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	seen := map[string]bool{}
	for range 50 {
		tok := token(t, s, "60")
		raw, err := base64.URLEncoding.DecodeString(tok)
		require.NoError(t, err, tok)
		require.Len(t, raw, 40)
		assert.Equal(t, []byte{1, 0, 4, 0}, raw[:4])
		assert.False(t, seen[tok], "token issued twice")
		seen[tok] = true
	}
	for tok := range seen {
		// The same bytes without padding, and with another magic, are refused.
		raw, _ := base64.URLEncoding.DecodeString(tok)
		assert.Equal(t, 401, get(t, s, base64.RawURLEncoding.EncodeToString(raw), "/latest/meta-data/instance-id").status)
		raw[2] = 5
		assert.Equal(t, 401, get(t, s, base64.URLEncoding.EncodeToString(raw), "/latest/meta-data/instance-id").status)
		assert.Equal(t, 200, get(t, s, tok, "/latest/meta-data/instance-id").status)
		break
	}
}
