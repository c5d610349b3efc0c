package ready

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/imdsv2/imdsv2/audit"
)

// ReadState reads the state file of a running agent (audit.SaveState) without changing it
// (audit.ReadState): unlike audit.LoadState it never renames a file it cannot decode, since
// the file belongs to the agent.
func ReadState(path string) (*audit.Summary, error) {
	s, err := audit.ReadState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the agent's state: %w (is `imdsv2 audit --state %s` running?)", err, path)
	}
	return s, err
}
