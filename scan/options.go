package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of Options. They keep a scan of an ordinary server well under a
// minute while bounding the damage on a host with millions of files.
const (
	DefaultMaxFiles = 500_000
	DefaultMaxBytes = 256 << 20
	DefaultTimeout  = 2 * time.Minute
)

// defaultRoots are where AWS SDKs, the CLI, programs and their configuration
// live on Linux distributions, in containers' layers (/var/lib) and in users'
// home directories. Overlaps (/lib/systemd/system on merged-/usr systems) are
// walked once.
var defaultRoots = []string{
	"/usr/lib/python3*", "/usr/lib/python2*", "/usr/lib64/python*",
	"/usr/lib/node_modules", "/usr/share/java", "/usr/share/gems", "/usr/lib/ruby", "/usr/share/php",
	"/usr/bin", "/usr/sbin", "/usr/libexec",
	"/usr/lib/systemd/system", "/lib/systemd/system",
	"/usr/local", "/opt", "/srv", "/home", "/root", "/var/lib", "/var/www", "/etc",
}

// DefaultRoots returns a copy of the directories Run walks when Options.Roots
// is empty. Entries may contain path.Match wildcards.
func DefaultRoots() []string { return append([]string(nil), defaultRoots...) }

// Options bound and direct a scan. The zero Options scans the default roots
// of this machine's file system with the default limits. No field is read
// from the environment.
type Options struct {
	// Roots are absolute directories (or files) to walk, inside Root or FS;
	// path.Match wildcards are expanded ("/usr/lib/python3*"). Roots that do
	// not exist are ignored. Default: DefaultRoots().
	Roots []string
	// MaxFiles stops the walk after this many regular files were looked at
	// (Report.FilesScanned). Default DefaultMaxFiles; negative is an error.
	MaxFiles int
	// MaxBytes stops the walk once this many bytes of file content were read
	// (Report.BytesRead). Only files whose name makes them relevant are read,
	// and only the part that matters (a jar's directory, not its classes).
	// Default DefaultMaxBytes; negative is an error.
	MaxBytes int64
	// Timeout bounds the whole scan. Default DefaultTimeout; negative is an
	// error. When it expires Run returns what it found so far, with
	// Report.Truncated set.
	Timeout time.Duration
	// Root is the directory that stands for "/" (for example the mounted root
	// file system of a container image); Roots are resolved inside it and
	// symbolic links are not followed out of it. Paths in the report are
	// relative to it, written as absolute paths. Default "/".
	Root string
	// FS, if set, is scanned instead of Root (for tests); Roots are resolved
	// inside it ("/usr/bin" is "usr/bin" in FS). Setting both Root and FS is
	// an error.
	FS fs.FS
}

// resolved is Options with the defaults applied and the source opened.
type resolved struct {
	roots    []string // fs-style names, unexpanded patterns
	maxFiles int
	maxBytes int64
	timeout  time.Duration
}

func (o Options) resolve() (resolved, source, error) {
	r := resolved{maxFiles: o.MaxFiles, maxBytes: o.MaxBytes, timeout: o.Timeout}
	switch {
	case o.MaxFiles < 0:
		return r, nil, fmt.Errorf("scan: MaxFiles is %d; use 0 for the default (%d) or a positive limit", o.MaxFiles, DefaultMaxFiles)
	case o.MaxBytes < 0:
		return r, nil, fmt.Errorf("scan: MaxBytes is %d; use 0 for the default (%d) or a positive limit", o.MaxBytes, DefaultMaxBytes)
	case o.Timeout < 0:
		return r, nil, fmt.Errorf("scan: Timeout is %s; use 0 for the default (%s) or a positive duration", o.Timeout, DefaultTimeout)
	case o.FS != nil && o.Root != "":
		return r, nil, errors.New("scan: set Options.Root or Options.FS, not both")
	}
	if r.maxFiles == 0 {
		r.maxFiles = DefaultMaxFiles
	}
	if r.maxBytes == 0 {
		r.maxBytes = DefaultMaxBytes
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	roots := o.Roots
	if len(roots) == 0 {
		roots = defaultRoots
	}
	for _, root := range roots {
		if !strings.HasPrefix(root, "/") {
			return r, nil, fmt.Errorf("scan: root %q is not an absolute path; write it as it appears inside the scanned root, starting with /", root)
		}
		name := fsName(root)
		if _, err := path.Match(name, ""); err != nil {
			return r, nil, fmt.Errorf("scan: root %q is not a valid pattern: %w", root, err)
		}
		r.roots = append(r.roots, name)
	}
	if o.FS != nil {
		return r, &fsSource{fsys: o.FS}, nil
	}
	src, err := newOSSource(o.Root)
	if err != nil {
		return r, nil, err
	}
	return r, src, nil
}

// newOSSource opens the real file system at root (default "/").
func newOSSource(root string) (*osSource, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("scan: root directory %q: %w", root, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("scan: root directory %q: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("scan: root %q is not a directory", root)
	}
	s := &osSource{dir: abs, mounts: loadMounts(abs)}
	if abs != "/" {
		// Confine symbolic links to the tree, so an absolute link inside a
		// container image does not lead to the host's files.
		if s.root, err = os.OpenRoot(abs); err != nil {
			return nil, fmt.Errorf("scan: root directory %q: %w", root, err)
		}
	}
	return s, nil
}

// fsName turns an absolute path into an io/fs name ("/" is ".").
func fsName(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// displayPath turns an io/fs name back into the absolute path reports show.
func displayPath(name string) string {
	if name == "." {
		return "/"
	}
	return "/" + name
}
