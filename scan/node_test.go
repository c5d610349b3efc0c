package scan

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFindTokenlessRequest(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		line      int
	}{
		{"require and request", "const AWS = require('aws-sdk');\nconst m = new AWS.MetadataService();\nm.request('/latest/meta-data/instance-id', cb);\n", 3},
		{"import, spaces before the paren", "import AWS from \"aws-sdk\";\nconst m = new AWS.MetadataService({httpOptions: {timeout: 500}});\nawait promisify(m.request.bind(m))('/latest/meta-data/');\nm.request ('/x', cb)\n", 4},
		{"subpath import", "const MetadataService = require(`aws-sdk/lib/metadata_service`);\nnew MetadataService().request('/latest/user-data', cb);\n", 2},
		{"token fetched", "const AWS = require('aws-sdk');\nconst m = new AWS.MetadataService();\nm.fetchMetadataToken((e, tok) => m.request('/p', {headers: {'x-aws-ec2-metadata-token': tok}}, cb));\n", 0},
		{"token header only", "const AWS = require('aws-sdk');\nnew AWS.MetadataService().request('/p', {headers: {'X-aws-ec2-metadata-token': t}}, cb);\n", 0},
		{"v3 MetadataService", "const { MetadataService } = require('@aws-sdk/ec2-metadata-service');\nawait new MetadataService().request('/latest/meta-data/', {});\n", 0},
		{"no aws-sdk", "class MetadataService {}\nhttp.request(url);\n", 0},
		{"no request", "const AWS = require('aws-sdk');\nnew AWS.MetadataService().loadCredentials(cb);\n", 0},
		{"other module", "const x = require('aws-sdk-mock');\nx.MetadataService; y.request(z);\n", 0},
	} {
		line, ok := findTokenlessRequest([]byte(tt.src))
		if ok != (tt.line > 0) || line != tt.line {
			t.Errorf("%s: line %d, %v; want %d", tt.name, line, ok, tt.line)
		}
	}
}

const tokenlessJS = "const AWS = require('aws-sdk');\nnew AWS.MetadataService().request('/latest/meta-data/instance-id', cb);\n"

// TestAppSourceSearch checks which copies of aws-sdk lead to a search of
// which source, and that the search keeps to its bounds.
func TestAppSourceSearch(t *testing.T) {
	root := t.TempDir()
	put := func(name, data string) { writeFile(t, filepath.Join(root, name), data) }
	pkg := func(dir, version string) {
		put(dir+"/package.json", fmt.Sprintf(`{"name": "aws-sdk", "version": %q}`, version))
	}
	// An application with a tokenless call, one in a file too large to read,
	// one too deep, and one in a dependency's own source.
	pkg("srv/a/node_modules/aws-sdk", "2.1693.0")
	put("srv/a/src/meta.js", "// instance id\n"+tokenlessJS)
	put("srv/a/dist/bundle.js", strings.Repeat("//\n", maxSourceFile/3+1)+tokenlessJS)
	put("srv/a/1/2/3/4/5/6/7/deep.js", tokenlessJS)
	put("srv/a/node_modules/helper/index.js", tokenlessJS)
	put("srv/a/.cache/x.js", tokenlessJS)
	if err := os.Symlink("..", filepath.Join(root, "srv/a/src/loop")); err != nil {
		t.Fatal(err)
	}
	// A dependency's copy of aws-sdk and a global install: not searched.
	pkg("srv/b/node_modules/lib/node_modules/aws-sdk", "2.1693.0")
	put("srv/b/node_modules/lib/index.js", tokenlessJS)
	put("srv/b/index.js", "// not this application's aws-sdk\n")
	pkg("usr/lib/node_modules/aws-sdk", "2.1693.0")
	put("usr/lib/app.js", tokenlessJS)
	// pnpm: the store copy is the application's when node_modules/aws-sdk links to it.
	pkg("srv/c/node_modules/.pnpm/aws-sdk@2.1693.0/node_modules/aws-sdk", "2.1693.0")
	if err := os.Symlink(".pnpm/aws-sdk@2.1693.0/node_modules/aws-sdk", filepath.Join(root, "srv/c/node_modules/aws-sdk")); err != nil {
		t.Fatal(err)
	}
	put("srv/c/server.mjs", tokenlessJS)
	// More files than the search reads.
	pkg("srv/d/node_modules/aws-sdk", "2.1693.0")
	for i := range maxSourceFiles + 5 {
		put(fmt.Sprintf("srv/d/src/f%03d.js", i), "export const x = 1;\n")
	}

	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/srv", "/usr/lib"}})
	if err != nil {
		t.Fatal(err)
	}
	var tokenless []string
	whys := map[string]string{}
	for _, f := range rep.Findings {
		switch f.Kind {
		case KindTokenlessAPI:
			tokenless = append(tokenless, fmt.Sprintf("%s:%d", f.Path, f.Line))
			if f.Version != "2.1693.0" || f.SDK != "aws-sdk-js-v2" || !strings.Contains(f.Fix, "fetchMetadataToken") {
				t.Errorf("tokenless finding %+v", f)
			}
		case KindCurrentSDK:
			whys[f.Path] = f.Why
		}
	}
	want := []string{"/srv/a/src/meta.js:3", "/srv/c/server.mjs:2"}
	if strings.Join(tokenless, " ") != strings.Join(want, " ") {
		t.Errorf("tokenless calls found at %v, want %v\n%s", tokenless, want, describe(rep))
	}
	for path, says := range map[string]string{
		"/srv/a/node_modules/aws-sdk/package.json":                                     "Of 1 .js/.ts files of /srv/a, 1 call",
		"/srv/b/node_modules/lib/node_modules/aws-sdk/package.json":                    "a dependency's or a global install",
		"/usr/lib/node_modules/aws-sdk/package.json":                                   "a dependency's or a global install",
		"/srv/c/node_modules/.pnpm/aws-sdk@2.1693.0/node_modules/aws-sdk/package.json": "Of 1 .js/.ts files of /srv/c, 1 call",
		"/srv/d/node_modules/aws-sdk/package.json":                                     fmt.Sprintf("No call of MetadataService.request without a token was found in %d .js/.ts files of /srv/d (a text search; code outside that directory, what lies past the search's bounds", maxSourceFiles),
	} {
		if !strings.Contains(whys[path], says) {
			t.Errorf("%s: why %q does not say %q", path, whys[path], says)
		}
	}
	if rep.Truncated || rep.Unreadable != 0 {
		t.Errorf("truncated %v, unreadable %d", rep.Truncated, rep.Unreadable)
	}
}

// TestSourceSearchByteBounds: the search stops at its byte bounds, per
// application and for the whole scan, and says so.
func TestSourceSearchByteBounds(t *testing.T) {
	defer func(app, all int64) { maxSourceBytes, maxSourceBytesAll = app, all }(maxSourceBytes, maxSourceBytesAll)
	maxSourceBytes, maxSourceBytesAll = 200, 3*91 // files of 91 bytes: a reads 2, b 1, c none
	root := t.TempDir()
	for _, app := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(root, "srv", app, "node_modules/aws-sdk/package.json"), `{"name": "aws-sdk", "version": "2.1693.0"}`)
		for i := range 3 {
			writeFile(t, filepath.Join(root, "srv", app, fmt.Sprintf("f%d.js", i)), strings.Repeat("x", 90)+"\n")
		}
	}
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/srv"}})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsAt(rep)
	for app, says := range map[string]string{
		"a": "in 2 .js/.ts files of /srv/a (a text search; code outside that directory, what lies past the search's bounds",
		"b": "in 1 .js/.ts files of /srv/b (a text search; code outside that directory, what lies past the search's bounds",
		"c": "searches of other applications' source read",
	} {
		if why := got["/srv/"+app+"/node_modules/aws-sdk/package.json"].Why; !strings.Contains(why, says) {
			t.Errorf("app %s: why %q does not say %q", app, why, says)
		}
	}
}

// TestNpmRealLayout installs the real packages from the npm registry and
// checks that the scan finds them where npm puts them, as the auditor names
// them: aws-sdk v2 and the v3 client of @aws-sdk/credential-providers.
// Outside CI it skips when npm or the registry is unavailable.
func TestNpmRealLayout(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		unavailable(t, "npm is not on PATH (%v): cannot install the real packages", err)
	}
	app := filepath.Join(t.TempDir(), "srv", "app")
	writeFile(t, filepath.Join(app, "package.json"), `{"name": "app", "version": "1.0.0", "private": true}`)
	writeFile(t, filepath.Join(app, "index.js"), tokenlessJS)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-save",
		"aws-sdk@2.1693.0", "@aws-sdk/credential-providers@3.1175.0")
	cmd.Dir = app
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(t.TempDir(), "npm-cache"), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, "npm install failed, the registry is probably unreachable: %v\n%s", err, out)
	}
	root := filepath.Dir(filepath.Dir(app))
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/srv"}})
	if err != nil {
		t.Fatal(err)
	}
	got := findingsAt(rep)
	v2 := got["/srv/app/node_modules/aws-sdk/package.json"]
	v3 := got["/srv/app/node_modules/@smithy/credential-provider-imds/package.json"]
	call := got["/srv/app/index.js:2"]
	if v2.Kind != KindCurrentSDK || v2.Version != "2.1693.0" || v2.SDK != "aws-sdk-js-v2" {
		t.Errorf("aws-sdk: %+v", v2)
	}
	if v3.Kind != KindCurrentSDK || v3.SDK != "aws-sdk-js-v3" || !strings.Contains(v3.Fix, envV1Disabled) || strings.Contains(v3.Fix, "npm update") {
		t.Errorf("@smithy/credential-provider-imds (installed by @aws-sdk/credential-providers): %+v", v3)
	}
	if call.Kind != KindTokenlessAPI {
		t.Errorf("MetadataService.request in index.js: %+v", call)
	}
	if len(rep.Findings) != 3 || rep.Truncated || rep.Unreadable != 0 {
		t.Errorf("want exactly these 3 findings from a complete walk of %d files, got:\n%s", rep.FilesScanned, describe(rep))
	}
	t.Logf("%d files scanned, %d read, %d bytes, in %s", rep.FilesScanned, rep.FilesRead, rep.BytesRead, rep.Duration)
}
