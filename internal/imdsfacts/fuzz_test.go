package imdsfacts

import "testing"

func FuzzVersionCompare(f *testing.F) {
	for _, s := range [][2]string{
		{"1.11.678", "1.11.500"}, {"v1.25.38", "v1.25.38-0.20191120000000-abcdef"}, {"2.10.21-SNAPSHOT", "2.10.21"},
		{"1.13.25rc1", "1.13.25.post1"}, {"0.19.0", "v0.19"}, {"v2.0.0+incompatible", "2.0.0"}, {"1..0", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := ParseVersion(a)
		vb, errB := ParseVersion(b)
		if errA != nil || errB != nil {
			return
		}
		if va.Compare(va) != 0 {
			t.Errorf("compare(%q, itself) != 0", a)
		}
		if ab, ba := va.Compare(vb), vb.Compare(va); ab != -ba {
			t.Errorf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		again, err := ParseVersion(va.String())
		if err != nil || again.Compare(va) != 0 {
			t.Errorf("%q does not parse back to itself: %v", a, err)
		}
		if older, ok := OlderThan(a, b); !ok || older != (va.Compare(vb) < 0) {
			t.Errorf("OlderThan(%q, %q) = %v, %v", a, b, older, ok)
		}
	})
}
