// Package deploy holds deployment files (user data, a systemd unit); this test keeps the copy of
// the unit inside the user-data script the same as the unit file.
package deploy

import (
	"os"
	"strings"
	"testing"
)

// directives returns the non-empty, non-comment lines of a unit file.
func directives(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func TestUserDataEmbedsTheUnit(t *testing.T) {
	unit, err := os.ReadFile("imdsv2-audit.service")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("user-data.sh")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(script), "<<'UNIT'\n")
	embedded, _, ok2 := strings.Cut(rest, "\nUNIT\n")
	if !ok || !ok2 {
		t.Fatal("user-data.sh has no <<'UNIT' ... UNIT here-document")
	}
	want, got := directives(string(unit)), directives(embedded)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("the unit in user-data.sh differs from imdsv2-audit.service:\n got: %q\nwant: %q", got, want)
	}
	if !strings.Contains(string(script), "sha256sum -c") {
		t.Error("user-data.sh must check the binary's checksum before installing it")
	}
}
