package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// manyFiles is an fs.FS with n plain files and one old botocore.
func manyFiles(n int) fstest.MapFS {
	m := fstest.MapFS{
		"opt/a/botocore-1.12.0.dist-info/METADATA": {Data: []byte(metadata("botocore", "1.12.0"))},
	}
	for i := range n {
		m[fmt.Sprintf("opt/b/file%03d.txt", i)] = &fstest.MapFile{Data: []byte("x")}
	}
	return m
}

func TestMaxFiles(t *testing.T) {
	rep, err := Run(context.Background(), Options{FS: manyFiles(50), Roots: []string{"/opt"}, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TruncatedBy != TruncatedByMaxFiles || rep.FilesScanned != 10 {
		t.Errorf("truncated=%v by %q, files scanned %d; want true, %q, 10", rep.Truncated, rep.TruncatedBy, rep.FilesScanned, TruncatedByMaxFiles)
	}
	if !strings.Contains(describe(rep), "INCOMPLETE") {
		t.Errorf("text does not say the scan is incomplete:\n%s", describe(rep))
	}
	// Without the limit the same tree is walked to the end.
	rep, err = Run(context.Background(), Options{FS: manyFiles(50), Roots: []string{"/opt"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Truncated || rep.FilesScanned != 51 || len(rep.Findings) != 1 {
		t.Errorf("unlimited: truncated=%v files=%d findings=%d, want false 51 1", rep.Truncated, rep.FilesScanned, len(rep.Findings))
	}
}

func TestMaxBytes(t *testing.T) {
	fsys := manyFiles(0)
	fsys["opt/c/node_modules/aws-sdk/package.json"] = &fstest.MapFile{
		Data: []byte(`{"name":"aws-sdk","version":"2.500.0","description":"` + strings.Repeat("x", 4000) + `"}`),
	}
	rep, err := Run(context.Background(), Options{FS: fsys, Roots: []string{"/opt"}, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TruncatedBy != TruncatedByMaxBytes || rep.BytesRead > 1000 {
		t.Errorf("truncated=%v by %q bytes read %d; want max_bytes within 1000", rep.Truncated, rep.TruncatedBy, rep.BytesRead)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	rep, err := Run(context.Background(), Options{FS: manyFiles(5), Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TruncatedBy != TruncatedByTimeout {
		t.Errorf("timeout: truncated=%v by %q", rep.Truncated, rep.TruncatedBy)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err = Run(ctx, Options{FS: manyFiles(5)})
	if !errors.Is(err, context.Canceled) || rep == nil || rep.TruncatedBy != TruncatedByCanceled {
		t.Errorf("cancelled: err %v, report %+v", err, rep)
	}
}

// stuckFS never answers Open for one name, like a file on a dead disk.
type stuckFS struct {
	fstest.MapFS
	stuck   string
	release chan struct{}
}

func (f stuckFS) Open(name string) (fs.File, error) {
	if name == f.stuck {
		<-f.release
	}
	return f.MapFS.Open(name)
}

func TestStuckFileSystemCall(t *testing.T) {
	fsys := stuckFS{MapFS: manyFiles(3), stuck: "opt/a/botocore-1.12.0.dist-info/METADATA", release: make(chan struct{})}
	t.Cleanup(func() { close(fsys.release) })
	rep, err := Run(context.Background(), Options{FS: fsys, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Truncated || rep.TruncatedBy != TruncatedByTimeout {
		t.Errorf("truncated %v by %q, want the walk abandoned at the time-out", rep.Truncated, rep.TruncatedBy)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{MaxFiles: -1}, {MaxBytes: -1}, {Timeout: -time.Second},
		{Roots: []string{"relative/path"}}, {Roots: []string{"/bad[pattern"}},
		{FS: fstest.MapFS{}, Root: "/"}, {Root: "/nonexistent-scan-root"},
	} {
		if rep, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) = %+v, want an error", o, rep)
		}
	}
}

// failingFS refuses to open some names, as unreadable files do.
type failingFS struct {
	fstest.MapFS
	deny map[string]bool
}

func (f failingFS) Open(name string) (fs.File, error) {
	if f.deny[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f.MapFS.Open(name)
}

func TestUnreadableFilesAreCounted(t *testing.T) {
	fsys := failingFS{
		MapFS: fstest.MapFS{
			"opt/x/botocore-1.12.0.dist-info/METADATA":      {Data: []byte(metadata("botocore", "1.12.0"))},
			"opt/y/node_modules/aws-sdk/package.json":       {Data: []byte(`{"name":"aws-sdk","version":"2.1.0"}`)},
			"opt/z/lib/aws-java-sdk-core.jar":               {Data: []byte("not a zip")},
			"opt/locked/inner/aws-java-sdk-core-1.0.0.jar":  {Data: []byte("x")},
			"opt/w/boto3-1.9.0.dist-info/METADATA":          {Data: []byte(metadata("boto3", "1.9.0"))},
			"opt/w/node_modules/aws-sdk/package.json":       {Data: []byte(`{"name":`)},
			"opt/v/.aws/config":                             {Data: []byte("[default]\nec2_metadata_v1_disabled=false\n")},
			"opt/v/node_modules/aws-sdk/lib/node_modules/x": {Data: []byte("x")},
		},
		deny: map[string]bool{
			"opt/x/botocore-1.12.0.dist-info/METADATA": true, // falls back to the directory name
			"opt/y/node_modules/aws-sdk/package.json":  true,
			"opt/locked": true,
		},
	}
	rep, err := Run(context.Background(), Options{FS: fsys, Roots: []string{"/opt"}})
	if err != nil {
		t.Fatal(err)
	}
	// Denied: METADATA, package.json, the locked directory; malformed: the
	// jar and the truncated package.json.
	if rep.Unreadable != 5 {
		t.Errorf("Unreadable = %d, want 5\n%s", rep.Unreadable, describe(rep))
	}
	got := findingsAt(rep)
	if f := got["/opt/x/botocore-1.12.0.dist-info"]; f.Version != "1.12.0" || !strings.Contains(f.Evidence, "directory name") {
		t.Errorf("unreadable METADATA: finding %+v, want the version from the directory name", f)
	}
	if f := got["/opt/w/boto3-1.9.0.dist-info"]; f.Version != "1.9.0" {
		t.Errorf("the walk did not go on past unreadable files: %+v", rep.Findings)
	}
	if f := got["/opt/v/.aws/config:2"]; f.Kind != KindV1FallbackAllowed {
		t.Errorf("config finding missing: %+v", rep.Findings)
	}
}

func TestLinksLoopsAndSpecialFiles(t *testing.T) {
	root := t.TempDir()
	opt := filepath.Join(root, "opt")
	writeFile(t, filepath.Join(opt, "lib/aws-java-sdk-core-1.11.500.jar"), string(zipBytes(t, map[string]string{"a": "b"})))
	links := map[string]string{
		"opt/lib/loop":                  "..",                             // a directory loop
		"opt/lib/self":                  ".",                              // another
		"opt/lib/abs":                   root,                             // the whole tree again
		"opt/lib/aws-java-sdk-core.jar": "aws-java-sdk-core-1.11.500.jar", // the same jar, second name
		"opt/lib/dangling.jar":          "missing.jar",
		"opt/escape.jar":                "/proc/self/environ", // never read through a link
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(opt, "lib/fifo-aws-java-sdk-core.jar"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Inside Root, the absolute link to /proc cannot even be followed; on the
	// machine's root it can, and the file is refused because it lives on proc.
	for _, tt := range []struct {
		opts    Options
		prefix  string
		skipped int
	}{
		{Options{Root: root, Roots: []string{"/opt", "/opt/lib", "/opt/lib/loop"}}, "", 1},
		{Options{Roots: []string{opt, filepath.Join(opt, "lib"), filepath.Join(opt, "lib/loop")}}, root, 2},
	} {
		rep, err := Run(context.Background(), tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		jar, link := tt.prefix+"/opt/lib/aws-java-sdk-core-1.11.500.jar", tt.prefix+"/opt/lib/aws-java-sdk-core.jar"
		if len(rep.Findings) != 1 || rep.Findings[0].Path != jar && rep.Findings[0].Path != link {
			t.Errorf("want one finding for the jar, got:\n%s", describe(rep))
		}
		if rep.Truncated || rep.DirsScanned != 2 {
			t.Errorf("truncated=%v dirs scanned=%d, want false and 2 (links and overlapping roots walked once)", rep.Truncated, rep.DirsScanned)
		}
		if rep.FilesSkipped != tt.skipped {
			t.Errorf("Root %q: FilesSkipped = %d, want %d (the FIFO, and the link into /proc when it can be followed)", tt.opts.Root, rep.FilesSkipped, tt.skipped)
		}
	}
}

func TestPseudoFileSystemsAreNotEntered(t *testing.T) {
	rep, err := Run(context.Background(), Options{Roots: []string{"/proc", "/sys/kernel", "/dev"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FilesScanned != 0 || rep.DirsScanned != 0 || rep.SkippedDirCount != 3 {
		t.Errorf("files=%d dirs=%d skipped dirs=%d (%v), want 0 0 3", rep.FilesScanned, rep.DirsScanned, rep.SkippedDirCount, rep.SkippedDirs)
	}
	if runtime.GOOS == "linux" {
		if got := dirFSType("/proc"); got != "proc" {
			t.Errorf("dirFSType(/proc) = %q, want proc", got)
		}
		if got := dirFSType("/"); pseudoFSReason(got) != "" {
			t.Errorf("dirFSType(/) = %q, which would be skipped", got)
		}
	}
}

func TestHostilePathNames(t *testing.T) {
	root := t.TempDir()
	evil := "evil\n\x1b[31mRED \u202e"
	writeFile(t, filepath.Join(root, "opt", evil, "botocore-1.12.0.dist-info/METADATA"), metadata("botocore", "1.12.0"))
	writeFile(t, filepath.Join(root, "opt/x/boto3-1.0.dist-info/METADATA"), "Name: boto3\nVersion: 1.0\x1b[2J\n")
	rep, err := Run(context.Background(), Options{Root: root, Roots: []string{"/opt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || !strings.Contains(rep.Findings[0].Path, evil) {
		t.Fatalf("want the botocore finding with the exact path, got %+v", rep.Findings)
	}
	text := describe(rep)
	if strings.ContainsAny(text, "\x1b\u202e") || strings.Contains(text, "evil\n") {
		t.Errorf("text output carries raw control characters:\n%q", text)
	}
	if !strings.Contains(text, `"/opt/evil\n\x1b[31mRED \u202e/botocore-1.12.0.dist-info"`) {
		t.Errorf("text output does not show the escaped path:\n%s", text)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Findings[0].Path != rep.Findings[0].Path {
		t.Errorf("JSON round trip lost the path: %v", err)
	}
}

func TestJSONFieldNames(t *testing.T) {
	rep := &Report{
		Roots:       []string{"/opt"},
		Findings:    []Finding{{Kind: KindOldSDK, Severity: SeverityBlocker, Path: "/p", Product: "x", Package: "pkg:x", SDK: "x", Version: "1", MinVersion: "2", Evidence: "e", Setting: "s", Line: 1, Why: "w", Fix: "f"}},
		SkippedDirs: []SkippedDir{{Path: "/proc", Reason: "r"}},
		Truncated:   true, TruncatedBy: TruncatedByTimeout, Duration: time.Second,
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	wantTop := []string{"bytes_read", "dirs_scanned", "duration_ns", "files_read", "files_scanned", "files_skipped",
		"findings", "roots", "skipped_dir_count", "skipped_dirs", "truncated", "truncated_by", "unreadable"}
	if got := sortedKeys(top); !slices.Equal(got, wantTop) {
		t.Errorf("report keys %v, want %v", got, wantTop)
	}
	var findings []map[string]json.RawMessage
	if err := json.Unmarshal(top["findings"], &findings); err != nil {
		t.Fatal(err)
	}
	wantFinding := []string{"evidence", "fix", "kind", "line", "min_version", "package", "path", "product", "sdk", "setting", "severity", "version", "why"}
	if got := sortedKeys(findings[0]); !slices.Equal(got, wantFinding) {
		t.Errorf("finding keys %v, want %v", got, wantFinding)
	}
	if string(top["duration_ns"]) != "1000000000" {
		t.Errorf("duration_ns = %s", top["duration_ns"])
	}
	// An empty report has an empty list, not null, for scripts.
	rep, err = Run(context.Background(), Options{FS: fstest.MapFS{}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(rep); !strings.Contains(string(b), `"findings":[]`) {
		t.Errorf("empty report JSON: %s", b)
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
