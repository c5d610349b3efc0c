package scan

import (
	"debug/buildinfo"
	"io/fs"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestParsePythonMetadata(t *testing.T) {
	tests := []struct {
		in, name, version string
	}{
		{metadata("botocore", "1.12.0"), "botocore", "1.12.0"},
		{"Metadata-Version: 1.0\r\nName: boto3\r\nVersion:  1.9.0 \r\n", "boto3", "1.9.0"},
		{"name: awscli\nversion: 1.16.0\n", "awscli", "1.16.0"},
		{"Name: x\nSummary: long\n  continued Version: 9\nVersion: 1.0\n", "x", "1.0"},
		{"\nName: after-blank\nVersion: 1.0\n", "", ""}, // headers end at the first empty line
		{"Name: first\nName: second\n", "first", ""},
		{"garbage without colon\n", "", ""},
	}
	for _, tt := range tests {
		name, version := parsePythonMetadata([]byte(tt.in))
		if name != tt.name || version != tt.version {
			t.Errorf("parsePythonMetadata(%q) = %q, %q, want %q, %q", tt.in, name, version, tt.name, tt.version)
		}
	}
}

func TestSplitDistDir(t *testing.T) {
	tests := []struct {
		base, pkg, version string
		ok                 bool
	}{
		{"botocore-1.12.0.dist-info", "pkg:pypi/botocore", "1.12.0", true},
		{"boto3-1.9.0-py3.7.egg-info", "pkg:pypi/boto3", "1.9.0", true},
		{"awscli-1.16.0-py2.7.egg", "pkg:pypi/awscli", "1.16.0", true},
		{"Botocore.egg-info", "pkg:pypi/botocore", "", true},
		{"botocore_stubs-1.0.dist-info", "", "", false},
		{"requests-2.0.dist-info", "", "", false},
	}
	for _, tt := range tests {
		p, v, ok := splitDistDir(tt.base)
		if ok != tt.ok || p.pkg != tt.pkg || v != tt.version {
			t.Errorf("splitDistDir(%q) = %q, %q, %v, want %q, %q, %v", tt.base, p.pkg, v, ok, tt.pkg, tt.version, tt.ok)
		}
	}
	if got := normalizePythonName("Foo__Bar.-baz"); got != "foo-bar-baz" {
		t.Errorf("normalizePythonName = %q", got)
	}
}

func TestParsePomProperties(t *testing.T) {
	g, a, v := parsePomProperties([]byte(pomProperties("com.amazonaws", "aws-java-sdk-core", "1.11.500")))
	if g != "com.amazonaws" || a != "aws-java-sdk-core" || v != "1.11.500" {
		t.Errorf("got %q %q %q", g, a, v)
	}
	g, a, v = parsePomProperties([]byte("! comment\r\ngroupId : software.amazon.awssdk\r\nartifactId auth\r\nversion=2.10.0\r\n"))
	if g != "software.amazon.awssdk" || a != "auth" || v != "2.10.0" {
		t.Errorf("separators: got %q %q %q", g, a, v)
	}
}

func TestJavaNames(t *testing.T) {
	tests := []struct {
		name, pkg, version string
	}{
		{"usr/share/java/aws-java-sdk-core-1.11.500.jar", "pkg:maven/com.amazonaws/aws-java-sdk-core", "1.11.500"},
		{"opt/hadoop/lib/aws-java-sdk-bundle-1.11.375.jar", "pkg:maven/com.amazonaws/aws-java-sdk-bundle", "1.11.375"},
		{"opt/x/aws-java-sdk-1.11.100.jar", "pkg:maven/com.amazonaws/aws-java-sdk-core", "1.11.100"},
		{"root/.m2/repository/software/amazon/awssdk/sdk-core/2.10.0/sdk-core-2.10.0.jar", "pkg:maven/software.amazon.awssdk/sdk-core", "2.10.0"},
		{"root/.gradle/caches/modules-2/files-2.1/software.amazon.awssdk/auth/2.5.0/abc/auth-2.5.0.jar", "pkg:maven/software.amazon.awssdk/sdk-core", "2.5.0"},
		{"opt/app/auth-2.5.0.jar", "", ""}, // too generic without a path that says awssdk
		{"opt/app/aws-java-sdk-s3-1.11.500.jar", "", ""},
		{"opt/app/aws-java-sdk-core.jar", "", ""}, // no version: read the pom inside
	}
	for _, tt := range tests {
		p, v, ok := javaFromFileName(tt.name)
		if ok != (tt.pkg != "") || p.pkg != tt.pkg || v != tt.version {
			t.Errorf("javaFromFileName(%q) = %q, %q, %v", tt.name, p.pkg, v, ok)
		}
	}
	for entry, want := range map[string]string{
		"BOOT-INF/lib/aws-java-sdk-core-1.11.500.jar": "1.11.500",
		"WEB-INF/lib/sdk-core-2.10.0.jar":             "2.10.0",
		"WEB-INF/lib/auth-2.10.0.jar":                 "",
		"BOOT-INF/classes/aws-java-sdk-core-1.0.jar":  "",
		"lib/sdk-core-1.0.jar":                        "",
	} {
		_, v, ok := nestedJar(entry)
		if ok != (want != "") || v != want {
			t.Errorf("nestedJar(%q) = %q, %v, want %q", entry, v, ok, want)
		}
	}
	if p, ok := pomArtifact("META-INF/maven/software.amazon.awssdk/auth/pom.properties"); !ok || p.pkg != prodJavaV2.pkg {
		t.Errorf("pomArtifact(auth) = %v, %v", p.pkg, ok)
	}
	if _, ok := pomArtifact("META-INF/maven/org.example/auth/pom.properties"); ok {
		t.Errorf("pomArtifact accepted a non-AWS artifact")
	}
}

func TestParsePackageJSON(t *testing.T) {
	name, version, err := parsePackageJSON([]byte(`{"name":"aws-sdk","version":"2.500.0","dependencies":{"x":"1"}}`))
	if err != nil || name != "aws-sdk" || version != "2.500.0" {
		t.Errorf("got %q %q %v", name, version, err)
	}
	if _, _, err := parsePackageJSON([]byte(`{"name":`)); err == nil {
		t.Errorf("truncated JSON accepted")
	}
}

func TestParseEnvSettings(t *testing.T) {
	in := strings.Join([]string{
		"export AWS_EC2_METADATA_V1_DISABLED=false",
		`Environment="AWS_EC2_METADATA_DISABLED=true" "LANG=C"`,
		"Environment=AWS_EC2_METADATA_V1_DISABLED=TRUE",
		"# AWS_EC2_METADATA_DISABLED=true",
		"MY_AWS_EC2_METADATA_DISABLED=true",
		"AWS_EC2_METADATA_V1_DISABLED=",
		"AWS_EC2_METADATA_V1_DISABLED='1' # one",
		"AWS_EC2_METADATA_V1_DISABLED=\x1b[31mfalse",
	}, "\n")
	got := parseEnvSettings([]byte(in))
	want := []envSetting{
		{line: 1, name: envV1Disabled, value: "false"},
		{line: 2, name: envIMDSDisabled, value: "true"},
		{line: 3, name: envV1Disabled, value: "TRUE"},
		{line: 7, name: envV1Disabled, value: "1"},
		{line: 8, name: envV1Disabled, value: "?[31mfalse"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseEnvSettings:\n got %+v\nwant %+v", got, want)
	}
	f, ok := settingFinding("etc/environment", "environment file", got[3])
	if !ok || f.Kind != KindV1FallbackAllowed || !strings.Contains(f.Why, `"1"`) {
		t.Errorf("value 1: %+v", f)
	}
	if _, ok := settingFinding("etc/environment", "environment file", envSetting{name: envIMDSDisabled, value: "false"}); ok {
		t.Errorf("AWS_EC2_METADATA_DISABLED=false reported")
	}
}

func TestParseAWSConfig(t *testing.T) {
	in := "[default]\nregion=us-east-1\nEC2_METADATA_V1_DISABLED = true\n[profile \x1bx]\n; ec2_metadata_v1_disabled = false\nec2_metadata_v1_disabled=false # note\n"
	got := parseAWSConfig([]byte(in))
	want := []envSetting{
		{line: 3, name: cfgV1Disabled, value: "true", scope: "default"},
		{line: 6, name: cfgV1Disabled, value: "false", scope: "profile ?x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseAWSConfig:\n got %+v\nwant %+v", got, want)
	}
}

func TestClassify(t *testing.T) {
	reg := fstest.MapFS{
		"f":   {Mode: 0o644, Data: make([]byte, 10)},
		"exe": {Mode: 0o755, Data: make([]byte, minGoBinary)},
	}
	plain, _ := fs.Stat(reg, "f")
	exe, _ := fs.Stat(reg, "exe")
	tests := []struct {
		name string
		info fs.FileInfo
		want bool
	}{
		{"root/.aws/config", plain, true},
		{"root/.aws/credentials", plain, false}, // never read: it holds secrets
		{"etc/environment", plain, true},
		{"etc/default/myapp", plain, true},
		{"etc/sysconfig/myapp", plain, true},
		{"etc/profile.d/aws.sh", plain, true},
		{"etc/systemd/system/app.service", plain, true},
		{"etc/systemd/system/app.service.d/override.conf", plain, true},
		{"home/u/.config/environment.d/aws.conf", plain, true},
		{"home/u/.bashrc", plain, true},
		{"srv/app/.env", plain, true},
		{"srv/app/profile", plain, false},
		{"etc/passwd", plain, false},
		{"etc/shadow", plain, false},
		{"opt/x/app.WAR", plain, true},
		{"srv/node_modules/aws-sdk/package.json", plain, true},
		{"srv/node_modules/other/package.json", plain, false},
		{"srv/node_modules/@smithy/credential-provider-imds/package.json", plain, true},
		{"srv/node_modules/@aws-sdk/credential-provider-imds/package.json", plain, true},
		{"srv/node_modules/@aws-sdk/ec2-metadata-service/package.json", plain, true},
		{"srv/node_modules/@aws-sdk/credential-providers/package.json", plain, false}, // its IMDS client is @smithy's
		{"srv/node_modules/@evil/credential-provider-imds/package.json", plain, false},
		{"srv/x/@smithy/credential-provider-imds/package.json", plain, false},
		{"usr/lib/python3/dist-packages/cloudinit/version.py", plain, true},
		{"usr/lib/python3/dist-packages/other/version.py", plain, false},
		{"usr/lib/python2.7/site-packages/botocore-1.0-py2.7.egg-info", plain, true},
		{"usr/bin/tool", exe, true},
		{"usr/bin/small", plain, false},
	}
	for _, tt := range tests {
		if got := classify(tt.name, tt.info) != nil; got != tt.want {
			t.Errorf("classify(%q) relevant = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGoModuleFindings(t *testing.T) {
	bi := &buildinfo.BuildInfo{
		GoVersion: "go1.13",
		Path:      "example.com/agent",
		Main:      debug.Module{Path: "example.com/agent"},
		Deps: []*debug.Module{
			{Path: "github.com/aws/aws-sdk-go", Version: "v1.25.37"},
			{Path: "github.com/aws/aws-sdk-go-v2", Version: "v0.18.0"},
			{Path: "github.com/aws/aws-sdk-go-v2/feature/ec2/imds", Version: "v1.0.0"},
			{Path: "github.com/aws/smithy-go", Version: "v0.1.0"},
			nil,
		},
	}
	got := goModuleFindings("/usr/bin/agent", bi)
	if len(got) != 2 || got[0].Kind != KindOldSDK || got[0].Version != "v1.25.37" || got[1].Version != "v0.18.0" || got[1].MinVersion != "v0.19.0" {
		t.Fatalf("findings = %+v", got)
	}
	bi.Deps = []*debug.Module{
		{Path: "github.com/aws/aws-sdk-go", Version: "v1.20.0", Replace: &debug.Module{Path: "github.com/fork/aws-sdk-go", Version: "v1.44.0"}},
		{Path: "github.com/aws/aws-sdk-go-v2", Version: "v0.1.0", Replace: &debug.Module{Path: "../sdk"}},
	}
	if got := goModuleFindings("/usr/bin/agent", bi); len(got) != 1 || got[0].Version != "v1.44.0" || got[0].Kind != KindCurrentSDK {
		t.Errorf("replaced modules: findings = %+v, want the fork's version only (a local replacement has none)", got)
	}
	bi.Deps = []*debug.Module{{Path: "github.com/aws/aws-sdk-go", Version: "v1.25.38-0.20191120000000-abcdefabcdef"}}
	if got := goModuleFindings("/usr/bin/agent", bi); len(got) != 1 {
		t.Errorf("pseudo-version before v1.25.38: findings = %+v", got)
	}
}

func TestParseMountinfo(t *testing.T) {
	const info = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 0:22 / /mnt/my\040share rw shared:5 - nfs4 server:/export rw
25 22 0:23 / /srv/img rw - ext4 /dev/loop0 rw
26 25 0:24 / /srv/img/proc rw - proc proc rw
27 22 0:25 / /home/u/gvfs rw - fuse.gvfsd-fuse gvfsd rw
28 22 0:26 / /broken
29 22 0:27 / /mnt/my\040share rw - tmpfs tmpfs rw
`
	got := parseMountinfo(strings.NewReader(info), "/")
	want := map[string]string{".": "ext4", "proc": "proc", "mnt/my share": "tmpfs", "srv/img": "ext4",
		"srv/img/proc": "proc", "home/u/gvfs": "fuse.gvfsd-fuse"}
	if !mapsEqual(got, want) {
		t.Errorf("root /: got %v, want %v", got, want)
	}
	got = parseMountinfo(strings.NewReader(info), "/srv/img")
	want = map[string]string{".": "ext4", "proc": "proc"}
	if !mapsEqual(got, want) {
		t.Errorf("root /srv/img: got %v, want %v", got, want)
	}
	for typ, skip := range map[string]bool{"proc": true, "nfs4": true, "fuse.sshfs": true, "autofs": true,
		"ext4": false, "xfs": false, "overlay": false, "tmpfs": false, "fuseblk": false} {
		if got := pseudoFSReason(typ) != ""; got != skip {
			t.Errorf("pseudoFSReason(%q) skip = %v, want %v", typ, got, skip)
		}
	}
	src := &osSource{dir: "/", mounts: map[string]string{"mnt/nfs": "nfs", "mnt": "ext4"}}
	if r := src.skipMount("mnt/nfs/a/b", nil, nil); !strings.Contains(r, "network") {
		t.Errorf("a root inside an NFS mount: skip reason %q", r)
	}
	if r := src.skipMount("mnt/other", nil, nil); r != "" {
		t.Errorf("a root inside ext4: skip reason %q", r)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestQuotePathAndSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/aws":          "/usr/bin/aws",
		"/home/a b/x":           `"/home/a b/x"`,
		"/tmp/evil\n\x1b[31mx":  `"/tmp/evil\n\x1b[31mx"`,
		"/tmp/\xff":             `"/tmp/\xff"`,
		"/tmp/rtl\u202eexe.txt": `"/tmp/rtl\u202eexe.txt"`,
		"/tmp/ü":                "/tmp/ü",
	} {
		if got := quotePath(in); got != want {
			t.Errorf("quotePath(%q) = %s, want %s", in, got, want)
		}
	}
	if got := sanitize("a\x1b[0m\xffb\u202e", 100); got != "a?[0m?b?" {
		t.Errorf("sanitize = %q", got)
	}
	if got := sanitize(strings.Repeat("x", 50), 10); got != strings.Repeat("x", 10)+"..." {
		t.Errorf("sanitize did not cut: %q", got)
	}
}

func TestDefaultRootsIsACopy(t *testing.T) {
	r := DefaultRoots()
	r[0] = "/changed"
	if DefaultRoots()[0] == "/changed" {
		t.Error("DefaultRoots exposes the package's slice")
	}
	for _, root := range r[1:] {
		if !strings.HasPrefix(root, "/") {
			t.Errorf("default root %q is not absolute", root)
		}
	}
	if DefaultTimeout < time.Second {
		t.Error("default timeout too small")
	}
}
