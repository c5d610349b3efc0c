package sdk

import (
	"strings"
	"testing"
)

// The switch that turns the IMDSv1 fallback off came years after IMDSv2 (November 2023): a
// release before it ignores AWS_EC2_METADATA_V1_DISABLED, and the advice says which release to
// upgrade to first; one below the IMDSv2 minimum is told to upgrade straight to that release.
func TestV1SwitchByVersion(t *testing.T) {
	for _, tc := range []struct {
		ua        string
		disable   string // in DisableV1; "" means exactly DisableV1Fallback
		advice    string // in Advice
		belowMin  bool
		noDisable bool // DisableV1 empty (not an SDK)
	}{
		{ua: "Botocore/1.29.27 Python/3.11.2 Linux/6.1", disable: "after upgrading botocore to 1.32.4 or later (1.29.27 ignores it)",
			advice: "then set " + DisableV1Fallback + " after upgrading botocore"},
		{ua: "Botocore/1.32.4 Python/3.12.0", advice: "can use IMDSv2"},
		{ua: "aws-cli/2.9.19 Python/3.11.2 Linux/6.1 source/x86_64.debian.12 prompt/off command/configure.list",
			disable: "after upgrading AWS CLI v2 to 2.15.1 or later (2.9.19 ignores it)", advice: "every AWS CLI v2 release"},
		{ua: "aws-cli/2.15.1 Python/3.11.6", advice: "every AWS CLI v2 release"},
		{ua: "aws-cli/1.27.0 Python/3.11 botocore/1.29.0", disable: "after upgrading AWS CLI v1 to 1.30.4 or later (1.27.0 ignores it)"},
		{ua: "aws-sdk-go/1.25.37 (go1.26.8; linux; amd64)", belowMin: true,
			disable: "after upgrading AWS SDK for Go v1 to 1.47.2 or later (1.25.37 ignores it)",
			advice:  "upgrade AWS SDK for Go v1 from 1.25.37 to 1.47.2 or later (it uses IMDSv2 from 1.25.38 on, and honours AWS_EC2_METADATA_V1_DISABLED from 1.47.2 on)"},
		{ua: "aws-sdk-go/1.40.0 (go1.17; linux; amd64)", disable: "after upgrading AWS SDK for Go v1 to 1.47.2 or later (1.40.0 ignores it)"},
		{ua: "aws-sdk-go/1.55.8 (go1.26.8; linux; amd64)"},
		{ua: "aws-sdk-java/1.11.0 Linux/4.14", belowMin: true, advice: "to 1.11.678 or later (older versions cannot use IMDSv2)"},
		{ua: "aws-sdk-go-v2/1.48.0 os/linux lang/go#1.26.8", disable: "EnableFallback: aws.FalseTernary"},
		{ua: "Cloud-Init/19.3", belowMin: true, noDisable: true, advice: "upgrade cloud-init from 19.3 to 19.4 or later"},
		{ua: "Cloud-Init/22.4.2", noDisable: true, advice: "cloud-init 22.4.2 uses IMDSv2 once it has identified the platform as AWS"},
	} {
		i := Identify(tc.ua)
		switch {
		case tc.noDisable && i.DisableV1 != "":
			t.Errorf("%s: DisableV1 %q, want none", tc.ua, i.DisableV1)
		case !tc.noDisable && tc.disable == "" && i.DisableV1 != DisableV1Fallback:
			t.Errorf("%s: DisableV1 %q, want %q", tc.ua, i.DisableV1, DisableV1Fallback)
		case !strings.Contains(i.DisableV1, tc.disable):
			t.Errorf("%s: DisableV1 %q lacks %q", tc.ua, i.DisableV1, tc.disable)
		}
		if !strings.Contains(i.Advice, tc.advice) || i.BelowMin != tc.belowMin {
			t.Errorf("%s: advice %q (below minimum %v), want %q (%v)", tc.ua, i.Advice, i.BelowMin, tc.advice, tc.belowMin)
		}
	}
}
