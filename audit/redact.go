package audit

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on strings taken from processes and requests.
const (
	maxArgBytes     = 1024
	maxCmdlineBytes = 4096
	maxPathBytes    = 1024
	maxUABytes      = 512
	maxNameBytes    = 256
)

// Redacted replaces secrets found in command lines.
const Redacted = "[REDACTED]"

// clean makes s valid UTF-8 of at most max bytes: invalid bytes become the
// text \xNN, and a cut string ends in "...". Control characters are kept;
// outputs escape them (EscapeText for text, encoding/json for JSON).
func clean(s string, limit int) string {
	if utf8.ValidString(s) && len(s) <= limit {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if b.Len() >= limit {
			b.WriteString("...")
			break
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// EscapeText makes s safe to print on a terminal: control characters, ANSI
// escapes, bidirectional overrides and other invisible runes become Go-style
// escapes (\n, \x1b, \u202e); invalid UTF-8 bytes become \xNN.
func EscapeText(s string) string {
	safe := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

var (
	// A literal token value after the token header name; "$TOKEN" is kept
	// because a variable name is not a secret and helps find the script.
	tokenHeaderRe = regexp.MustCompile(`(?i)(x-aws-ec2-metadata-token\s*:\s*)([^\s$"'][^\s"']*)`)
	// IMDSv2 tokens are base64 and start with "AQAE".
	tokenValueRe = regexp.MustCompile(`AQAE[A-Za-z0-9+/_=-]{36,}`)
	// key=value and key: value forms of AWS credentials, whatever the separators: environment
	// variables (AWS_SECRET_ACCESS_KEY=), flags (--session-token=), Java properties
	// (-Daws.secretKey=).
	credentialRe = regexp.MustCompile(`(?i)((?:aws[-_.])?(?:secret[-_]?access[-_]?key|secret[-_]?key|session[-_]?token|security[-_]?token)\s*[=:]\s*)(\S+)`)
)

// secretFlags take a secret as their next argument.
var secretFlags = map[string]bool{
	"--aws-secret-access-key": true, "--secret-access-key": true, "--session-token": true,
	"--aws-session-token": true, "aws_secret_access_key": true, "aws_session_token": true,
}

// redactArg replaces secrets in one argument: token values (in a header
// argument or bare), credential assignments, and the whole argument when
// prev is a flag that takes a credential.
func redactArg(prev, a string) string {
	if secretFlags[strings.ToLower(prev)] {
		return Redacted
	}
	// The regular expressions are case-insensitive, which Go cannot speed
	// up with a literal prefix: run them only where they can match.
	lower := strings.ToLower(a)
	if strings.Contains(lower, "x-aws-ec2-metadata-token") {
		a = tokenHeaderRe.ReplaceAllString(a, "${1}"+Redacted)
	}
	if strings.Contains(a, "AQAE") {
		a = tokenValueRe.ReplaceAllString(a, Redacted)
	}
	if strings.Contains(lower, "secret") || strings.Contains(lower, "token") {
		a = credentialRe.ReplaceAllString(a, "${1}"+Redacted)
	}
	return a
}

// redactSlack is how far past maxArgBytes an argument is read before
// redaction, so that a token starting before the display bound is matched
// whole (IMDS tokens are about 60 to 100 bytes).
const redactSlack = 256

// joinArgs turns argv into one display string: secrets redacted, arguments
// quoted in shell style where needed, each and the whole bounded. Work is
// bounded too: arguments past the bound are not looked at.
func joinArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if b.Len() > maxCmdlineBytes {
			break
		}
		prev := ""
		if i > 0 {
			prev = args[i-1]
			b.WriteByte(' ')
		}
		if len(a) > maxArgBytes+redactSlack {
			a = a[:maxArgBytes+redactSlack]
		}
		b.WriteString(shellQuote(clean(redactArg(prev, a), maxArgBytes)))
	}
	return clean(b.String(), maxCmdlineBytes)
}

// shellQuote quotes a for a POSIX shell when it holds anything but plain
// characters.
func shellQuote(a string) string {
	if a == "" {
		return "''"
	}
	plain := true
	for _, r := range a {
		if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("-_./:=@%+,", r))) {
			plain = false
			break
		}
	}
	if plain {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
