package audit

import (
	"bytes"
	"strings"
)

// Redaction by structure: secrets are recognised by where they stand or by
// what they look like, never by a list of known spellings.
//
//  1. A value after a secret-named key, in any syntax: a flag with "=" or
//     with the value as the next argument (--token T, --secret=S), key=value
//     and environment assignments (TOKEN=T; ... in a shell script), "key: value"
//     headers, JSON ("SecretAccessKey": "S"), configuration keys followed by
//     their value (aws configure set default.aws_secret_access_key S), query
//     and path parameters (?token=T, ;tok=T). A key is secret-named when its
//     last word (split at - _ . and case changes) is token, tok, secret,
//     password, passwd, passphrase, pass, credential(s), signature or
//     authorization, or it is a key or value qualified by secret, private,
//     api, session or signing (secret_access_key, apiKey). "$NAME" values are
//     kept: a variable name is not a secret and helps find the script. The
//     password of a URL's user information (scheme://user:password@) is
//     redacted too.
//  2. A long high-entropy token: a run of base64 characters (A-Z a-z 0-9 + /
//     _ -), judged in its "/"-separated pieces so that a token in a path goes
//     and the path stays (and as a whole when no piece is a lower-case word,
//     for a token whose own base64 holds slashes): at least 24 characters,
//     upper and lower case letters, digits in two places or more (not one
//     number at the end), separators (- _ +) at most 12%, and the class (upper, lower, digit) changing at 35% of
//     adjacent letters and digits or more (random base64: about 62%). What
//     is NOT redacted, on purpose: identifiers the report needs, which are
//     hexadecimal or single case (instance and AMI ids, UUIDs in cgroup names
//     and pod UIDs, 64-hex container ids, access key ids like AKIA...), paths,
//     CamelCase names (which carry separators or lack digits) and words. On
//     this machine's 94,000 paths and command lines the rule changed one (a
//     Go build id, which is random).

// argSep separates arguments in the text redactArgs scans, so that a key in
// one argument finds its value in the next; argv never holds a NUL.
const argSep = '\x00'

// redactStructure applies both structural rules to s.
func redactStructure(s string) string {
	return redactEntropy(redactKeys(s))
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == argSep
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// isValueEnd ends a value that is not quoted.
func isValueEnd(c byte) bool {
	return isSpace(c) || strings.IndexByte("\"'`;&,|)}<>#", c) >= 0
}

var (
	// secretLastWords name a secret when they are the last word of a key.
	secretLastWords = map[string]bool{
		"token": true, "tok": true, "secret": true, "secrets": true, "password": true, "passwd": true,
		"passphrase": true, "pass": true, "credential": true, "credentials": true, "signature": true,
		"authorization": true, "apikey": true, "secretkey": true, "accesstoken": true, "sessiontoken": true,
		"privatekey": true, "secretaccesskey": true,
	}
	// qualifiedLastWords name a secret when another word of the key qualifies them.
	qualifiedLastWords = map[string]bool{"key": true, "value": true}
	secretQualifiers   = map[string]bool{"secret": true, "private": true, "api": true, "session": true, "signing": true}
	// secretSuffixes catch keys written as one lower-case word.
	secretSuffixes = []string{"token", "secret", "password", "passwd", "secretkey", "secretaccesskey", "apikey", "privatekey"}
	// authSchemes precede the credential in an Authorization value.
	authSchemes = map[string]bool{"bearer": true, "basic": true, "digest": true, "negotiate": true, "token": true,
		"aws4-hmac-sha256": true, "ntlm": true, "oauth": true}
)

// keyWords splits a key into lower-case words at - _ . and case changes
// (secretAccessKey, SecretAccessKey, AWS_SECRET_ACCESS_KEY, XMLHttpToken).
func keyWords(name string) []string {
	var words []string
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, strings.ToLower(name[start:end]))
		}
		start = -1
	}
	isUpper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	isLower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			flush(i)
			continue
		}
		if start >= 0 && isUpper(c) && i > 0 {
			prev := name[i-1]
			if isLower(prev) || prev >= '0' && prev <= '9' ||
				isUpper(prev) && i+1 < len(name) && isLower(name[i+1]) {
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(name))
	return words
}

// secretHints are in every secret-named key (lower case): a name without
// any of them is not split into words at all.
var secretHints = [][]byte{[]byte("tok"), []byte("secret"), []byte("pass"), []byte("cred"), []byte("signature"),
	[]byte("auth"), []byte("key")}

// secretKey reports whether name is a secret-named key, and its last word.
func secretKey(name string) (string, bool) {
	var buf [64]byte
	if len(name) <= len(buf) {
		lower := buf[:len(name)]
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
		hinted := false
		for _, h := range secretHints {
			if bytes.Contains(lower, h) {
				hinted = true
				break
			}
		}
		if !hinted {
			return "", false
		}
	}
	words := keyWords(name)
	if len(words) == 0 {
		return "", false
	}
	last := words[len(words)-1]
	if secretLastWords[last] {
		return last, true
	}
	if qualifiedLastWords[last] {
		for _, w := range words[:len(words)-1] {
			if secretQualifiers[w] {
				return last, true
			}
		}
	}
	for _, suf := range secretSuffixes {
		if len(last) > len(suf) && strings.HasSuffix(last, suf) {
			return last, true
		}
	}
	return last, false
}

// redactKeys replaces the values of secret-named keys in s.
func redactKeys(s string) string {
	var b strings.Builder
	done := 0
	for i := 0; i < len(s); {
		if s[i] == ':' && strings.HasPrefix(s[i:], "://") {
			if from, to, ok := urlPassword(s, i+3); ok {
				b.WriteString(s[done:from])
				b.WriteString(Redacted)
				done, i = to, to
				continue
			}
		}
		if !isIdentChar(s[i]) {
			i++
			continue
		}
		start := i
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		last, secret := secretKey(s[start:i])
		if !secret {
			continue
		}
		v, ok := valueStart(s, start, i)
		if !ok {
			continue
		}
		if last == "authorization" {
			v = skipAuthScheme(s, v)
		}
		from, to, ok := valueSpan(s, v)
		if !ok {
			continue
		}
		b.WriteString(s[done:from])
		b.WriteString(Redacted)
		done, i = to, to
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// valueStart finds where the value of the key s[start:end] begins: after a
// separator ("=", ":", with spaces and a closing quote allowed before it),
// or, for a key that is a whole word, in the next word.
func valueStart(s string, start, end int) (int, bool) {
	j := end
	if j < len(s) && (s[j] == '"' || s[j] == '\'') {
		j++ // "Token": ...
	}
	k := skipSpace(s, j)
	if k < len(s) && (s[k] == '=' || s[k] == ':') {
		// The value is on the same line: "tok:" ending a line of a
		// script is a label, not an assignment.
		for k++; k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == argSep); k++ {
		}
		return k, true
	}
	whole := start == 0 || isSpace(s[start-1]) || s[start-1] == '"' || s[start-1] == '\''
	if j != end || !whole || k == end || k >= len(s) || looksLikeFlag(s, k) {
		return 0, false
	}
	return k, true
}

// looksLikeFlag says whether the word at i is an option rather than a value
// (aws sts get-session-token --duration-seconds 900).
func looksLikeFlag(s string, i int) bool {
	if s[i] != '-' {
		return false
	}
	j := i
	for j < len(s) && !isValueEnd(s[j]) && s[j] != '=' {
		j++
	}
	w := s[i:j]
	return strings.HasPrefix(w, "--") || len(w) <= 20
}

// skipAuthScheme skips "Bearer " and the like in an Authorization value.
func skipAuthScheme(s string, v int) int {
	j := v
	for j < len(s) && !isValueEnd(s[j]) {
		j++
	}
	if !authSchemes[strings.ToLower(s[v:j])] || j >= len(s) || (s[j] != ' ' && s[j] != '\t') {
		return v
	}
	return skipSpace(s, j)
}

// valueSpan returns the bytes of the value at v to replace: the inside of a
// quoted value, else up to the next space or delimiter. A variable
// reference and an already redacted value are left alone.
func valueSpan(s string, v int) (int, int, bool) {
	if v >= len(s) {
		return 0, 0, false
	}
	from, to := v, v
	switch q := s[v]; q {
	case '"', '\'':
		from = v + 1
		for to = from; to < len(s) && s[to] != q && s[to] != argSep && s[to] != '\n'; to++ {
			if q == '"' && s[to] == '\\' && to+1 < len(s) {
				to++
			}
		}
		to = min(to, len(s))
	default:
		for to < len(s) && !isValueEnd(s[to]) {
			to++
		}
	}
	val := s[from:to]
	if val == "" || val[0] == '$' || strings.HasPrefix(val, Redacted) {
		return 0, 0, false
	}
	return from, to, true
}

// urlPassword finds the password in the user information of a URL whose
// authority starts at i (after "://").
func urlPassword(s string, i int) (int, int, bool) {
	end := i
	for end < len(s) && !isSpace(s[end]) && strings.IndexByte("/?#\"'", s[end]) < 0 {
		end++
	}
	at := strings.LastIndexByte(s[i:end], '@')
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(s[i:i+at], ':')
	if colon < 0 || colon+1 == at || strings.HasPrefix(s[i+colon+1:], Redacted) {
		return 0, 0, false
	}
	return i + colon + 1, i + at, true
}

// Bounds of the high-entropy rule (see the top of this file).
const (
	minEntropyLen         = 24
	minClassChangePercent = 35
	maxSeparatorPercent   = 12
)

func isBase64Char(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-'
}

func charClass(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return 0
	case c >= 'a' && c <= 'z':
		return 1
	case c >= '0' && c <= '9':
		return 2
	}
	return 3
}

// redactEntropy replaces long high-entropy tokens in s.
func redactEntropy(s string) string {
	var b strings.Builder
	done := 0
	for i := 0; i < len(s); {
		if !isBase64Char(s[i]) {
			i++
			continue
		}
		start := i
		for i < len(s) && isBase64Char(s[i]) {
			i++
		}
		if i-start < minEntropyLen {
			continue
		}
		for _, sp := range randomSpans(s[start:i]) {
			from, to := start+sp[0], start+sp[1]
			if to == i { // base64 padding belongs to the token
				for n := 0; n < 2 && to < len(s) && s[to] == '='; n++ {
					to++
				}
			}
			b.WriteString(s[done:from])
			b.WriteString(Redacted)
			done = to
		}
		i = max(i, done)
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// randomSpans returns the high-entropy spans of run (a run of base64
// characters), as offsets. The run is cut at "/" into pieces; consecutive
// pieces that are not lower-case words are judged together (a token whose
// own base64 holds slashes), without end pieces of a single class
// ("meta-data"), and, when the group is not random, piece by piece. So a
// token in a path goes and the path stays.
func randomSpans(run string) [][2]int {
	var spans [][2]int
	var group [][2]int
	judge := func() {
		for len(group) > 0 && classes(run[group[0][0]:group[0][1]]) < 2 {
			group = group[1:]
		}
		for len(group) > 0 && classes(run[group[len(group)-1][0]:group[len(group)-1][1]]) < 2 {
			group = group[:len(group)-1]
		}
		if len(group) > 0 && looksRandom(run[group[0][0]:group[len(group)-1][1]]) {
			spans = append(spans, [2]int{group[0][0], group[len(group)-1][1]})
		} else {
			for _, p := range group {
				if looksRandom(run[p[0]:p[1]]) {
					spans = append(spans, p)
				}
			}
		}
		group = group[:0]
	}
	for from := 0; from <= len(run); {
		to := strings.IndexByte(run[from:], '/')
		if to < 0 {
			to = len(run)
		} else {
			to += from
		}
		if to == from || isWord(run[from:to]) {
			judge()
		} else {
			group = append(group, [2]int{from, to})
		}
		from = to + 1
	}
	judge()
	return spans
}

// classes counts the classes among upper case, lower case and digits in p.
func classes(p string) int {
	var seen [4]bool
	for i := 0; i < len(p); i++ {
		seen[charClass(p[i])] = true
	}
	n := 0
	for _, b := range seen[:3] {
		if b {
			n++
		}
	}
	return n
}

// isWord says whether a piece reads as a word of a path rather than part of
// a token: no upper case and four lower-case letters in a row ("latest",
// "meta-data", "x86_64-linux-gnu"). Shorter single-class pieces ("usr") are
// trimmed from a group's ends anyway.
func isWord(p string) bool {
	run := 0
	word := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 'A' && c <= 'Z':
			return false
		case c >= 'a' && c <= 'z':
			if run++; run >= 4 {
				word = true
			}
		default:
			run = 0
		}
	}
	return word
}

// looksRandom applies the high-entropy test to a span: slashes are
// ignored, separators (- _ +) are counted but do not break the class
// sequence.
func looksRandom(span string) bool {
	n, seps, changes, digitRuns, prev := 0, 0, 0, 0, -1
	var seen [4]int
	for i := 0; i < len(span); i++ {
		if span[i] == '/' {
			continue
		}
		n++
		c := charClass(span[i])
		if c == 3 {
			seps++
			continue
		}
		seen[c]++
		if prev >= 0 && c != prev {
			changes++
		}
		if c == 2 && prev != 2 {
			digitRuns++
		}
		prev = c
	}
	letters := n - seps
	return n >= minEntropyLen && seen[0] > 0 && seen[1] > 0 && digitRuns >= 2 && seps*100 <= maxSeparatorPercent*n &&
		changes*100 >= minClassChangePercent*(letters-1)
}
