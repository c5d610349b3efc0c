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

// ErrStateInUse says another agent holds the lock of the state file (see New): two agents
// writing one file would overwrite each other's counts.
var ErrStateInUse = errors.New("audit: state file in use")

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
	b = EscapeJSON(b) // someone will cat it on a terminal
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

// ErrStateSchema says a state file was written by a newer version of this program
// (Summary.Schema above SummarySchema). Such a file is refused and left in place; older
// schemas are read (see SummarySchema).
var ErrStateSchema = errors.New("audit: state file of another schema version")

// ReadState reads a state file written by SaveState and changes nothing: it is what another
// program (imdsv2 ready) uses to look at a running agent's state. A missing file gives an error
// wrapping fs.ErrNotExist, one that is not a state file of this version an error wrapping
// ErrCorruptState or ErrStateSchema.
func ReadState(path string) (*Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: read state: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxStateBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptState, path, err)
	case n > maxStateBytes:
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorruptState, path, maxStateBytes)
	}
	// The schema first: a file of another version is refused whatever its layout.
	var probe struct{ Schema int }
	if json.Unmarshal(buf.Bytes(), &probe) == nil && probe.Schema > SummarySchema {
		return nil, fmt.Errorf("%w: %s has schema %d, written by a newer version of this program; this one reads schemas up to %d: "+
			"run the newer version that wrote it (upgrade this one), or move the file away to start with fresh counts (it is left as it is)",
			ErrStateSchema, path, probe.Schema, SummarySchema)
	}
	var s Summary
	dec := json.NewDecoder(&buf)
	if err = dec.Decode(&s); err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil && s.Schema <= 0 {
		err = errors.New("no schema version")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptState, path, err)
	}
	s.Recheck()
	return &s, nil
}

// LoadState reads a state file written by SaveState, for the agent that owns it. A missing
// file gives (nil, nil): a first start. A file that cannot be read or decoded is renamed to
// path+".corrupt-<UTC time>" and an error wrapping ErrCorruptState is returned, so that nothing
// overwrites it silently and the next start begins afresh. A file of another schema version is
// left in place and refused (ErrStateSchema).
func LoadState(path string) (*Summary, error) {
	s, err := ReadState(path)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, ErrStateSchema):
		return nil, err
	}
	if !errors.Is(err, ErrCorruptState) { // could not even open it (permissions)
		err = fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("%w; moving it aside failed too: %v (remove or fix it by hand)", err, rerr)
	}
	return nil, fmt.Errorf("%w; kept as %s, counting starts afresh on the next start", err, aside)
}
