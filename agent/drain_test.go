package agent

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
)

// fakeSource hands out its events, then blocks until ctx is done.
type fakeSource struct{ events []audit.Event }

func (f *fakeSource) Next(ctx context.Context) (audit.Event, error) {
	if len(f.events) > 0 {
		ev := f.events[0]
		f.events = f.events[1:]
		return ev, nil
	}
	<-ctx.Done()
	return audit.Event{}, ctx.Err()
}

// TestDrainSource: after the stop, events already reported are still read, then the source
// ends with io.EOF instead of blocking; before the stop it passes events through.
func TestDrainSource(t *testing.T) {
	stop, cancel := context.WithCancel(context.Background())
	src := &fakeSource{events: []audit.Event{{Kind: audit.EventConnect}}}
	d := &drainSource{src: src, stop: stop}
	ev, err := d.Next(context.Background())
	require.NoError(t, err)
	assert.Equal(t, audit.EventConnect, ev.Kind)

	cancel()
	src.events = []audit.Event{{Kind: audit.EventSend}, {Kind: audit.EventRecv}}
	for _, want := range []audit.EventKind{audit.EventSend, audit.EventRecv} {
		ev, err := d.Next(context.Background())
		require.NoError(t, err)
		assert.Equal(t, want, ev.Kind)
	}
	_, err = d.Next(context.Background())
	assert.ErrorIs(t, err, io.EOF)
}
