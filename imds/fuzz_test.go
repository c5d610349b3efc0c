package imds

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets check that every parser of IMDS answers returns a value or an error, never
// panics, and that accepted values keep their invariants. Run one with
// go test -run '^$' -fuzz FuzzParseListing -fuzztime 10s ./imds/

func FuzzParseListing(f *testing.F) {
	for _, s := range []string{"", "a", "a\nb/", "a\r\nb\r\n", "a\n\nb", "<html>", "\x00", "ami-id\nplacement/\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseListing(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e == "" || strings.ContainsAny(e, "\n\r\x00") || !utf8.ValidString(e) {
				t.Fatalf("bad entry %q accepted", e)
			}
		}
	})
}

func FuzzParseIdentityDocument(f *testing.F) {
	f.Add([]byte(`{"accountId":"1","instanceId":"i-1","region":"r","pendingTime":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"instanceId":"i-1","region":"r","billingProducts":null}`))
	f.Add([]byte(`{"accountId":"1","instanceId":"i-1","region":"r"} x`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseIdentityDocument(b)
		if err != nil {
			return
		}
		if d.InstanceID == "" || d.Region == "" || !bytes.Equal(d.Raw, b) {
			t.Fatalf("accepted a document without instance id or region, or changed Raw")
		}
	})
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s3cr3t-value","Token":"tok","Expiration":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"Code":"AssumeRoleUnauthorizedAccess","Message":"no"}`))
	f.Add([]byte(`{"Code":"Success","SecretAccessKey":12}`))
	f.Add([]byte(`{"Code":"Success","Expiration":"s3cr3t-value"}`))
	// Found by the fuzzer: one-character secrets that any output contains by chance.
	f.Add([]byte(`{"Code":"Success","AccessKeyId":"-ASIA1","SecretAccessKey":"e","Token":"k","Expiration":"2025-01-01T0:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCredentials(b)
		if err != nil {
			// Error texts never quote the document, except IMDS's own Code and Message.
			var ce *codeError
			if !errors.As(err, &ce) && strings.Contains(err.Error(), "s3cr3t-value") {
				t.Fatalf("error quotes the document: %v", err)
			}
			return
		}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" || c.Expiration.IsZero() {
			t.Fatal("accepted incomplete credentials")
		}
		// A secret of a few characters is in any text by chance ("e" in "redacted"); real
		// secret keys are 40 characters and tokens hundreds, so only those of 8 or more count.
		s := c.String()
		for _, secret := range []string{c.SecretAccessKey, c.Token} {
			if len(secret) >= 8 && strings.Contains(s, secret) {
				t.Fatalf("String shows a secret: %s", s)
			}
		}
	})
}

func FuzzParseTTLHeader(f *testing.F) {
	for _, s := range []string{"", "1", "21600", "21601", "0", "-1", "+5", " 5", "99999", "1e3", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTTLHeader(s)
		if err != nil {
			return
		}
		if d < time.Second || d > MaxTokenTTL || d%time.Second != 0 {
			t.Fatalf("accepted TTL %v from %q", d, s)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "abc", "AQAEA-x_y==", "a b", "a\r\nX-Injected: 1", strings.Repeat("a", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseToken(b)
		if err != nil {
			return
		}
		if tok == "" || len(tok) > maxTokenBytes || strings.ContainsAny(tok, " \r\n\t\x00") {
			t.Fatalf("accepted token %q", tok)
		}
	})
}

func FuzzParseScheduledEvents(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","EventId":"instance-event-1","State":"active"}]`))
	f.Add([]byte(`[{"NotBefore":"tomorrow"}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseScheduledEvents(b)
	})
}

func FuzzParseNotices(f *testing.F) {
	f.Add([]byte(`{"action":"terminate","time":"2025-01-01T00:02:00Z"}`))
	f.Add([]byte(`{"noticeTime":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"action":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := parseSpotAction(b); err == nil && (a.Action == "" || a.Time.IsZero()) {
			t.Fatal("accepted an incomplete spot action")
		}
		if r, err := parseRebalance(b); err == nil && r.NoticeTime.IsZero() {
			t.Fatal("accepted a rebalance recommendation without time")
		}
	})
}

func FuzzTreePath(f *testing.F) {
	for _, s := range []string{"", "instance-id", "/latest/user-data", "../x", "a/./b", "a?b", "tags/instance/a b", "//.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := treePath(treeMetaData, s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, treeMetaData) || strings.ContainsAny(p, "?#%\\\x00\r\n") {
			t.Fatalf("accepted path %q from %q", p, s)
		}
		for seg := range strings.SplitSeq(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted dot segment in %q", p)
			}
		}
	})
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add([]byte("aGVsbG8="))
	f.Add([]byte("aGVs\nbG8=\n"))
	f.Add([]byte("%%%"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSignature(b)
		_ = VerifyIdentitySignature([]byte("{}"), b, nil)
	})
}

func FuzzGunzip(f *testing.F) {
	f.Add(gzipBytes([]byte("hello")))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := gunzipIfCompressed(b, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatal("limit not applied")
		}
	})
}
