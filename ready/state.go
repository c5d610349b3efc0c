package ready

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/imdsv2/imdsv2/audit"
)

// maxStateBytes bounds the state file read.
const maxStateBytes = 256 << 20

// ReadState reads the state file of a running agent (audit.SaveState) without changing it:
// unlike audit.LoadState it never renames a file it cannot decode, since the file belongs
// to the agent.
func ReadState(path string) (*audit.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the agent's state: %w (is `imdsv2 audit --state %s` running?)", err, path)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the agent's state %s: %w", path, err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("state file %s is larger than %d bytes", path, maxStateBytes)
	}
	var s audit.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s is not an imdsv2 audit state: %w", path, err)
	}
	if s.Schema != audit.SummarySchema {
		return nil, fmt.Errorf("state file %s has schema %d, this program reads %d: use the matching version",
			path, s.Schema, audit.SummarySchema)
	}
	return &s, nil
}
