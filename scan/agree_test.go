package scan

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit/sdk"
)

// TestAuditAndScanAgree asks the auditor (audit/sdk, from a User-Agent) and
// the scan (from an installed version) the same question, "is this release
// older than the first one that can use IMDSv2?", for every product both know
// and, per product, the minimum, one release below and one above, pre-releases
// of each and each with a leading "v". They once had two comparators that
// disagreed on "2.0.0-preview" and on "v1.25.38".
func TestAuditAndScanAgree(t *testing.T) {
	// The User-Agent by which the auditor recognises each scan product.
	userAgents := map[string]string{
		prodBotocore.pkg:     "Botocore/%s Python/3.7.4 Linux/4.14",
		prodBoto3.pkg:        "Boto3/%s Python/3.7.4",
		prodAWSCLIv1.pkg:     "aws-cli/%s Python/3.8.10 Linux/5.4.0",
		prodGoV1.pkg:         "aws-sdk-go/%s (go1.13.4; linux; amd64)",
		prodGoV2.pkg:         "aws-sdk-go-v2/%s os/linux lang/go#1.21.0",
		prodJavaV1.pkg:       "aws-sdk-java/%s Linux/4.14 OpenJDK_64-Bit_Server_VM/25.222-b10 java/1.8.0_222",
		prodJavaV1Bundle.pkg: "aws-sdk-java/%s Linux/4.14 OpenJDK_64-Bit_Server_VM/25.222-b10 java/1.8.0_222",
		prodJavaV2.pkg:       "aws-sdk-java/%s Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.6+10-LTS Java/17.0.6",
		prodJSv2.pkg:         "aws-sdk-nodejs/%s linux/v10.16.0",
		prodRuby.pkg:         "aws-sdk-ruby3/%s ruby/2.6.5 x86_64-linux",
		prodPHP.pkg:          "aws-sdk-php/%s GuzzleHttp/6.3.3",
	}
	pairs := 0
	for _, p := range allProducts {
		ua, ok := userAgents[p.pkg]
		if !ok {
			t.Errorf("%s: no User-Agent for it in this test", p.name)
			continue
		}
		min := strings.TrimPrefix(p.minVersion, "v")
		below, above := stepVersion(t, min, -1), stepVersion(t, min, +1)
		for _, c := range []struct {
			version string
			older   bool
		}{
			{min, false}, {below, true}, {above, false},
			{min + "-rc.1", true}, {min + "-preview", true}, {below + "-preview", true}, {above + "-rc.1", false},
			{min + ".0", false}, {"not-a-version", false},
		} {
			for _, v := range []string{c.version, "v" + c.version} {
				_, scanOlder := checkVersion(p, "/x", v, "test")
				got := sdk.Identify(fmt.Sprintf(ua, v))
				// The auditor tells the CLI, Java and JavaScript majors apart by
				// the version, so a non-version names no product there.
				if got.MinIMDSv2 != min && c.version != "not-a-version" {
					t.Errorf("%s: the auditor's minimum is %s (%s), the scan's %s", p.name, got.MinIMDSv2, got.Product, p.minVersion)
				}
				if scanOlder != got.BelowMin {
					t.Errorf("%s %s: the scan says older %v, the auditor (%s) %v", p.name, v, scanOlder, got.Product, got.BelowMin)
				} else if scanOlder != c.older && c.version != "not-a-version" {
					t.Errorf("%s %s: both say older %v, want %v", p.name, v, scanOlder, c.older)
				}
				pairs++
			}
		}
	}
	t.Logf("%d version pairs compared", pairs)
}

// stepVersion returns the release just above (+1: last component plus one) or
// below (-1: the last non-zero component minus one) a dotted release version.
func stepVersion(t *testing.T, v string, step int) string {
	parts := strings.Split(v, ".")
	i := len(parts) - 1
	if step < 0 {
		for i > 0 && parts[i] == "0" {
			i--
		}
	}
	n, err := strconv.Atoi(parts[i])
	if err != nil || n+step < 0 {
		t.Fatalf("cannot step %q by %d", v, step)
	}
	parts[i] = strconv.Itoa(n + step)
	return strings.Join(parts, ".")
}
