package audit_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
	"github.com/imdsv2/imdsv2/internal/fakeclock"
)

func TestRunToEOFSavesState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	clock := fakeclock.New(t0)
	var mu sync.Mutex
	var got []audit.Record
	a, err := audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: clock, StateFile: path,
		OnRecord: func(r audit.Record) { mu.Lock(); got = append(got, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	r := v1Session(t0, 2)
	if err := a.Run(context.Background(), r.Source()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n != 4 { // two GETs, the unanswered PUT, the lost report
		t.Fatalf("%d records", n)
	}
	s, err := audit.LoadState(path)
	if err != nil || s == nil || s.Requests[audit.ClassIMDSv1] != 2 || s.LostEvents != 2 {
		t.Fatalf("state: %+v, %v", s, err)
	}
}

// blockingSource returns its events, then blocks until ctx is done.
type blockingSource struct {
	events []audit.Event
	served chan struct{}
}

func (b *blockingSource) Next(ctx context.Context) (audit.Event, error) {
	if len(b.events) > 0 {
		ev := b.events[0]
		b.events = b.events[1:]
		return ev, nil
	}
	select {
	case b.served <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return audit.Event{}, ctx.Err()
}

func TestRunStopsWithContextAndTicks(t *testing.T) {
	clock := fakeclock.New(t0)
	records := make(chan audit.Record, 10)
	a, err := audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: clock, Records: records,
		TokenAnswerTimeout: time.Second, TickInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := replay.New(t0)
	r.Connect(goProc).Send(replay.TokenPUT(60, goUA))
	src := &blockingSource{events: r.Events(), served: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, src) }()

	<-src.served // all events handed over
	clock.Set(t0.Add(5 * time.Second))
	// The ticker resolves the PUT as unanswered without any new event.
	rec := <-records
	if !rec.Unanswered {
		t.Fatalf("%+v", rec)
	}
	for range 100 { // Snapshot is safe while Run works
		_ = a.Snapshot()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestFullRecordsChannelDrops(t *testing.T) {
	records := make(chan audit.Record) // nobody reads
	a, err := audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: fakeclock.New(t0), Records: records})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background(), v1Session(t0, 3).Source()); err != nil {
		t.Fatal(err)
	}
	if s := a.Snapshot(); s.DroppedRecords != 5 {
		t.Fatalf("dropped %d", s.DroppedRecords)
	}
}

func TestSourceErrorIsReturned(t *testing.T) {
	a, err := audit.New(audit.Options{ProcessTable: newFakeTable(), Clock: fakeclock.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	want := errors.New("ring buffer gone")
	if err := a.Run(context.Background(), errSource{want}); !errors.Is(err, want) {
		t.Fatalf("Run returned %v", err)
	}
}

type errSource struct{ err error }

func (e errSource) Next(context.Context) (audit.Event, error) { return audit.Event{}, e.err }
