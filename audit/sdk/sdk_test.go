package sdk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

func TestIdentify(t *testing.T) {
	tests := []struct {
		ua       string
		product  string
		version  string
		belowMin bool
		kind     Kind
	}{
		{"aws-cli/1.18.69 Python/3.8.10 Linux/5.4.0-1045-aws botocore/1.16.19", "aws-cli-v1", "1.18.69", false, KindAWSSDK},
		{"aws-cli/1.16.0 Python/2.7.16 Linux/4.14.138-114.102.amzn2.x86_64 botocore/1.12.0", "aws-cli-v1", "1.16.0", true, KindAWSSDK},
		{"aws-cli/1.16.289 Python/3.6.0 Linux/4.14 botocore/1.13.25", "aws-cli-v1", "1.16.289", false, KindAWSSDK},
		{"aws-cli/2.13.5 Python/3.11.4 Linux/5.10.184-175.731.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off command/ec2.describe-instances", "aws-cli-v2", "2.13.5", false, KindAWSSDK},
		{"aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3.ls", "aws-cli-v2", "2.15.30", false, KindAWSSDK},
		{"Boto3/1.9.188 Python/2.7.16 Linux/4.14.133-113.105.amzn2.x86_64 Botocore/1.12.188", "botocore", "1.12.188", true, KindAWSSDK},
		{"Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#6.1.72-96.166.amzn2023.x86_64 md/arch#x86_64 lang/python#3.9.16 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.34", "botocore", "1.34.34", false, KindAWSSDK},
		{"Botocore/1.13.25 Python/3.7.4 Linux/4.14", "botocore", "1.13.25", false, KindAWSSDK},
		{"Boto3/1.12.5 Python/3.7.4", "boto3", "1.12.5", true, KindAWSSDK},
		{"aws-sdk-go/1.44.298 (go1.20.6; linux; amd64)", "aws-sdk-go", "1.44.298", false, KindAWSSDK},
		{"aws-sdk-go/1.25.37 (go1.13.4; linux; amd64)", "aws-sdk-go", "1.25.37", true, KindAWSSDK},
		{"aws-sdk-go-v2/1.21.0 os/linux lang/go#1.21.0 md/GOOS#linux md/GOARCH#amd64 ft/ec2-imds", "aws-sdk-go-v2", "1.21.0", false, KindAWSSDK},
		{"aws-sdk-go-v2/0.18.0 (go1.13.5; linux; amd64)", "aws-sdk-go-v2", "0.18.0", true, KindAWSSDK},
		{"aws-sdk-java/1.11.600 Linux/4.14.146-119.123.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/25.222-b10 java/1.8.0_222 vendor/Oracle_Corporation", "aws-sdk-java-v1", "1.11.600", true, KindAWSSDK},
		{"aws-sdk-java/1.12.261 Linux/5.10.118-111.515.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/11.0.15+10-LTS java/11.0.15 scala/2.12.15 kotlin/1.6.21 vendor/Amazon.com_Inc.", "aws-sdk-java-v1", "1.12.261", false, KindAWSSDK},
		{"aws-sdk-java/2.20.43 Linux/5.10.173-154.642.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.6+10-LTS Java/17.0.6 vendor/Amazon.com_Inc. io/sync http/UrlConnection cfg/retry-mode/legacy", "aws-sdk-java-v2", "2.20.43", false, KindAWSSDK},
		{"aws-sdk-java/2.10.0 Linux/4.14 OpenJDK_64-Bit_Server_VM/11 Java/11 vendor/Amazon.com_Inc. io/sync http/Apache", "aws-sdk-java-v2", "2.10.0", true, KindAWSSDK},
		{"aws-sdk-java/2.21.0 ua/2.0 os/Linux#5.10 lang/java#17.0.8 md/OpenJDK_64-Bit_Server_VM#17.0.8+7-LTS md/vendor#Amazon.com_Inc. md/en_US", "aws-sdk-java-v2", "2.21.0", false, KindAWSSDK},
		{"aws-sdk-nodejs/2.1354.0 linux/v18.16.0 exec-env/AWS_ECS_EC2", "aws-sdk-js-v2", "2.1354.0", false, KindAWSSDK},
		{"aws-sdk-nodejs/2.500.0 linux/v10.16.0", "aws-sdk-js-v2", "2.500.0", true, KindAWSSDK},
		{"aws-sdk-js/3.350.0 ua/2.0 os/linux#5.10.178 lang/js md/nodejs#18.16.0 api/s3#3.350.0", "aws-sdk-js-v3", "3.350.0", false, KindAWSSDK},
		{"aws-sdk-nodejs-v3-@aws-sdk/client-s3/3.4.1 linux/v14.15.4", "aws-sdk-js-v3", "3.4.1", false, KindAWSSDK},
		{"aws-sdk-dotnet-coreclr/3.7.104.17 aws-sdk-dotnet-core/3.7.100.0 .NET_Core/6.0.1 OS/Linux_5.10 ClientAsync", "aws-sdk-dotnet", "3.7.100.0", false, KindAWSSDK},
		{"aws-sdk-dotnet-45/3.3.100.0 aws-sdk-dotnet-core/3.3.600.5 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_10.0.14393.0 ClientSync", "aws-sdk-dotnet", "3.3.600.5", true, KindAWSSDK},
		{"aws-sdk-ruby3/3.79.0 ruby/2.6.5 x86_64-linux", "aws-sdk-ruby", "3.79.0", false, KindAWSSDK},
		{"aws-sdk-ruby3/3.50.0 ruby/2.5.1 x86_64-linux aws-sdk-s3/1.30.0", "aws-sdk-ruby", "3.50.0", true, KindAWSSDK},
		{"aws-sdk-ruby2/2.11.0 ruby/2.5.1 x86_64-linux", "aws-sdk-ruby", "2.11.0", true, KindAWSSDK},
		{"aws-sdk-php/3.100.0 GuzzleHttp/6.3.3 curl/7.61.1 PHP/7.2.19", "aws-sdk-php", "3.100.0", true, KindAWSSDK},
		{"aws-sdk-php/3.283.0 OS/Linux/5.10 GuzzleHttp/7 lang/php/8.2.8", "aws-sdk-php", "3.283.0", false, KindAWSSDK},
		{"aws-sdk-cpp/1.7.200 Linux/4.14 x86_64 GCC/7.3.1", "aws-sdk-cpp", "1.7.200", true, KindAWSSDK},
		{"aws-sdk-cpp/1.11.100 ua/2.0 md/aws-crt#0.19 os/Linux#5.15 md/arch#x86_64 lang/c++#C++11 md/GCC#11.4.0 api/S3", "aws-sdk-cpp", "1.11.100", false, KindAWSSDK},
		{"AWSPowerShell/3.3.618.0 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_10.0.17763.0 WindowsPowerShell/5.1 ClientAsync", "aws-tools-powershell", "3.3.618.0", true, KindAWSSDK},
		{"aws-sdk-dotnet-coreclr/3.7.300.2 aws-sdk-dotnet-core/3.7.300.2 .NET_Core/6.0.25 OS/Linux ClientAsync AWSPowerShell.NetCore/4.1.480.0", "aws-tools-powershell", "4.1.480.0", false, KindAWSSDK},
		{"aws-sdk-rust/0.56.1 os/linux lang/rust/1.71.0", "aws-sdk-rust", "0.56.1", false, KindAWSSDK},
		{"Cloud-Init/22.4.2", "cloud-init", "22.4.2", false, KindAgent},
		{"curl/7.29.0", "curl", "7.29.0", false, KindScript},
		{"Wget/1.21.3", "wget", "1.21.3", false, KindScript},
		{"Mozilla/5.0 (Linux; Linux 5.15.0-1051-aws #56-Ubuntu; en-US) PowerShell/7.3.4", "powershell", "7.3.4", false, KindScript},
		{"Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.17763.1", "powershell", "5.1.17763.1", false, KindScript},
		{"Python-urllib/3.6", "python-urllib", "3.6", false, KindLibrary},
		{"python-requests/2.31.0", "python-requests", "2.31.0", false, KindLibrary},
		{"Go-http-client/1.1", "go-net-http", "1.1", false, KindLibrary},
		{"Java/1.8.0_292", "java-http", "1.8.0_292", false, KindLibrary},
		{"Ruby", "ruby-net-http", "", false, KindLibrary},
		{"", "none", "", false, KindUnknown},
		{"   ", "none", "", false, KindUnknown},
		{"SomethingElse/1.0 (x)", "unknown", "", false, KindUnknown},
		{"\x1b[31mevil\x00/1.0", "unknown", "", false, KindUnknown},
	}
	for _, tt := range tests {
		got := Identify(tt.ua)
		if got.Product != tt.product || got.Version != tt.version || got.BelowMin != tt.belowMin || got.Kind != tt.kind {
			t.Errorf("Identify(%q) = %+v\nwant product %s version %q below %v kind %s", tt.ua, got, tt.product, tt.version, tt.belowMin, tt.kind)
		}
		if got.Advice == "" {
			t.Errorf("Identify(%q): no advice", tt.ua)
		}
		if tt.kind == KindAWSSDK && tt.product != "aws-sdk-rust" && !strings.Contains(got.DisableV1, "AWS_EC2_METADATA_V1_DISABLED=true") {
			t.Errorf("Identify(%q): no fallback switch: %q", tt.ua, got.DisableV1)
		}
		if got.BelowMin && !strings.Contains(got.Advice, got.MinIMDSv2) {
			t.Errorf("Identify(%q): advice does not name the minimum: %q", tt.ua, got.Advice)
		}
		for _, s := range []string{got.Name, got.Version} {
			for _, r := range s {
				if r < 0x20 || r == 0x7f {
					t.Errorf("Identify(%q): control character in %q", tt.ua, s)
				}
			}
		}
	}
}

func TestIdentifyHugeUA(t *testing.T) {
	got := Identify(strings.Repeat("x/1 ", 100000))
	if got.Product != "unknown" || len(got.Name) > 64 {
		t.Fatalf("%+v", got)
	}
}

// TestVersionOrder checks the version order Identify uses (package
// imdsfacts) where the auditor's own comparator once differed from the scan's:
// pre-releases, a leading "v", four parts, and what is not a version.
func TestVersionOrder(t *testing.T) {
	for _, tt := range []struct {
		ua       string
		product  string
		belowMin bool
		advice   string
	}{
		{"aws-sdk-java/2.10.21-preview", "aws-sdk-java-v2", true, "upgrade"},
		{"aws-sdk-java/2.0.0-preview-10", "aws-sdk-java-v2", true, "upgrade"},
		{"aws-sdk-java/2.10.21", "aws-sdk-java-v2", false, "can use IMDSv2"},
		{"aws-sdk-go/v1.25.38", "aws-sdk-go", false, "can use IMDSv2"},
		{"aws-sdk-go/v1.25.37", "aws-sdk-go", true, "upgrade"},
		{"aws-cli/v1.16.289", "aws-cli-v1", false, "can use IMDSv2"},
		{"aws-sdk-dotnet-core/3.3.634", "aws-sdk-dotnet", true, "upgrade"},
		{"aws-sdk-dotnet-core/3.3.634.1", "aws-sdk-dotnet", false, "can use IMDSv2"},
		{"AWSPowerShell/4.0.1", "aws-tools-powershell", false, "can use IMDSv2"},
		{"aws-sdk-go/garbage", "aws-sdk-go", false, "version unknown"},
	} {
		got := Identify(tt.ua)
		if got.Product != tt.product || got.BelowMin != tt.belowMin || !strings.Contains(got.Advice, tt.advice) {
			t.Errorf("Identify(%q) = %s below %v advice %q; want %s below %v advice with %q",
				tt.ua, got.Product, got.BelowMin, got.Advice, tt.product, tt.belowMin, tt.advice)
		}
	}
}

func ExampleIdentify() {
	i := Identify("aws-sdk-go/1.25.0 (go1.13; linux; amd64)")
	fmt.Println(i.Name, i.Version, "needs", i.MinIMDSv2, "below:", i.BelowMin)
	// Output: AWS SDK for Go v1 1.25.0 needs 1.25.38 below: true
}

// TestRulesUseTheTable ties every AWS SDK rule to its entry in
// imdsfacts.SDKs: same product identifier, same minimum.
func TestRulesUseTheTable(t *testing.T) {
	table := map[string]string{}
	for _, s := range imdsfacts.SDKs {
		table[s.ID] = s.MinIMDSv2
	}
	for _, r := range rules {
		if r.kind != KindAWSSDK {
			continue
		}
		if min, ok := table[r.product]; !ok || min != r.min {
			t.Errorf("rule %s: product %s minimum %q; imdsfacts has %q (listed: %v)", r.token, r.product, r.min, min, ok)
		}
	}
}
