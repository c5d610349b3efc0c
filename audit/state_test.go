package audit_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// v1Session sends n IMDSv1 requests from curl and one unanswered token PUT.
func v1Session(start time.Time, n int) *replay.Recorder {
	r := replay.New(start)
	c := r.Connect(curlProc)
	for range n {
		c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/7.88.1"))
		c.Recv(replay.Answer(200, 19), 64)
		r.Advance(time.Second)
	}
	put := r.Connect(goProc)
	put.Send(replay.TokenPUT(300, goUA))
	put.Close()
	r.Lost(2)
	return r
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, audit.Options{StateFile: path})
	h.feed(v1Session(t0, 3))
	if err := h.a.SaveState(); err != nil {
		t.Fatal(err)
	}
	before := h.a.Snapshot()

	// A restart resumes the counts and adds to them.
	h2 := newHarness(t, audit.Options{StateFile: path})
	resumed := h2.a.Snapshot()
	if resumed.Resumed != 1 || !resumed.Since.Equal(before.Since) || resumed.LostEvents != 2 ||
		resumed.Requests[audit.ClassIMDSv1] != 3 || len(resumed.Callers) != len(before.Callers) {
		t.Fatalf("resumed: %+v", resumed)
	}
	if string(jsonOf(t, resumed.Callers)) != string(jsonOf(t, before.Callers)) {
		t.Fatalf("callers changed across the restart:\n%s\n%s", jsonOf(t, before.Callers), jsonOf(t, resumed.Callers))
	}
	h2.feed(v1Session(t0.Add(time.Hour), 2))
	s := h2.a.Snapshot()
	if s.Requests[audit.ClassIMDSv1] != 5 || s.LostEvents != 4 || s.Callers[0].Count != 5 ||
		!s.Callers[0].FirstSeen.Equal(t0) || s.ReadyHints.UnansweredTokenPUTs[0].Count != 2 {
		t.Fatalf("after more events: %+v", s)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestCorruptStateIsKeptAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "{not json",
		"truncated": `{"schema": 1, "callers": [`,
		"no schema": `{"callers": []}`,
		"trailing":  `{"schema": 1} {"schema": 1}`,
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := audit.New(audit.Options{StateFile: path, ProcessTable: newFakeTable()})
			if !errors.Is(err, audit.ErrCorruptState) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("corrupt file still at its path: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 || !strings.Contains(err.Error(), aside[0]) {
				t.Fatalf("aside %v, err %v", aside, err)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != content {
				t.Fatalf("content changed: %q", b)
			}
		})
	}
}

func TestUnreadableStateIsKeptAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.Mkdir(path, 0o700); err != nil { // a directory cannot be read as a file
		t.Fatal(err)
	}
	if _, err := audit.LoadState(path); !errors.Is(err, audit.ErrCorruptState) {
		t.Fatalf("err = %v", err)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Fatalf("aside %v", aside)
	}
}

func TestOtherSchemaIsRefusedAndLeftAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	content := `{"schema": 99, "callers": "a newer layout"}`
	os.WriteFile(path, []byte(content), 0o600)
	if _, err := audit.LoadState(path); err == nil || errors.Is(err, audit.ErrCorruptState) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Fatal("file touched")
	}
}

func TestMissingStateIsAFreshStart(t *testing.T) {
	s, err := audit.LoadState(filepath.Join(t.TempDir(), "none.json"))
	if s != nil || err != nil {
		t.Fatalf("%v %v", s, err)
	}
}

func TestSaveStateIntoMissingDirectoryFails(t *testing.T) {
	if err := audit.SaveState(filepath.Join(t.TempDir(), "no", "such", "state.json"), audit.Summary{}); err == nil {
		t.Fatal("no error")
	}
}
