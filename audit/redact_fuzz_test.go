package audit

import (
	"strings"
	"testing"
)

// FuzzRedact: redaction never panics, never lets a planted token through (remembered from the
// wire, as the auditor does), and is stable: redacting its own output changes nothing.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"", "curl -H 'X-aws-ec2-metadata-token: ' http://169.254.169.254/latest/meta-data/",
		"--token ", "TOKEN=; curl", `{"SecretAccessKey": "", "Token": ""}`, "http://u:@h/",
		"/latest/meta-data/;tok=", "aws configure set default.aws_secret_access_key ",
		"Authorization: Bearer ", "[REDACTED]=", "token=[REDACTED]", "a/b/c/",
	} {
		f.Add(s, uint(len(s)), byte(' '))
	}
	tokens := []string{plantToken, "AQAEAFakeEmulatorToken_issued-on_the-wire0123456789ab=="}
	f.Fuzz(func(t *testing.T, s string, pos uint, sep byte) {
		if len(s) > 4096 {
			return
		}
		k := newKnownTokens()
		for _, tok := range tokens {
			k.learn([]byte(tok))
		}
		p := int(pos % uint(len(s)+1))
		tok := tokens[int(pos)%len(tokens)]
		in := s[:p] + tok + s[p:]

		out := redactText(in, k)
		if strings.Contains(out, tok) {
			t.Fatalf("redactText(%q) = %q keeps the token", in, out)
		}
		if again := redactText(out, k); again != out {
			t.Fatalf("not stable:\n in  %q\n out %q\n 2nd %q", in, out, again)
		}

		if sep == 0 {
			sep = ' '
		}
		args := strings.Split(strings.ReplaceAll(in, "\x00", ""), string(sep))
		red := redactArgs(args, k)
		if len(red) != len(args) {
			t.Fatalf("redactArgs(%q) has %d arguments, want %d", args, len(red), len(args))
		}
		if j := strings.Join(red, " "); strings.Contains(j, tok) { // as displayed
			t.Fatalf("redactArgs(%q) = %q keeps the token", args, red)
		}
		if again := redactArgs(red, k); strings.Join(again, "\x00") != strings.Join(red, "\x00") {
			t.Fatalf("redactArgs not stable:\n in  %q\n out %q\n 2nd %q", args, red, again)
		}
	})
}

// FuzzRedactStructure: without knowledge, a token shaped like a real one (AQAE..., 56
// characters) planted as a separate word never survives, and the result is stable.
func FuzzRedactStructure(f *testing.F) {
	f.Add("curl http://169.254.169.254/latest/meta-data/", uint(0))
	f.Add("sh -c 'TOKEN=x; curl'", uint(14))
	f.Fuzz(func(t *testing.T, s string, pos uint) {
		if len(s) > 4096 {
			return
		}
		p := int(pos % uint(len(s)+1))
		in := s[:p] + " " + plantToken + " " + s[p:]
		out := redactText(in, nil)
		if strings.Contains(out, strings.TrimRight(plantToken, "=")) {
			t.Fatalf("redactText(%q) = %q keeps the token", in, out)
		}
		if again := redactText(out, nil); again != out {
			t.Fatalf("not stable:\n in  %q\n out %q\n 2nd %q", in, out, again)
		}
	})
}
