package scan

import (
	"context"
	"strings"
	"testing"
)

// allKinds lists every Kind the scan produces.
var allKinds = []Kind{KindOldSDK, KindCurrentSDK, KindTokenlessAPI, KindV1FallbackAllowed, KindIMDSDisabled, KindV1FallbackDisabled}

// TestFindingsSayEachThingOnce renders every kind of finding a scan produces,
// as Summary's one line and as WriteText's block, and fails on text said twice
// (an old-sdk finding once read "botocore 1.12.0 is older than 1.13.25, the
// first version that can use IMDSv2 (...): botocore 1.12.0 is older than
// 1.13.25, the first version that supports IMDSv2: ...").
func TestFindingsSayEachThingOnce(t *testing.T) {
	root, _ := plantOld(t)
	rep, err := Run(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Kind]bool{}
	for _, f := range rep.Findings {
		seen[f.Kind] = true
		line := f.Summary()
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("%s: Summary is more than one line: %q", f.Path, line)
		}
		if rep := repeatedWords(line, 5); rep != "" {
			t.Errorf("%s: Summary says %q twice: %s", f.Path, rep, line)
		}
		// A setting names its software itself; Product ("AWS SDK environment") would add nothing.
		want := []string{f.Setting, f.Why}
		switch {
		case f.Kind == KindCurrentSDK:
			want = []string{f.Product, f.Version, canUse(f.MinVersion), f.Evidence, f.Why}
		case f.Version != "":
			want = []string{f.Product, f.Version, f.MinVersion, f.Evidence, f.Why}
		}
		for _, want := range want {
			if !strings.Contains(line, want) {
				t.Errorf("%s: Summary %q leaves out %q", f.Path, line, want)
			}
		}
		one := &Report{Findings: []Finding{f}}
		block := describe(one)
		block = block[strings.Index(block, "\n\n")+2:] // after the summary line of the report
		var rest []string
		for _, l := range strings.Split(block, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "at:") { // the path may hold the version
				rest = append(rest, l)
			}
		}
		// The path may hold the version too.
		text := strings.ReplaceAll(strings.Join(rest, "\n"), quotePath(f.Path), "<path>")
		if rep := repeatedWords(text, 5); rep != "" {
			t.Errorf("%s: the text report says %q twice:\n%s", f.Path, rep, block)
		}
		if f.Version != "" && strings.Count(text, f.Version) != 1 {
			t.Errorf("%s: the text report names version %s %d times:\n%s", f.Path, f.Version, strings.Count(text, f.Version), block)
		}
	}
	for _, k := range allKinds {
		if !seen[k] {
			t.Errorf("the planted tree gave no %s finding: this test no longer covers every kind", k)
		}
	}
}

// repeatedWords returns the first run of n words that occurs twice in s,
// ignoring case and punctuation around words, or "".
func repeatedWords(s string, n int) string {
	var words []string
	for _, w := range strings.Fields(strings.ToLower(s)) {
		if w = strings.Trim(w, `.,:;()"`); w != "" {
			words = append(words, w)
		}
	}
	seen := map[string]bool{}
	for i := 0; i+n <= len(words); i++ {
		run := strings.Join(words[i:i+n], " ")
		if seen[run] {
			return run
		}
		seen[run] = true
	}
	return ""
}
