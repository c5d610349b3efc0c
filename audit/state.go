package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrCorruptState says a state file could not be read or decoded. The file
// has been renamed aside (see LoadState) and the error names the new path.
var ErrCorruptState = errors.New("audit: state file unreadable or corrupt")

// maxStateBytes bounds the state file read back: MaxCallers callers with
// bounded strings stay far below it.
const maxStateBytes = 256 << 20

// SaveState writes s to path atomically: to a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so that a
// crash leaves either the old or the new state, never a torn one.
func SaveState(path string, s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write state %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write state %s: sync directory: %w", path, err)
		}
	}
	return nil
}

// LoadState reads a state file written by SaveState. A missing file gives
// (nil, nil): a first start. A file that cannot be read or decoded is renamed
// to path+".corrupt-<UTC time>" and an error wrapping ErrCorruptState is
// returned, so that nothing overwrites it silently and the next start begins
// afresh. A file of another schema version is left in place and refused.
func LoadState(path string) (*Summary, error) {
	b, err := readState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var s Summary
	if err == nil {
		// Look at the schema first: a file of another version is refused
		// but left alone, whatever its layout.
		var probe struct{ Schema int }
		if json.Unmarshal(b, &probe) == nil && probe.Schema != 0 && probe.Schema != SummarySchema {
			return nil, fmt.Errorf("state file %s has schema %d, this program reads %d: use the matching version or move the file away",
				path, probe.Schema, SummarySchema)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		if err = dec.Decode(&s); err == nil && dec.More() {
			err = errors.New("trailing data")
		}
		if err == nil && s.Schema == 0 {
			err = errors.New("no schema version")
		}
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("%w: %s: %v; moving it aside failed too: %v (remove or fix it by hand)",
				ErrCorruptState, path, err, rerr)
		}
		return nil, fmt.Errorf("%w: %s: %v; kept as %s, counting starts afresh on the next start",
			ErrCorruptState, path, err, aside)
	}
	return &s, nil
}

func readState(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxStateBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxStateBytes)
	}
	return buf.Bytes(), nil
}
