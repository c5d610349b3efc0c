package audit

import (
	"strings"
	"testing"
)

// TestRedactCredentialForms covers the spellings of credentials on a command line: every one
// loses its value, whatever the separators.
func TestRedactCredentialForms(t *testing.T) {
	const secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
	for _, args := range [][]string{
		{"AWS_SECRET_ACCESS_KEY=" + secret},
		{"aws_session_token=" + secret},
		{"--secret-access-key=" + secret},
		{"--aws-secret-access-key=" + secret},
		{"--session-token=" + secret},
		{"-Daws.secretKey=" + secret},
		{"-Daws.sessionToken=" + secret},
		{"security_token: " + secret},
		{"--secret-access-key", secret},
		{"--aws-session-token", secret},
	} {
		got := strings.Join(redactArgs(args, nil), " ")
		if strings.Contains(got, "wJalrXUtnFEMI") || !strings.Contains(got, Redacted) {
			t.Errorf("redactArgs(%q) = %q", args, got)
		}
	}
	for _, keep := range []string{"--region=eu-west-1", "X-aws-ec2-metadata-token-ttl-seconds: 21600", "tokens.txt"} {
		if got := redactArgs([]string{keep}, nil)[0]; got != keep {
			t.Errorf("redactArgs(%q) = %q, want it unchanged", keep, got)
		}
	}
}
