package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// warnings collects JSONLines warnings and dropped counts.
type warnings struct {
	mu      sync.Mutex
	msgs    []string
	dropped uint64
}

func (w *warnings) warn(m string) { w.mu.Lock(); w.msgs = append(w.msgs, m); w.mu.Unlock() }
func (w *warnings) drop(n uint64) { w.mu.Lock(); w.dropped += n; w.mu.Unlock() }

func (w *warnings) get() ([]string, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...), w.dropped
}

// flakyWriter writes the first cut bytes of writes number from..to (1-based)
// and fails them with ENOSPC, like a file system that fills up and is then
// cleaned.
type flakyWriter struct {
	bytes.Buffer
	n, from, to, cut int
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	f.n++
	if f.n >= f.from && f.n <= f.to {
		k := min(f.cut, len(p))
		f.Buffer.Write(p[:k])
		return k, syscall.ENOSPC
	}
	return f.Buffer.Write(p)
}

func lostRecord(n uint64) audit.Record {
	return audit.Record{Type: audit.RecordLost, Time: t0, Lost: n}
}

// A write that fails loses that record only: it is counted and reported at
// once, the next records are written, the line cut short spoils itself only,
// and recovery is reported.
func TestJSONLinesGoOnAfterAFailedWrite(t *testing.T) {
	w := &flakyWriter{from: 2, to: 4, cut: 7}
	var got warnings
	now := t0
	jl := audit.NewJSONLinesWith(w, audit.JSONLinesOptions{Warn: got.warn, OnDropped: got.drop, Now: func() time.Time { return now }})
	for i := range 6 {
		err := jl.Write(lostRecord(uint64(i + 1)))
		if (i >= 1 && i <= 3) != (err != nil) {
			t.Fatalf("write %d: %v", i+1, err)
		}
		if i == 1 {
			if msgs, _ := got.get(); len(msgs) != 1 || !strings.Contains(msgs[0], "no space left") {
				t.Fatalf("first failure not reported at once: %q", msgs)
			}
		}
		now = now.Add(time.Second)
	}
	msgs, dropped := got.get()
	if dropped != 3 || jl.Dropped() != 3 || !errors.Is(jl.Err(), syscall.ENOSPC) {
		t.Fatalf("dropped %d/%d, err %v", dropped, jl.Dropped(), jl.Err())
	}
	if len(msgs) != 2 || !strings.Contains(msgs[1], "works again; 3 records were lost") {
		t.Fatalf("warnings %q", msgs)
	}
	var lost []uint64
	for _, line := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
		var r struct {
			Type   string `json:"type"`
			Schema int    `json:"schema"`
			Lost   uint64 `json:"lost"`
		}
		if json.Unmarshal([]byte(line), &r) != nil {
			if !strings.HasPrefix(`{"type":"lost"`, line) {
				t.Errorf("a torn line that is not a prefix of a record: %q", line)
			}
			continue
		}
		if r.Schema != audit.RecordSchema {
			t.Errorf("schema %d in %q", r.Schema, line)
		}
		lost = append(lost, r.Lost)
	}
	if len(lost) != 3 || lost[0] != 1 || lost[1] != 5 || lost[2] != 6 {
		t.Fatalf("records written: %v\n%s", lost, w.String())
	}
}

// While writes go on failing, a warning comes at most every WarnEvery, with
// the records lost since the last one.
func TestJSONLinesWarnEveryWhileFailing(t *testing.T) {
	w := &flakyWriter{from: 1, to: 1 << 30}
	var got warnings
	now := t0
	jl := audit.NewJSONLinesWith(w, audit.JSONLinesOptions{Warn: got.warn, WarnEvery: 10 * time.Second, Now: func() time.Time { return now }})
	for range 25 { // one a second
		jl.OnRecord(lostRecord(1))
		now = now.Add(time.Second)
	}
	msgs, _ := got.get()
	if len(msgs) != 3 || !strings.Contains(msgs[1], "10 more records lost (11 since") ||
		!strings.Contains(msgs[2], "10 more records lost (21 since") {
		t.Fatalf("%q", msgs)
	}
}

// A reader that exits: the pipe breaks. Writing goes on failing with EPIPE,
// counted and reported, and never kills the writer.
func TestJSONLinesReaderThatExits(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reader := exec.Command("head", "-n", "1")
	reader.Stdin = r
	var out bytes.Buffer
	reader.Stdout = &out
	if err := reader.Start(); err != nil {
		t.Skipf("skipped: head(1) cannot run here: %v", err)
	}
	r.Close() // the reader holds the only read end now
	var got warnings
	jl := audit.NewJSONLinesWith(w, audit.JSONLinesOptions{Warn: got.warn, OnDropped: got.drop})
	if err := jl.Write(lostRecord(1)); err != nil {
		t.Fatal(err)
	}
	if err := reader.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := jl.Write(lostRecord(uint64(i + 2))); !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write %d after the reader exited: %v", i+2, err)
		}
	}
	msgs, dropped := got.get()
	if dropped != 100 || len(msgs) != 1 || !strings.Contains(msgs[0], "broken pipe") {
		t.Fatalf("dropped %d, warnings %q", dropped, msgs)
	}
	if !strings.HasPrefix(out.String(), `{"type":"lost","schema":1,`) {
		t.Fatalf("the reader read %q", out.String())
	}
}

// /dev/full: every write fails with ENOSPC.
func TestJSONLinesDevFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("skipped: no /dev/full here: %v", err)
	}
	defer f.Close()
	var got warnings
	jl := audit.NewJSONLinesWith(f, audit.JSONLinesOptions{Warn: got.warn, OnDropped: got.drop})
	for range 10 {
		jl.OnRecord(lostRecord(1))
	}
	if msgs, dropped := got.get(); dropped != 10 || len(msgs) != 1 || !errors.Is(jl.Err(), syscall.ENOSPC) {
		t.Fatalf("dropped %d, warnings %q, err %v", dropped, msgs, jl.Err())
	}
}

// The JSON output of an auditor on a small file system that fills up: the
// records that fit are whole lines, the first failure is reported when it
// happens (not at the end), and the summary's dropped_records counts every
// record that did not fit.
func TestJSONOutputOnAFullFileSystem(t *testing.T) {
	dir := privtest.Tmpfs(t, "16k")
	f, err := os.Create(filepath.Join(dir, "records.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var got warnings
	var a *audit.Auditor
	var records int
	jl := audit.NewJSONLinesWith(f, audit.JSONLinesOptions{Warn: got.warn,
		OnDropped: func(n uint64) { a.DropRecords(n) }})
	warnedAt := -1
	a, err = audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: fakeclock.New(t0),
		OnRecord: func(r audit.Record) {
			records++
			jl.OnRecord(r)
			if msgs, _ := got.get(); len(msgs) > 0 && warnedAt < 0 {
				warnedAt = records
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	rec := replay.New(t0)
	c := rec.Connect(curlProc)
	for range 100 { // each record is about 1.5 KiB: 16 KiB holds about 10
		c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
		c.Recv(replay.Answer(200, 19), 64)
		rec.Advance(time.Second)
	}
	for _, ev := range rec.Events() {
		a.Handle(ev)
	}
	s := a.Snapshot()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	whole := 0
	for sc.Scan() {
		if json.Valid(sc.Bytes()) {
			whole++
		}
	}
	t.Logf("%d records, %d written whole (%d bytes), %d dropped; first warning after record %d",
		records, whole, len(b), s.DroppedRecords, warnedAt)
	if records != 100 || whole == 0 || whole >= 100 {
		t.Fatalf("%d records, %d whole lines", records, whole)
	}
	if s.DroppedRecords != uint64(100-whole) || jl.Dropped() != s.DroppedRecords {
		t.Fatalf("dropped_records %d, JSONLines %d, want %d", s.DroppedRecords, jl.Dropped(), 100-whole)
	}
	if warnedAt != whole+1 {
		t.Fatalf("first warning after record %d, the first failure was record %d", warnedAt, whole+1)
	}
}
