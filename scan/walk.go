package scan

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Run walks opts.Roots and reports installed software that cannot use IMDSv2
// and configuration that allows or forbids the IMDSv1 fallback.
//
// Run only reads. It lists directories in batches, reads only files whose
// name makes them relevant, and only as much of each as it needs. It does not
// follow symbolic links to directories (so link loops cannot trap it; real
// directories are reached through their own path when under a root), follows
// links to files, reads each file once however many names it has, and never
// enters /proc, /sys, /dev or a pseudo, network or FUSE file system. Files it
// cannot read are counted in Report.Unreadable and skipped.
//
// Run returns an error only for invalid Options, or when ctx is cancelled;
// then it also returns the partial report, with Truncated set. Reaching
// MaxFiles, MaxBytes or Timeout is not an error: the report says
// Truncated and why.
func Run(ctx context.Context, opts Options) (*Report, error) {
	o, src, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	defer src.close()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	w := &walker{
		ctx: wctx, parent: ctx, opts: o, src: src,
		bytesLeft: o.maxBytes,
		seenDirs:  make(map[any]bool), seenFiles: make(map[any]bool),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.walkRoots()
	}()
	select {
	case <-done:
	case <-wctx.Done():
		// The walk checks the context between files, so it normally stops
		// at once. A system call stuck on a bad disk does not return, though:
		// then the walk is left behind and the partial report returned.
		select {
		case <-done:
		case <-time.After(abandonGrace):
			w.stop(w.ctxReason())
		}
	}
	rep := w.snapshot(time.Since(start))
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// abandonGrace is how long Run waits for the walk to notice the deadline.
const abandonGrace = 2 * time.Second

// maxDepth bounds directory nesting below a root; deeper trees are real only
// in pathological cases.
const maxDepth = 64

// dirBatch is how many directory entries are read at a time.
const dirBatch = 512

// walker is the state of one Run. The walk runs in one goroutine; mu guards
// rep and stopBy, which Run reads when it gives up waiting.
type walker struct {
	ctx, parent context.Context
	opts        resolved
	src         source

	mu     sync.Mutex
	rep    Report
	stopBy string

	// Touched by the walking goroutine only.
	bytesLeft   int64
	seenDirs    map[any]bool // fileID, or the name when the source has no IDs
	seenFiles   map[any]bool
	apps        map[string]*appSearch // applications whose source was searched, by fs name
	seenPython  map[string]bool       // Python findings by package, version and directory
	sourceBytes int64                 // read by all searches of application source
}

func (w *walker) snapshot(d time.Duration) *Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	rep := w.rep
	rep.Roots = slices.Clone(w.rep.Roots)
	rep.Findings = slices.Clone(w.rep.Findings)
	rep.SkippedDirs = slices.Clone(w.rep.SkippedDirs)
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	if rep.Roots == nil {
		rep.Roots = []string{}
	}
	sortFindings(rep.Findings)
	if w.stopBy != "" {
		rep.Truncated, rep.TruncatedBy = true, w.stopBy
	}
	rep.Duration = d
	return &rep
}

// stop ends the walk early; the first reason wins.
func (w *walker) stop(reason string) {
	w.mu.Lock()
	if w.stopBy == "" {
		w.stopBy = reason
	}
	w.mu.Unlock()
}

// stopped reports whether the walk must end, noticing the deadline.
func (w *walker) stopped() bool {
	if w.ctx.Err() != nil {
		w.stop(w.ctxReason())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopBy != ""
}

func (w *walker) ctxReason() string {
	if w.parent.Err() != nil {
		return TruncatedByCanceled
	}
	return TruncatedByTimeout
}

// update runs f with the report locked.
func (w *walker) update(f func(r *Report)) {
	w.mu.Lock()
	f(&w.rep)
	w.mu.Unlock()
}

// add records a finding, once: a Python distribution seen twice in one
// directory (an .egg-info and a .dist-info left by an upgrade, or cloud-init's
// metadata and its version file) at the same version is one installed copy.
func (w *walker) add(f Finding) {
	if strings.HasPrefix(f.Package, "pkg:pypi/") {
		key := f.Package + " " + f.Version + " " + parentName(fsName(f.Path))
		if w.seenPython[key] {
			return
		}
		if w.seenPython == nil {
			w.seenPython = map[string]bool{}
		}
		w.seenPython[key] = true
	}
	w.update(func(r *Report) { r.Findings = append(r.Findings, f) })
}

func (w *walker) unreadable() { w.update(func(r *Report) { r.Unreadable++ }) }

func (w *walker) skipped() { w.update(func(r *Report) { r.FilesSkipped++ }) }

func (w *walker) skipDir(name, reason string) {
	w.update(func(r *Report) {
		r.SkippedDirCount++
		if len(r.SkippedDirs) < maxSkippedDirs {
			r.SkippedDirs = append(r.SkippedDirs, SkippedDir{Path: displayPath(name), Reason: reason})
		}
	})
}

// walkRoots expands the root patterns and walks each match.
func (w *walker) walkRoots() {
	for _, pattern := range w.opts.roots {
		for _, name := range w.glob(pattern) {
			if w.stopped() {
				return
			}
			w.walkRoot(name)
		}
	}
}

func (w *walker) walkRoot(name string) {
	if reason := pathPruneReason(name); reason != "" {
		w.skipDir(name, reason)
		return
	}
	info, err := w.src.stat(name) // a root may be a link (/lib -> usr/lib)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.unreadable()
		}
		return
	}
	w.update(func(r *Report) { r.Roots = append(r.Roots, displayPath(name)) })
	if info.IsDir() {
		w.walkDir(name, info, nil, 0)
		return
	}
	w.visitFile(name, info)
}

// pathPruneReason keeps the walk out of kernel interfaces whatever is mounted
// there (in a container image they are empty directories anyway).
func pathPruneReason(name string) string {
	switch first, _, _ := cut(name); first {
	case "proc", "sys", "dev":
		return "kernel interface, not installed software"
	}
	return ""
}

// skipNames are directories that hold nothing this scan looks for but can
// hold many files.
var skipNames = map[string]bool{".git": true, ".hg": true, ".svn": true, "__pycache__": true}

// walkDir walks a directory and, in name order, the directories below it.
func (w *walker) walkDir(name string, info, parent fs.FileInfo, depth int) {
	if !w.enterDir(name, info, parent, depth) {
		return
	}
	subdirs, ok := w.readDir(name)
	if !ok {
		return
	}
	slices.Sort(subdirs)
	for _, sub := range subdirs {
		if w.stopped() {
			return
		}
		fi, err := w.src.lstat(sub)
		if err != nil {
			w.unreadable()
			continue
		}
		if fi.IsDir() {
			w.walkDir(sub, fi, info, depth+1)
		}
	}
}

// enterDir decides whether the walk enters a directory: not when it has stopped, nor into
// another file system it keeps out of, a directory it walked already, an application's metadata
// directory (checked whole here) or one nested too deep.
func (w *walker) enterDir(name string, info, parent fs.FileInfo, depth int) bool {
	if w.stopped() {
		return false
	}
	if reason := w.src.skipMount(name, info, parent); reason != "" {
		w.skipDir(name, reason)
		return false
	}
	key := seenKey(name, info)
	if w.seenDirs[key] {
		return false // an overlapping root or a bind mount of a walked directory
	}
	w.seenDirs[key] = true
	if w.checkMetadataDir(name) {
		return false
	}
	if depth > maxDepth {
		w.skipDir(name, "nested too deep")
		return false
	}
	return true
}

// readDir reads a directory in batches, visits its files and returns its subdirectories; ok
// is false when it cannot be opened.
func (w *walker) readDir(name string) (subdirs []string, ok bool) {
	d, err := w.src.openDir(name)
	if err != nil {
		w.unreadable()
		return nil, false
	}
	defer d.Close()
	w.update(func(r *Report) { r.DirsScanned++ })
	for !w.stopped() {
		entries, err := d.ReadDir(dirBatch)
		for _, e := range entries {
			if w.stopped() {
				break
			}
			child := path.Join(name, e.Name())
			if w.visitEntry(child, e) && !skipNames[e.Name()] {
				subdirs = append(subdirs, child)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.unreadable()
			}
			break
		}
		if len(entries) == 0 {
			break
		}
	}
	return subdirs, true
}

// visitEntry visits one directory entry that is not a directory; it reports whether the entry
// is a directory, left to the caller.
func (w *walker) visitEntry(child string, e fs.DirEntry) (isDir bool) {
	switch t := e.Type(); {
	case t.IsDir():
		return true
	case t.IsRegular():
		if fi, err := e.Info(); err == nil {
			w.visitFile(child, fi)
		}
	case t&fs.ModeSymlink != 0:
		// Links to files are followed, links to directories are not.
		if fi, err := w.src.stat(child); err == nil && !fi.IsDir() {
			w.visitFile(child, fi)
		}
	default:
		// A FIFO, socket or device: never opened, but counted as skipped when its name looks
		// relevant.
		if fi, err := e.Info(); err == nil && classify(child, fi) != nil {
			w.skipped()
		}
	}
	return false
}

// seenKey is what tells a file or directory walked already: its file ID, or its name when the
// source has no IDs.
func seenKey(name string, info fs.FileInfo) any {
	if id, ok := idOf(info); ok {
		return id
	}
	return name
}

// visitFile counts a file against MaxFiles and checks it when its name makes
// it relevant. info comes from stat (links followed).
func (w *walker) visitFile(name string, info fs.FileInfo) {
	if !w.countFile() {
		return
	}
	check := classify(name, info)
	if check == nil {
		return
	}
	if !info.Mode().IsRegular() {
		w.skipped() // a FIFO or device with a relevant name: never opened
		return
	}
	key := seenKey(name, info)
	if w.seenFiles[key] {
		return // another name (link) of a file already checked
	}
	w.seenFiles[key] = true
	check(w, name, info)
}

// countFile counts one file against MaxFiles; false (and the walk stopped)
// when the limit is reached.
func (w *walker) countFile() bool {
	ok := true
	w.update(func(r *Report) {
		if r.FilesScanned >= w.opts.maxFiles {
			ok = false
			return
		}
		r.FilesScanned++
	})
	if !ok {
		w.stop(TruncatedByMaxFiles)
	}
	return ok
}

// cut splits an io/fs name at its first slash.
func cut(name string) (first, rest string, found bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return name, "", false
}
