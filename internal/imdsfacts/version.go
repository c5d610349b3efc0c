package imdsfacts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxVersionLen bounds what ParseVersion accepts: real versions are short, and a
// version string comes from files and requests an attacker may control.
const MaxVersionLen = 80

// Version is a parsed "semver-ish" version as the AWS SDKs of every ecosystem
// spell them: 1.11.678, 2.10.21, v1.25.38, 0.19.0, 3.3.634.1, with an optional
// suffix (-rc.1, rc1, .dev0, -SNAPSHOT, -preview, a Go pseudo-version's
// -0.2019...-hash, .post1) and optional build metadata after '+', which is
// ignored. The order is described in the package documentation.
type Version struct {
	raw string
	// core holds the numeric components with leading zeros removed, so that
	// numbers of any length compare as strings (length first, then bytes)
	// without overflowing.
	core []string
	// rank is -1 for a pre-release, 0 for a release, +1 for a post-release
	// (PEP 440 ".postN"), which sorts after the release it follows.
	rank int
	// tags are the suffix's identifiers, split at separators and at
	// letter/digit boundaries so that "rc10" sorts after "rc9".
	tags []string
}

// ErrNotVersion is wrapped by the errors of ParseVersion.
var ErrNotVersion = errors.New("not a version")

// ParseVersion parses s. It accepts a leading "v" or "V", 1 to 8 numeric
// components, and a suffix of letters, digits, '.', '-' and '_'. Anything
// else, including an empty string, is an error wrapping ErrNotVersion.
func ParseVersion(s string) (Version, error) {
	if s == "" || len(s) > MaxVersionLen {
		return Version{}, fmt.Errorf("%w: length %d", ErrNotVersion, len(s))
	}
	v := Version{raw: s}
	rest := strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		// Build metadata (semver) or a PEP 440 local version: not part of the order.
		rest = rest[:i]
	}
	for {
		n := 0
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 0 {
			return Version{}, fmt.Errorf("%w: %q has no number where one is expected", ErrNotVersion, s)
		}
		v.core = append(v.core, trimZeros(rest[:n]))
		rest = rest[n:]
		if len(v.core) > 8 {
			return Version{}, fmt.Errorf("%w: %q has too many components", ErrNotVersion, s)
		}
		if len(rest) >= 2 && rest[0] == '.' && isDigit(rest[1]) {
			rest = rest[1:]
			continue
		}
		break
	}
	if rest == "" {
		return v, nil
	}
	if isSep(rest[0]) {
		rest = rest[1:]
	}
	if rest == "" {
		return Version{}, fmt.Errorf("%w: %q ends with a separator", ErrNotVersion, s)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !isDigit(c) && !isLetter(c) && !isSep(c) {
			return Version{}, fmt.Errorf("%w: %q contains %q", ErrNotVersion, s, c)
		}
		if isSep(c) && (i == 0 || i == len(rest)-1 || isSep(rest[i-1])) {
			return Version{}, fmt.Errorf("%w: %q has an empty component", ErrNotVersion, s)
		}
	}
	v.tags = splitTags(strings.ToLower(rest))
	switch {
	case len(v.tags) == 0:
		return Version{}, fmt.Errorf("%w: %q has an empty suffix", ErrNotVersion, s)
	case v.tags[0] == "post":
		v.rank = 1
	case len(v.tags) == 1 && (v.tags[0] == "release" || v.tags[0] == "final" || v.tags[0] == "ga"):
		// Maven qualifiers that mean "the release itself".
		v.tags = nil
	default:
		// Anything else is treated as a pre-release. For the question "is this older
		// than the minimum" that errs on the side of reporting: a suffixed build of
		// exactly the minimum version is called older.
		v.rank = -1
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
// Missing numeric components count as zero (1.13 == 1.13.0).
func (v Version) Compare(w Version) int {
	for i := 0; i < len(v.core) || i < len(w.core); i++ {
		a, b := "0", "0"
		if i < len(v.core) {
			a = v.core[i]
		}
		if i < len(w.core) {
			b = w.core[i]
		}
		if c := compareNumeric(a, b); c != 0 {
			return c
		}
	}
	if v.rank != w.rank {
		return sign(v.rank - w.rank)
	}
	for i := 0; i < len(v.tags) && i < len(w.tags); i++ {
		if c := compareTag(v.tags[i], w.tags[i]); c != 0 {
			return c
		}
	}
	return sign(len(v.tags) - len(w.tags))
}

// String returns the version as it was written.
func (v Version) String() string { return v.raw }

// Major returns the first numeric component, and false when it does not fit
// an int.
func (v Version) Major() (int, bool) {
	if len(v.core) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(v.core[0])
	if err != nil {
		return 0, false
	}
	return n, true
}

// OlderThan reports whether found is older than minimum. ok is false when
// either is not a version ParseVersion accepts, so no verdict is possible:
// callers report such a version as unknown rather than guess.
func OlderThan(found, minimum string) (older, ok bool) {
	f, err := ParseVersion(found)
	if err != nil {
		return false, false
	}
	m, err := ParseVersion(minimum)
	if err != nil {
		return false, false
	}
	return f.Compare(m) < 0, true
}

// splitTags splits a suffix at '.', '-', '_' and between letters and digits.
func splitTags(s string) []string {
	var tags []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && start >= 0 && isDigit(s[i]) == isDigit(s[start]) && !isSep(s[i]) {
			continue
		}
		if start >= 0 {
			tags = append(tags, s[start:i])
			start = -1
		}
		if i < len(s) && !isSep(s[i]) {
			start = i
		}
	}
	return tags
}

// compareTag orders suffix identifiers as semver does: numbers by value,
// numbers before words, words by bytes.
func compareTag(a, b string) int {
	an, bn := isDigit(a[0]), isDigit(b[0])
	switch {
	case an && bn:
		return compareNumeric(trimZeros(a), trimZeros(b))
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

// compareNumeric compares decimal strings without leading zeros.
func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isSep(c byte) bool    { return c == '.' || c == '-' || c == '_' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
