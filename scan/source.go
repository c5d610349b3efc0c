package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// source is the file system a scan reads: the machine's (osSource) or an
// fs.FS (fsSource). Names are io/fs names ("usr/bin", "." for the root).
type source interface {
	// openDir opens a directory for batched listing.
	openDir(name string) (dirReader, error)
	// stat follows symbolic links; lstat does not.
	stat(name string) (fs.FileInfo, error)
	lstat(name string) (fs.FileInfo, error)
	// open opens a regular file for reading; anything else is an error
	// (errNotRegular), so a FIFO or device is never read.
	open(name string) (file, error)
	// skipMount returns why the directory name must not be entered (a pseudo,
	// network or FUSE file system), or "". info and parent come from lstat;
	// parent is nil for a root of the walk.
	skipMount(name string, info, parent fs.FileInfo) string
	close() error
}

// dirReader lists a directory a batch at a time, so a directory with millions
// of entries does not have to fit in memory.
type dirReader interface {
	ReadDir(n int) ([]fs.DirEntry, error)
	Close() error
}

type file interface {
	io.ReaderAt
	io.Closer
}

var (
	errNotRegular = errors.New("not a regular file")
	errPseudoFile = errors.New("file lives on a pseudo file system")
)

// osSource reads the machine's file system below dir. root confines symbolic
// links to dir when dir is not "/" (where there is nothing to escape to).
type osSource struct {
	dir    string
	root   *os.Root
	mounts map[string]string // fs name of a mount point -> file system type
}

func (s *osSource) real(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

func (s *osSource) openDir(name string) (dirReader, error) {
	if s.root != nil {
		return s.root.Open(name)
	}
	return os.Open(s.real(name))
}

func (s *osSource) stat(name string) (fs.FileInfo, error) {
	if s.root != nil {
		return s.root.Stat(name)
	}
	return os.Stat(s.real(name))
}

func (s *osSource) lstat(name string) (fs.FileInfo, error) {
	if s.root != nil {
		return s.root.Lstat(name)
	}
	return os.Lstat(s.real(name))
}

func (s *osSource) open(name string) (file, error) {
	// O_NONBLOCK: if the file was swapped for a FIFO since it was listed, the
	// open returns at once instead of waiting for a writer forever.
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	var f *os.File
	var err error
	if s.root != nil {
		f, err = s.root.OpenFile(name, flags, 0)
	} else {
		f, err = os.OpenFile(s.real(name), flags, 0)
	}
	if _, err := regular(f, err); err != nil {
		return nil, err
	}
	// A symbolic link may lead into /proc or /sys even though the walk never
	// enters them; never read such files.
	if t := fileFSType(f); t != "" && pseudoFSReason(t) != "" {
		f.Close()
		return nil, errPseudoFile
	}
	return f, nil
}

func (s *osSource) skipMount(name string, info, parent fs.FileInfo) string {
	if parent == nil {
		// A root of the walk: it may sit anywhere inside a mount.
		if t, ok := s.mountTypeContaining(name); ok {
			return pseudoFSReason(t)
		}
	} else if t, ok := s.mounts[name]; ok {
		return pseudoFSReason(t)
	}
	if parent != nil && !sameDevice(info, parent) {
		// A mount the mount table did not list (or no mount table): ask the
		// file system itself.
		if t := dirFSType(s.real(name)); t != "" {
			return pseudoFSReason(t)
		}
	}
	return ""
}

// mountTypeContaining returns the type of the innermost mount holding name.
func (s *osSource) mountTypeContaining(name string) (string, bool) {
	for n := name; ; {
		if t, ok := s.mounts[n]; ok {
			return t, true
		}
		if n == "." {
			return "", false
		}
		n = parentName(n)
	}
}

func (s *osSource) close() error {
	if s.root != nil {
		return s.root.Close()
	}
	return nil
}

// fsSource reads an fs.FS. It has no mounts and follows no directory links.
type fsSource struct{ fsys fs.FS }

func (s *fsSource) openDir(name string) (dirReader, error) {
	f, err := s.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	d, ok := f.(fs.ReadDirFile)
	if !ok {
		f.Close()
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return d, nil
}

func (s *fsSource) stat(name string) (fs.FileInfo, error)             { return fs.Stat(s.fsys, name) }
func (s *fsSource) lstat(name string) (fs.FileInfo, error)            { return fs.Lstat(s.fsys, name) }
func (s *fsSource) skipMount(string, fs.FileInfo, fs.FileInfo) string { return "" }
func (s *fsSource) close() error                                      { return nil }

// regular checks a file just opened (f, err: the open's result) is a regular file, and closes
// it when it is not (errNotRegular) or cannot be asked.
func regular(f fs.File, err error) (fs.FileInfo, error) {
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, errNotRegular
	}
	return st, nil
}

// maxBufferedFile bounds how much of a file that cannot be read at random
// offsets is copied into memory.
const maxBufferedFile = 64 << 20

func (s *fsSource) open(name string) (file, error) {
	f, err := s.fsys.Open(name)
	st, err := regular(f, err)
	if err != nil {
		return nil, err
	}
	if ra, ok := f.(file); ok {
		return ra, nil
	}
	defer f.Close()
	if st.Size() > maxBufferedFile {
		return nil, fmt.Errorf("%s: %w", name, errTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBufferedFile))
	if err != nil {
		return nil, err
	}
	return nopCloser{bytes.NewReader(b)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// parentName returns the io/fs name of name's directory.
func parentName(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i]
		}
	}
	return "."
}
