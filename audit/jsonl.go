package audit

import (
	"encoding/json"
	"io"
	"sync"
)

// JSONLines writes records as JSON lines (one object per line, field names
// as in Record). It is safe for concurrent use.
type JSONLines struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

// NewJSONLines returns a JSONLines writing to w.
func NewJSONLines(w io.Writer) *JSONLines {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONLines{enc: enc}
}

// Write writes one record. After a write error every later Write returns it.
func (j *JSONLines) Write(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = j.enc.Encode(r)
	}
	return j.err
}

// OnRecord is Write with the error kept for Err, to use as Options.OnRecord.
func (j *JSONLines) OnRecord(r Record) { _ = j.Write(r) }

// Err returns the first write error.
func (j *JSONLines) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// WriteSummaryJSON writes s as indented JSON.
func WriteSummaryJSON(w io.Writer, s Summary) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
