package scan

import (
	"cmp"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
)

var (
	// errBudget: reading would pass Options.MaxBytes; the walk stops.
	errBudget = errors.New("byte budget of the scan exhausted")
	// errTooLarge: reading would pass the per-file limit; the file is skipped.
	errTooLarge = errors.New("file larger than the scan reads")
)

// meteredFile counts reads against the scan's byte budget and a per-file
// limit. Reads that would pass either fail whole, without reading.
type meteredFile struct {
	w    *walker
	f    file
	left int64 // per-file
	// limitErr is the first limit met. Parsers (archive/zip, debug/elf) may
	// wrap or replace the error they got, so callers look here.
	limitErr error
}

func (m *meteredFile) ReadAt(p []byte, off int64) (int, error) {
	want := int64(len(p))
	if want > m.left {
		m.limitErr = cmp.Or(m.limitErr, errTooLarge)
		return 0, errTooLarge
	}
	if want > m.w.bytesLeft {
		m.limitErr = cmp.Or(m.limitErr, errBudget)
		return 0, errBudget
	}
	n, err := m.f.ReadAt(p, off)
	m.left -= int64(n)
	m.w.bytesLeft -= int64(n)
	m.w.update(func(r *Report) { r.BytesRead += int64(n) })
	return n, err
}

func (m *meteredFile) Close() error { return m.f.Close() }

// open opens name for metered reading of at most limit bytes. On error it
// has already been accounted for (see failed) and the caller just returns.
func (w *walker) open(name string, limit int64) (*meteredFile, bool) {
	f, err := w.src.open(name)
	if err != nil {
		w.failed(err)
		return nil, false
	}
	w.update(func(r *Report) { r.FilesRead++ })
	return &meteredFile{w: w, f: f, left: limit}, true
}

// readHead returns up to limit bytes from the start of name, whose size is
// size: the part of a metadata or configuration file that matters.
func (w *walker) readHead(name string, size, limit int64) ([]byte, bool) {
	f, ok := w.open(name, limit)
	if !ok {
		return nil, false
	}
	defer f.Close()
	limit = min(limit, size)
	var buf []byte
	chunk := make([]byte, 16<<10)
	for off := int64(0); off < limit; {
		n := min(int64(len(chunk)), limit-off)
		got, err := f.ReadAt(chunk[:n], off)
		buf = append(buf, chunk[:got]...)
		off += int64(got)
		if errors.Is(err, io.EOF) || (err == nil && int64(got) < n) {
			break
		}
		if err != nil {
			w.failed(err)
			return nil, false
		}
	}
	return buf, true
}

// failed accounts for an error met while opening or reading a file.
func (w *walker) failed(err error) {
	switch {
	case errors.Is(err, errBudget):
		w.stop(TruncatedByMaxBytes)
	case errors.Is(err, errTooLarge), errors.Is(err, errNotRegular), errors.Is(err, errPseudoFile):
		w.skipped()
	case errors.Is(err, fs.ErrNotExist):
		// Removed since it was listed: nothing to report.
	default:
		w.unreadable()
	}
}

// glob expands a root pattern (io/fs name with path.Match wildcards) into
// the existing names it matches, sorted. Names without wildcards are returned
// as they are; walkRoot ignores those that do not exist.
func (w *walker) glob(pattern string) []string {
	if !hasMeta(pattern) {
		return []string{pattern}
	}
	matches := []string{"."}
	rest := pattern
	for rest != "" {
		var elem string
		elem, rest, _ = cut(rest)
		var next []string
		for _, dir := range matches {
			if !hasMeta(elem) {
				next = append(next, path.Join(dir, elem))
				continue
			}
			next = append(next, w.matchDir(dir, elem)...)
		}
		matches = next
	}
	slices.Sort(matches)
	return matches
}

// maxGlobEntries bounds the listing of one directory during root expansion.
const maxGlobEntries = 100_000

func (w *walker) matchDir(dir, elem string) []string {
	d, err := w.src.openDir(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	var out []string
	for seen := 0; seen < maxGlobEntries; {
		entries, err := d.ReadDir(dirBatch)
		seen += len(entries)
		for _, e := range entries {
			if ok, _ := path.Match(elem, e.Name()); ok {
				out = append(out, path.Join(dir, e.Name()))
			}
		}
		if err != nil || len(entries) == 0 {
			break
		}
	}
	return out
}

func hasMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}
