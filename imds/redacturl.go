package imds

import "strings"

// RedactURL returns raw with the user information of the URL in it ("user:password@") replaced by
// "[redacted]@", so that a URL can be shown in a message or a log without its password. It works
// on text that does not parse as a URL too, and errs on the side of hiding: everything between
// "scheme://" (or "//", or the start) and the last "@" goes, so an "@" in a path or fragment hides
// the host as well. A string without "@" is returned unchanged.
//
// Every message of this module that shows a URL a user or a server supplied passes it through
// RedactURL first.
func RedactURL(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return raw
	}
	start := 0
	switch i := strings.Index(raw, "://"); {
	case i >= 0 && i < at:
		start = i + 3
	case strings.HasPrefix(raw, "//"):
		start = 2
	}
	return raw[:start] + redacted + raw[at:]
}
