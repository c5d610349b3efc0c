package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// RecordSchema is the version of the layout of the live JSON lines ("type"
// "request" and "lost"); every such line carries it as "schema". The rule is
// the Summary's (see SummarySchema): a field may be added at any time and
// readers ignore fields and types they do not know; the number changes when a
// field changes meaning or goes away. The summary line of `imdsv2 audit
// --output json` carries SummarySchema instead: each line's "schema" versions
// the layout of its "type".
const RecordSchema = 1

// DefaultWarnEvery is JSONLinesOptions.WarnEvery's default.
const DefaultWarnEvery = 10 * time.Second

// JSONLinesOptions configure NewJSONLinesWith. The zero value reports
// nothing.
type JSONLinesOptions struct {
	// Warn receives a line about write failures: at once when writing fails
	// after having worked (or at the first write), then at most every
	// WarnEvery while failures go on, with how many records were lost, and
	// once more when writing works again. Default: nothing is said.
	Warn func(msg string)
	// OnDropped is called with the number of records that could not be
	// written, as they are lost (Auditor.DropRecords counts them in
	// Summary.DroppedRecords). Default: not called.
	OnDropped func(n uint64)
	// WarnEvery is the least time between two warnings while writes go on
	// failing; default DefaultWarnEvery.
	WarnEvery time.Duration
	// Now tells the time; default time.Now.
	Now func() time.Time
}

// JSONLines writes records as JSON lines (one object per line, field names
// as in Record, plus "schema": RecordSchema). A write that fails does not stop
// the later ones: a reader that went away, a full file system, a disk error
// lose the records that could not be written (counted, reported), not the
// ones after. A line cut short by a failure is ended with a newline before
// the next record, so that it spoils one line only. It is safe for concurrent
// use.
type JSONLines struct {
	opts JSONLinesOptions

	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder

	err     error  // first write error
	dropped uint64 // records not written, in all
	torn    bool   // the last write was cut short: end that line first

	failing    bool      // the last write failed
	failedAt   time.Time // first failure of this run of failures
	warnedAt   time.Time // last warning
	unreported uint64    // records lost since the last warning
	runLost    uint64    // records lost in this run of failures
}

// NewJSONLines returns a JSONLines writing to w that reports nothing (see
// Err and Dropped).
func NewJSONLines(w io.Writer) *JSONLines { return NewJSONLinesWith(w, JSONLinesOptions{}) }

// NewJSONLinesWith returns a JSONLines writing to w with opts.
func NewJSONLinesWith(w io.Writer, opts JSONLinesOptions) *JSONLines {
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = DefaultWarnEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	j := &JSONLines{opts: opts, w: w}
	j.enc = json.NewEncoder(&j.buf)
	j.enc.SetEscapeHTML(false)
	return j
}

// recordLine is a Record as a JSON line: "type" first, then "schema".
type recordLine struct {
	Type   string `json:"type"`
	Schema int    `json:"schema"`
	Record
}

// Write writes one record in a single write to the underlying writer and
// returns that write's error. A record that cannot be written is lost:
// counted in Dropped, passed to OnDropped, and reported through Warn.
func (j *JSONLines) Write(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf.Reset()
	if j.torn {
		j.buf.WriteByte('\n')
	}
	if err := j.enc.Encode(recordLine{Type: r.Type, Schema: RecordSchema, Record: r}); err != nil {
		// Not the writer's fault: nothing reached it, the last line is as it was.
		return j.failed(err, false)
	}
	line := EscapeJSON(j.buf.Bytes())
	n, err := j.w.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return j.failed(err, n > 0 || j.torn)
	}
	j.torn = false
	if j.failing {
		j.failing = false
		j.warn(fmt.Sprintf("JSON output works again; %d records were lost since %s",
			j.runLost, j.failedAt.UTC().Format(time.RFC3339)))
	}
	return nil
}

// failed counts a lost record and warns as JSONLinesOptions.Warn says.
func (j *JSONLines) failed(err error, torn bool) error {
	j.torn = torn
	if j.err == nil {
		j.err = err
	}
	j.dropped++
	j.unreported++
	if j.opts.OnDropped != nil {
		j.opts.OnDropped(1)
	}
	now := j.opts.Now()
	switch {
	case !j.failing:
		j.failing, j.failedAt, j.runLost = true, now, 1
		j.warn(fmt.Sprintf("writing the JSON output failed, the record is lost (auditing and the state file go on; lost records are counted in dropped_records): %v", err))
	default:
		j.runLost++
		if now.Sub(j.warnedAt) >= j.opts.WarnEvery {
			j.warn(fmt.Sprintf("the JSON output still fails: %d more records lost (%d since %s): %v",
				j.unreported, j.runLost, j.failedAt.UTC().Format(time.RFC3339), err))
		}
	}
	return err
}

func (j *JSONLines) warn(msg string) {
	j.warnedAt = j.opts.Now()
	j.unreported = 0
	if j.opts.Warn != nil {
		j.opts.Warn(msg)
	}
}

// OnRecord is Write with the error kept for Err, to use as Options.OnRecord.
func (j *JSONLines) OnRecord(r Record) { _ = j.Write(r) }

// Err returns the first write error.
func (j *JSONLines) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Dropped returns how many records could not be written.
func (j *JSONLines) Dropped() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dropped
}

// WriteSummaryJSON writes s as indented JSON.
func WriteSummaryJSON(w io.Writer, s Summary) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := w.Write(EscapeJSON(buf.Bytes()))
	return err
}
