package audit

import (
	"fmt"
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

// Redacted replaces secrets found in command lines, request paths and
// User-Agents (see redact_structure.go and redact_known.go).
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

// redactText redacts one text taken from the wire or /proc (a request path,
// a User-Agent): remembered tokens first, then structure. known may be nil.
func redactText(s string, known *knownTokens) string {
	return redactStructure(known.scrub(s))
}

// redactArgs redacts argv as one text, so that a key in one argument finds
// its value in the next (--token T); the arguments keep their boundaries.
func redactArgs(args []string, known *knownTokens) []string {
	text := redactText(strings.Join(args, string(argSep)), known)
	return strings.Split(text, string(argSep))
}

// redactSlack is how far past maxArgBytes an argument is read before
// redaction, so that a token starting before the display bound is matched
// whole.
const redactSlack = maxKnownTokenLen

// joinArgs turns argv into one display string: secrets redacted, arguments
// quoted in shell style where needed, each and the whole bounded. Work is
// bounded too: arguments past the bound are not looked at.
func joinArgs(args []string, known *knownTokens) string {
	var bounded []string
	total := 0
	for _, a := range args {
		if total > maxCmdlineBytes {
			break
		}
		if len(a) > maxArgBytes+redactSlack {
			a = a[:maxArgBytes+redactSlack]
		}
		bounded = append(bounded, a)
		total += len(a) + 1
	}
	var b strings.Builder
	for i, a := range redactArgs(bounded, known) {
		if b.Len() > maxCmdlineBytes {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(clean(a, maxArgBytes)))
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
