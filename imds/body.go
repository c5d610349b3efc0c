package imds

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// errTooLarge is readBody's signal that the answer exceeds the limit; callers turn it into an
// *Error that names the path.
var errTooLarge = errors.New("answer too large")

// readBody reads the whole body, at most limit bytes. With a Content-Length (what IMDS sends)
// the buffer is allocated once at the right size and a larger answer is refused before it is
// read; otherwise it grows as the body arrives.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if cl := resp.ContentLength; cl >= 0 {
		if cl > limit {
			return nil, errTooLarge
		}
		b := make([]byte, cl)
		// The last Read of a body with a known length returns io.EOF with the data, which lets
		// the transport reuse the connection at once.
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := resp.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// gunzipIfCompressed returns b decompressed when it starts with the gzip magic number, else b.
// The decompressed size is bounded by limit, so a small compressed bomb cannot exhaust memory.
func gunzipIfCompressed(b []byte, limit int64) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

// parseListing splits a directory listing: one entry per line, subdirectories with a trailing
// "/", optional final newline, CRLF tolerated. Anything else (control characters, invalid UTF-8,
// empty lines inside, an HTML error page) is refused, since it means the answer is not a
// listing.
func parseListing(b []byte) ([]string, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("listing is not valid UTF-8")
	}
	if len(b) > 0 && b[0] == '<' {
		return nil, errors.New("listing looks like an HTML or XML page")
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return []string{}, nil
	}
	entries := make([]string, 0, bytes.Count(b, []byte{'\n'})+1)
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			return nil, errors.New("listing has an empty line at entry " + strconv.Itoa(len(entries)+1))
		}
		for _, ch := range line {
			if ch < ' ' || ch == 0x7f {
				return nil, errors.New("listing entry " + strconv.Itoa(len(entries)+1) +
					" contains a control character")
			}
		}
		entries = append(entries, string(line))
	}
	return entries, nil
}
