package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EscapeLines is EscapeText for multi-line text that a person reads on a terminal, such as a
// script or a JSON document: line breaks and tabs stay as they are, every other control
// character, escape sequence, invisible rune and invalid byte is escaped as EscapeText does.
func EscapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		cells := strings.Split(line, "\t")
		for j, c := range cells {
			cells[j] = EscapeText(c)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}

// EscapeJSON rewrites JSON text so that a terminal shows it as it is: the C1 control
// characters (U+0080-U+009F) and the bidirectional controls (U+061C, U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069), which encoding/json leaves raw, become \uXXXX escapes. They
// can only occur inside strings, and a JSON reader decodes the escape to the same character:
// the data is unchanged. Every JSON output of strings taken from processes and requests (comm,
// command line, executable, cgroup and unit names, User-Agent, path) goes through it.
func EscapeJSON(b []byte) []byte {
	first := -1
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if invisibleInJSON(r) {
			first = i
			break
		}
		i += n
	}
	if first < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:first]...)
	for i := first; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if invisibleInJSON(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// invisibleInJSON reports whether r is left raw by encoding/json but acts on a terminal.
func invisibleInJSON(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r)
}

// WriteIndentedJSON writes v as indented JSON with the invisible controls escaped (EscapeJSON):
// the layout of every single-document JSON output of the commands.
func WriteIndentedJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(EscapeJSON(b.Bytes()))
	return err
}
