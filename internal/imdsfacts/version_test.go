package imdsfacts

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.11.678", "1.11.678", 0},
		{"1.11.500", "1.11.678", -1},
		{"1.11.1000", "1.11.678", 1}, // numeric, not lexical
		{"1.12.0", "1.11.678", 1},
		{"2.10.21", "2.10.21", 0},
		{"2.10.3", "2.10.21", -1},
		{"2.9.99", "2.10.21", -1},
		{"v1.25.38", "v1.25.38", 0},
		{"v1.25.0", "v1.25.38", -1},
		{"v1.55.0", "v1.25.38", 1},
		{"1.25.38", "v1.25.38", 0}, // the "v" does not matter
		{"V1.25.38", "v1.25.38", 0},
		{"0.19.0", "v0.19.0", 0},
		{"v0.18.0", "v0.19.0", -1},
		{"v1.0.0", "v0.19.0", 1},
		{"1.13", "1.13.0", 0}, // missing components are zero
		{"1.13.0.1", "1.13.0", 1},
		{"3.3.634.1", "3.3.634.1", 0}, // four parts (.NET, PowerShell)
		{"3.3.634.0", "3.3.634.1", -1},
		{"3.3.634", "3.3.634.1", -1},
		{"3.3.634.0", "3.3.634", 0},
		{"3.7.100.0", "3.3.634.1", 1},
		{"4.0.1", "4.0.1.0", 0},
		{"4.0.0.99", "4.0.1.0", -1},
		{"007.1", "7.1", 0}, // leading zeros
		{"99999999999999999999999.0", "1.0", 1},
		// Pre-releases sort before their release.
		{"2.0.0-preview", "2.0.0", -1},
		{"2.0.0-preview-10", "2.0.0", -1},
		{"2.0.0-preview-10", "1.11.678", 1},
		{"1.13.25-rc.1", "1.13.25", -1},
		{"1.13.25rc1", "1.13.25", -1},
		{"1.13.25.dev0", "1.13.25", -1},
		{"2.10.21-SNAPSHOT", "2.10.21", -1},
		{"1.13.25-rc.1", "1.13.24", 1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc9", "1.0.0-rc10", -1},
		{"1.0.0-rc.1", "1.0.0-RC.1", 0},
		// Go pseudo-versions: v1.25.38-0.<time>-<hash> is a commit after
		// v1.25.37, so older than v1.25.38.
		{"v1.25.38-0.20191120000000-abcdefabcdef", "v1.25.38", -1},
		{"v1.25.38-0.20191120000000-abcdefabcdef", "v1.25.37", 1},
		// Build metadata and PEP 440 local versions are ignored.
		{"v2.0.0+incompatible", "v2.0.0", 0},
		{"1.29.0+dfsg", "1.29.0", 0},
		// Post-releases sort after their release.
		{"1.16.289.post1", "1.16.289", 1},
		{"1.16.289.post1", "1.16.290", -1},
		// Maven's release qualifiers are the release.
		{"2.10.21.RELEASE", "2.10.21", 0},
		{"2.10.21.Final", "2.10.21", 0},
	}
	for _, tt := range tests {
		a, err := ParseVersion(tt.a)
		if err != nil {
			t.Fatalf("ParseVersion(%q): %v", tt.a, err)
		}
		b, err := ParseVersion(tt.b)
		if err != nil {
			t.Fatalf("ParseVersion(%q): %v", tt.b, err)
		}
		if got := a.Compare(b); got != tt.want {
			t.Errorf("compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := b.Compare(a); got != -tt.want {
			t.Errorf("compare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestParseVersionRejects(t *testing.T) {
	for _, s := range []string{
		"", "v", "abc", "-1.0", ".1", "1.0-", "1.0-$(reboot)", "1.0\x1b[2J", "1.0 beta", "1..0", "1.2.3.4.5.6.7.8.9",
		"1.0/../../etc", string(make([]byte, MaxVersionLen+1)),
	} {
		if v, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) = %+v, want an error", s, v)
		}
	}
}

func TestOlderThan(t *testing.T) {
	for _, p := range SDKs {
		if p.MinIMDSv2 == AllReleases {
			continue
		}
		if _, err := ParseVersion(p.MinIMDSv2); err != nil {
			t.Errorf("%s: minimum %q does not parse: %v", p.Name, p.MinIMDSv2, err)
		}
		if older, ok := OlderThan(p.MinIMDSv2, p.MinIMDSv2); !ok || older {
			t.Errorf("%s: the minimum itself is reported as older", p.Name)
		}
	}
	if older, ok := OlderThan("1.12.0", "1.13.25"); !ok || !older {
		t.Errorf("OlderThan(1.12.0, 1.13.25) = %v, %v", older, ok)
	}
	if _, ok := OlderThan("garbage", "1.13.25"); ok {
		t.Errorf("OlderThan(garbage) gave a verdict")
	}
	if _, ok := OlderThan("1.0", "bad minimum"); ok {
		t.Errorf("OlderThan with a bad minimum gave a verdict")
	}
}

func TestMajor(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want int
		ok   bool
	}{
		{"1.16.289", 1, true}, {"v2.0.0-preview", 2, true}, {"007.1", 7, true}, {"99999999999999999999999.0", 0, false},
	} {
		v, err := ParseVersion(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := v.Major(); got != tt.want || ok != tt.ok {
			t.Errorf("Major(%q) = %d, %v; want %d, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := (Version{}).Major(); ok {
		t.Error("the zero Version has a major")
	}
}
