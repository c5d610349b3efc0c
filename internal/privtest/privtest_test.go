package privtest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB whose Skipf and Fatalf record instead of stopping the test. Calling
// any other method panics (the embedded TB is nil), which proves Unavailable uses only these.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// TestUnavailable: outside CI a privileged test that cannot run is skipped, in CI it fails;
// either way the message names the reason.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"true", true}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			var r recorder
			Unavailable(&r, "needs a unicorn")
			said, other := r.skipped, r.failed
			if tc.wantFail {
				said, other = r.failed, r.skipped
			}
			if other != "" || !strings.Contains(said, "needs a unicorn") {
				t.Fatalf("skipped %q, failed %q; want only a %s naming the reason", r.skipped, r.failed,
					map[bool]string{false: "skip", true: "failure"}[tc.wantFail])
			}
		})
	}
}

func TestRequireMatchesEnvironment(t *testing.T) {
	t.Setenv("CI", "")
	var r recorder
	Require(&r)
	ok := runtime.GOOS == "linux" && os.Geteuid() == 0
	if ok {
		if has, err := HasCap(CapSysAdmin); err != nil || !has {
			ok = false
		}
	}
	if ok && (r.skipped != "" || r.failed != "") {
		t.Fatalf("privileged environment, but Require skipped %q / failed %q", r.skipped, r.failed)
	}
	if !ok && r.skipped == "" {
		t.Fatal("unprivileged environment, but Require did not skip")
	}
	if got := Missing(); (got == "") != ok {
		t.Fatalf("Missing() = %q, privileged = %v", got, ok)
	}
}

func TestInCI(t *testing.T) {
	t.Setenv("CI", "true")
	if !InCI() {
		t.Fatal("InCI() = false with CI=true")
	}
	for _, v := range []string{"", "false", "1"} {
		t.Setenv("CI", v)
		if InCI() {
			t.Fatalf("InCI() = true with CI=%q", v)
		}
	}
}

func TestParseCapEff(t *testing.T) {
	status := "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n" +
		"CapEff:\t0000000000201000\nCapBnd:\t000001ffffffffff\n"
	eff, err := parseCapEff(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if eff != 1<<CapNetAdmin|1<<CapSysAdmin {
		t.Fatalf("CapEff = %#x, want CAP_NET_ADMIN|CAP_SYS_ADMIN", eff)
	}
	for _, bad := range []string{"Name:\tx\n", "CapEff:\tzz\n", ""} {
		if _, err := parseCapEff(strings.NewReader(bad)); err == nil {
			t.Errorf("parseCapEff(%q) gave no error", bad)
		}
	}
}

func TestCapString(t *testing.T) {
	if CapBPF.String() != "CAP_BPF" || Cap(5).String() != "capability 5" {
		t.Fatalf("names: %s, %s", CapBPF, Cap(5))
	}
}
