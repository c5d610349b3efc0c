package audit

import "strings"

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
