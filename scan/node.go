package scan

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// npmProducts are the npm packages whose installed package.json the scan
// reads: the AWS SDK for JavaScript v2, and the packages of v3 that make IMDS
// calls. @aws-sdk/credential-providers (fromInstanceMetadata) and
// @aws-sdk/credential-provider-node make theirs through
// @smithy/credential-provider-imds, which npm installs beside them (an npm
// install of @aws-sdk/credential-providers 3.1175.0 puts
// @smithy/credential-provider-imds 4.5.2 in the same node_modules), so that is
// the one reported: one line for the one client, with the version that
// decides whether the IMDSv1 fallback can be switched off.
var npmProducts = map[string]product{
	"aws-sdk":                           prodJSv2,
	"@smithy/credential-provider-imds":  prodJSv3,
	"@aws-sdk/credential-provider-imds": prodJSv3Old,
	"@aws-sdk/ec2-metadata-service":     prodJSv3MetadataService,
}

// npmPackageAt returns the npm package installed in dir (an io/fs name such
// as "srv/app/node_modules/@smithy/credential-provider-imds") when it is one
// of npmProducts, or "".
func npmPackageAt(dir string) string {
	base, parent := path.Base(dir), parentName(dir)
	name, nm := base, parent
	if strings.HasPrefix(path.Base(parent), "@") {
		name, nm = path.Base(parent)+"/"+base, parentName(parent)
	}
	if path.Base(nm) != "node_modules" {
		return ""
	}
	if _, ok := npmProducts[name]; !ok {
		return ""
	}
	return name
}

// maxPackageJSON bounds the package.json read (aws-sdk's is about 5 KiB).
const maxPackageJSON = 1 << 20

// checkNodePackage reads the package.json of an npm package of npmProducts.
// For aws-sdk (v2) it also searches the application's own source for the
// tokenless MetadataService.request (searchAppSource).
func checkNodePackage(w *walker, name string, info fs.FileInfo) {
	want := npmPackageAt(parentName(name))
	if info.Size() > maxPackageJSON {
		w.skipped()
		return
	}
	data, ok := w.readHead(name, info.Size(), maxPackageJSON)
	if !ok {
		return
	}
	pkgName, version, err := parsePackageJSON(data)
	if err != nil {
		w.unreadable()
		return
	}
	if pkgName != want {
		return // a package.json that is not what its directory says
	}
	p := npmProducts[want]
	if older, ok := imdsfacts.OlderThan(version, imdsfacts.SmithyIMDSV1Switch); want == "@smithy/credential-provider-imds" && ok && older {
		p.current = prodJSv3Old.current // no setting turns its fallback off
	}
	f, ok := checkVersion(p, displayPath(name), version, "package.json version")
	if !ok {
		return
	}
	if want == "aws-sdk" {
		f.Why += w.searchAppSource(name, f.Version)
	}
	w.add(f)
}

// parsePackageJSON returns the name and version of an npm package.json.
func parsePackageJSON(data []byte) (name, version string, err error) {
	var pkg struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return "", "", err
	}
	return pkg.Name, pkg.Version, nil
}

// Bounds of the search of an application's own source for a tokenless
// MetadataService.request: a text search, cheap and bounded, not a parser.
const (
	maxSourceFiles   = 300       // source files read per application
	maxSourceFile    = 512 << 10 // larger files (bundles) are not read
	maxSourceEntries = 20_000    // directory entries listed per application
	maxSourceDepth   = 6         // directory levels below the application
)

// Byte bounds of the search (variables so that tests can lower them).
var (
	maxSourceBytes int64 = 16 << 20 // bytes read per application
	// maxSourceBytesAll bounds the bytes all searches of one scan read, so
	// that a host with many applications spends its MaxBytes on finding
	// software, not on searching source.
	maxSourceBytesAll int64 = 64 << 20
)

// sourceExts are the files searched.
var sourceExts = map[string]bool{".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".mts": true, ".cts": true}

// appSearch is the result of one application's search.
type appSearch struct {
	files, tooLarge int
	bytes           int64
	truncated       bool
	hits            int
}

// appRoot returns the application that installed the aws-sdk whose
// package.json is pkgJSON (the directory holding its node_modules), and false
// when that is no application's own tree: a dependency's copy (inside another
// node_modules), a global install (<prefix>/lib/node_modules) or "/". pnpm
// keeps every package in node_modules/.pnpm/<name>@<version>/node_modules/
// and links the application's direct dependencies into node_modules/: there
// the copy is the application's when that link exists.
func (w *walker) appRoot(pkgJSON string) (string, bool) {
	app := parentName(parentName(parentName(pkgJSON))) // .../app/node_modules/aws-sdk/package.json
	if i := strings.Index("/"+app+"/", "/node_modules/.pnpm/"); i >= 0 {
		app = cmp.Or(app[:max(i-1, 0)], ".")
		if _, err := w.src.lstat(path.Join(app, "node_modules", "aws-sdk")); err != nil {
			return "", false
		}
	}
	if app == "." || path.Base(app) == "lib" || strings.Contains("/"+app+"/", "/node_modules/") {
		return "", false
	}
	return app, true
}

// searchAppSource searches the own source of the application that installed
// aws-sdk at pkgJSON for MetadataService.request calls without a token, adds
// a KindTokenlessAPI finding for each file that has one, and returns a
// sentence for the aws-sdk finding saying what was searched.
func (w *walker) searchAppSource(pkgJSON, version string) string {
	app, ok := w.appRoot(pkgJSON)
	if !ok {
		return " The scan did not search for MetadataService.request calls: this copy is a dependency's or a global install."
	}
	if w.apps == nil {
		w.apps = map[string]*appSearch{}
	}
	s := w.apps[app]
	if s == nil && w.sourceBytes >= maxSourceBytesAll {
		return fmt.Sprintf(" The scan did not search for MetadataService.request calls: its searches of other applications' source read %d MiB, their bound.", maxSourceBytesAll>>20)
	}
	if s == nil {
		s = &appSearch{}
		w.apps[app] = s
		entries := 0
		w.searchDir(app, nil, nil, s, version, 0, &entries)
	}
	where := fmt.Sprintf("%d .js/.ts files of %s", s.files, quotePath(displayPath(app)))
	if s.hits > 0 {
		return fmt.Sprintf(" Of %s, %d call MetadataService.request without a token (see the tokenless-api findings).", where, s.hits)
	}
	limits := fmt.Sprintf("files over %d KiB", maxSourceFile>>10)
	if s.truncated {
		limits = "what lies past the search's bounds, " + limits
	}
	return fmt.Sprintf(" No call of MetadataService.request without a token was found in %s (a text search; code outside "+
		"that directory, %s, and a MetadataService made in one file and used in another are not seen).", where, limits)
}

// searchDir searches dir, whose lstat information is info (nil for the
// application's directory, which the walk already entered), and below.
func (w *walker) searchDir(dir string, info fs.FileInfo, parent fs.FileInfo, s *appSearch, version string, depth int, entries *int) {
	if depth > maxSourceDepth || w.stopped() {
		s.truncated = s.truncated || depth > maxSourceDepth
		return
	}
	if info != nil && w.src.skipMount(dir, info, parent) != "" {
		return // a pseudo, network or FUSE file system mounted inside the application
	}
	if info == nil {
		var err error
		if info, err = w.src.lstat(dir); err != nil {
			return
		}
	}
	d, err := w.src.openDir(dir)
	if err != nil {
		return
	}
	var subdirs []fs.DirEntry
	for *entries < maxSourceEntries && !w.stopped() {
		batch, err := d.ReadDir(dirBatch)
		*entries += len(batch)
		for _, e := range batch {
			n := e.Name()
			switch t := e.Type(); {
			case t.IsDir(): // links to directories are not followed: no loops
				if n != "node_modules" && !strings.HasPrefix(n, ".") && !skipNames[n] {
					subdirs = append(subdirs, e)
				}
			case t.IsRegular() && sourceExts[path.Ext(n)] && !strings.HasSuffix(n, ".d.ts"):
				w.searchFile(path.Join(dir, n), e, s, version)
			}
		}
		if err != nil || len(batch) == 0 {
			break
		}
	}
	d.Close()
	if *entries >= maxSourceEntries {
		s.truncated = true
	}
	for _, sub := range subdirs {
		if subInfo, err := sub.Info(); err == nil {
			w.searchDir(path.Join(dir, sub.Name()), subInfo, info, s, version, depth+1, entries)
		}
	}
}

func (w *walker) searchFile(name string, e fs.DirEntry, s *appSearch, version string) {
	info, err := e.Info()
	if err != nil {
		return
	}
	if info.Size() > maxSourceFile {
		s.tooLarge++
		return
	}
	if s.files >= maxSourceFiles || s.bytes+info.Size() > maxSourceBytes || w.sourceBytes+info.Size() > maxSourceBytesAll {
		s.truncated = true
		return
	}
	data, ok := w.readHead(name, info.Size(), maxSourceFile)
	if !ok {
		return
	}
	s.files++
	s.bytes += int64(len(data))
	w.sourceBytes += int64(len(data))
	line, ok := findTokenlessRequest(data)
	if !ok {
		return
	}
	s.hits++
	w.add(Finding{
		Kind: KindTokenlessAPI, Severity: SeverityBlocker,
		Path: displayPath(name), Line: line,
		Product: prodJSv2.displayName(), SDK: prodJSv2.sdk.ID, Package: prodJSv2.pkg,
		Version:  sanitize(version, imdsfacts.MaxVersionLen),
		Evidence: "text search: MetadataService of aws-sdk, .request( on this line, no token in the file",
		Why: "MetadataService.request(path) never fetches a token, in any aws-sdk v2 release, and " + envV1Disabled +
			" does not change it: without a token header in its options the call is IMDSv1 and fails once the " +
			"instance requires IMDSv2 (HttpTokens=required). This is a text search: check the line.",
		Fix: "get a token with fetchMetadataToken (aws-sdk " + imdsfacts.JavaScriptV2TokenAPI + " or later) and pass it: " +
			"request(path, {headers: {'x-aws-ec2-metadata-token': token}}, callback); or use MetadataService of " +
			"@aws-sdk/ec2-metadata-service (JavaScript v3), which asks for a token itself",
	})
}

var (
	reAWSSDKv2 = regexp.MustCompile(`AWS\.MetadataService|['"` + "`" + `]aws-sdk(?:/[^'"` + "`" + `]*)?['"` + "`" + `]`)
	reRequest  = regexp.MustCompile(`\.request\s*\(`)
	reToken    = regexp.MustCompile(`(?i)fetchMetadataToken|x-aws-ec2-metadata-token`)
)

// findTokenlessRequest reports the 1-based line of the first ".request(" in
// a source file that uses MetadataService of aws-sdk v2 and never mentions a
// token (fetchMetadataToken, the x-aws-ec2-metadata-token header). Files
// using @aws-sdk/ec2-metadata-service (v3, which fetches tokens) do not count.
func findTokenlessRequest(data []byte) (int, bool) {
	if !bytes.Contains(data, []byte("MetadataService")) || bytes.Contains(data, []byte("@aws-sdk/ec2-metadata-service")) ||
		!reAWSSDKv2.Match(data) || reToken.Match(data) {
		return 0, false
	}
	loc := reRequest.FindIndex(data)
	if loc == nil {
		return 0, false
	}
	return bytes.Count(data[:loc[0]], []byte("\n")) + 1, true
}
