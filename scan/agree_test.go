package scan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// TestAuditAndScanAgree asks the auditor (audit/sdk, from a User-Agent) and
// the scan (from an installed version) the same question, "is this release
// older than the first one that can use IMDSv2?", for every product both know
// and, per product, the minimum, one release below and one above, pre-releases
// of each and each with a leading "v". They once had two comparators that
// disagreed on "2.0.0-preview" and on "v1.25.38".
func TestAuditAndScanAgree(t *testing.T) {
	// The User-Agent by which the auditor recognises each scan product.
	// The v3 packages send none (audit/sdk names them by other means); the
	// User-Agent of the v3 clients that do send one stands in for them.
	jsV3 := "aws-sdk-js/%s ua/2.1 os/linux lang/js md/nodejs#20.0.0"
	userAgents := map[string]string{
		prodBotocore.pkg:               "Botocore/%s Python/3.7.4 Linux/4.14",
		prodBoto3.pkg:                  "Boto3/%s Python/3.7.4",
		prodAWSCLIv1.pkg:               "aws-cli/%s Python/3.8.10 Linux/5.4.0",
		prodCloudInit.pkg:              "Cloud-Init/%s",
		prodGoV1.pkg:                   "aws-sdk-go/%s (go1.13.4; linux; amd64)",
		prodGoV2.pkg:                   "aws-sdk-go-v2/%s os/linux lang/go#1.21.0",
		prodJavaV1.pkg:                 "aws-sdk-java/%s Linux/4.14 OpenJDK_64-Bit_Server_VM/25.222-b10 java/1.8.0_222",
		prodJavaV1Bundle.pkg:           "aws-sdk-java/%s Linux/4.14 OpenJDK_64-Bit_Server_VM/25.222-b10 java/1.8.0_222",
		prodJavaV2.pkg:                 "aws-sdk-java/%s Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.6+10-LTS Java/17.0.6",
		prodJSv2.pkg:                   "aws-sdk-nodejs/%s linux/v10.16.0",
		prodJSv3.pkg:                   jsV3,
		prodJSv3Old.pkg:                jsV3,
		prodJSv3MetadataService.pkg:    jsV3,
		prodRuby.pkg:                   "aws-sdk-ruby3/%s ruby/2.6.5 x86_64-linux",
		prodPHP.pkg:                    "aws-sdk-php/%s GuzzleHttp/6.3.3",
		prodAWSCLIv2.pkg + " " + "any": "aws-cli/%s Python/3.11.2 Linux/6.1.0 source/x86_64.debian.12",
	}
	pairs := 0
	for _, p := range allProducts {
		key := p.pkg
		if p.minVersion() == imdsfacts.AllReleases && p.pkg == prodAWSCLIv1.pkg {
			key += " any"
		}
		ua, ok := userAgents[key]
		if !ok {
			t.Errorf("%s: no User-Agent for it in this test", p.displayName())
			continue
		}
		if p.minVersion() == imdsfacts.AllReleases {
			// Every release can: neither says older, and both know it.
			// The auditor tells the CLI v2 and JavaScript v3 by their major.
			major := "3"
			if p.pkg == prodAWSCLIv1.pkg {
				major = "2"
			}
			for _, v := range []string{major + ".0.0", major + ".1175.0", major + ".0.0-rc.1", "v" + major + ".9.19"} {
				f, _ := checkVersion(p, "/x", v, "test")
				got := sdk.Identify(fmt.Sprintf(ua, v))
				if f.Kind == KindOldSDK || got.BelowMin || got.MinIMDSv2 != imdsfacts.AllReleases {
					t.Errorf("%s %s: the scan says %s, the auditor (%s) below %v, minimum %q", p.displayName(), v, f.Kind, got.Product, got.BelowMin, got.MinIMDSv2)
				}
				pairs++
			}
			continue
		}
		min := strings.TrimPrefix(p.minVersion(), "v")
		if got := sdk.Identify(fmt.Sprintf(ua, min)); got.MinIMDSv2 == "" {
			// Both take every minimum from imdsfacts: a product the auditor names without one
			// is a second copy of the facts somewhere.
			t.Errorf("%s: the auditor (%s) states no minimum; the scan's is %s", p.displayName(), got.Product, min)
			continue
		}
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
				f, _ := checkVersion(p, "/x", v, "test")
				scanOlder := f.Kind == KindOldSDK
				got := sdk.Identify(fmt.Sprintf(ua, v))
				// The auditor tells the CLI, Java and JavaScript majors apart by
				// the version, so a non-version names no product there.
				if got.MinIMDSv2 != min && c.version != "not-a-version" {
					t.Errorf("%s: the auditor's minimum is %s (%s), the scan's %s", p.displayName(), got.MinIMDSv2, got.Product, p.minVersion())
				}
				if scanOlder != got.BelowMin {
					t.Errorf("%s %s: the scan says older %v, the auditor (%s) %v", p.displayName(), v, scanOlder, got.Product, got.BelowMin)
				} else if scanOlder != c.older && c.version != "not-a-version" {
					t.Errorf("%s %s: both say older %v, want %v", p.displayName(), v, scanOlder, c.older)
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

// TestProductsUseTheTable: every product is an entry of imdsfacts.SDKs as it
// stands, never a copy with another minimum.
func TestProductsUseTheTable(t *testing.T) {
	for _, p := range allProducts {
		if !slices.Contains(imdsfacts.SDKs, p.sdk) {
			t.Errorf("%s: %+v is not an entry of imdsfacts.SDKs", p.displayName(), p.sdk)
		}
	}
}
