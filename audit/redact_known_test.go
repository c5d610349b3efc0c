package audit

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestKnownTokensScrub: a remembered value goes wherever it stands, whatever its shape, even
// glued to other text, and in its percent-encoded spellings.
func TestKnownTokensScrub(t *testing.T) {
	k := newKnownTokens()
	const odd = "my-custom-token-value-12345" // no structure rule would take it
	k.learn([]byte(odd))
	k.learn([]byte(plantToken))
	for _, s := range []string{
		odd, "x" + odd + "y", "/latest/meta-data/" + odd, "tool/1.0 " + odd,
		"/latest/meta-data/" + url.PathEscape(plantToken), "?t=" + url.QueryEscape(plantToken),
		odd + odd, plantToken[:10] + plantToken + plantToken[10:],
	} {
		got := k.scrub(s)
		if strings.Contains(got, odd) || strings.Contains(got, plantToken) || !strings.Contains(got, Redacted) {
			t.Errorf("scrub(%q) = %q", s, got)
		}
	}
	if got := k.scrub("/latest/meta-data/instance-id"); got != "/latest/meta-data/instance-id" {
		t.Errorf("scrub changed plain text: %q", got)
	}
}

// TestKnownTokensBounds: values too short or plain to be tokens are not remembered (a client
// could otherwise erase ordinary text from the report), and the set is bounded, least
// recently seen first out.
func TestKnownTokensBounds(t *testing.T) {
	k := newKnownTokens()
	for _, v := range []string{"latest", "meta-data/instance-id", "aaaaaaaaaaaaaaaaaaaaaaaaa", "has space in it 1234567890"} {
		k.learn([]byte(v))
	}
	if n := k.lru.Len(); n != 0 {
		t.Fatalf("remembered %d implausible values", n)
	}
	tok := func(i int) string { return fmt.Sprintf("AQAEtoken%08dXyZ0123456789", i) }
	k.learn([]byte(tok(0)))
	for i := 1; i <= maxKnownTokens+10; i++ {
		k.learn([]byte(tok(i)))
		k.learn([]byte(tok(0))) // seen again: stays
	}
	if n := k.lru.Len(); n != maxKnownTokens {
		t.Fatalf("%d tokens remembered, want the bound %d", n, maxKnownTokens)
	}
	if got := k.scrub(tok(0)); got != Redacted {
		t.Errorf("the token seen most recently was forgotten: %q", got)
	}
	if got := k.scrub(tok(1)); got != tok(1) {
		t.Errorf("the least recently seen token was kept: %q", got)
	}
}

// TestRedactArgsKnown: a token learned after a command line was captured is still scrubbed
// from the joined text (the exec record is joined before the request that carries the token).
func TestRedactArgsKnown(t *testing.T) {
	k := newKnownTokens()
	const odd = "my-custom-token-value-12345"
	joined := joinArgs([]string{"tool", "-t" + odd, "http://169.254.169.254/latest/meta-data/" + odd}, k)
	if !strings.Contains(joined, odd) {
		t.Fatalf("structure alone should not know %q: %q", odd, joined)
	}
	k.learn([]byte(odd))
	if got := k.scrub(joined); strings.Contains(got, odd) {
		t.Errorf("scrub(%q) = %q", joined, got)
	}
}

func BenchmarkJoinArgsKnown(b *testing.B) {
	k := newKnownTokens()
	for i := range 64 {
		k.learn([]byte(fmt.Sprintf("AQAEtoken%08dXyZ0123456789abcdefghijklmnopqrst==", i)))
	}
	args := strings.Fields("/usr/bin/python3 -m awscli s3 cp s3://bucket/some/key/path/file.tar.gz /var/tmp/file.tar.gz --region eu-west-1 --no-progress --expected-size 123456789")
	for b.Loop() {
		_ = joinArgs(args, k)
	}
}

func BenchmarkJoinArgsStructure(b *testing.B) {
	args := strings.Fields("/usr/bin/python3 -m awscli s3 cp s3://bucket/some/key/path/file.tar.gz /var/tmp/file.tar.gz --region eu-west-1 --no-progress --expected-size 123456789")
	for b.Loop() {
		_ = joinArgs(args, nil)
	}
}
