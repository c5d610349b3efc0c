package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/imdsv2/imdsv2/audit"
)

// drainQuiet and drainMax bound the drain at the end of an audit: the events the kernel
// reported before the stop are still read, until none arrives for drainQuiet, and never for
// longer than drainMax (IMDS traffic that goes on would otherwise keep it busy).
const (
	drainQuiet = 300 * time.Millisecond
	drainMax   = 3 * time.Second
)

// drainSource reads src until stop is done, then goes on reading what was already reported
// until the source is quiet for drainQuiet (or drainMax has passed), and then returns io.EOF.
type drainSource struct {
	src      audit.Source
	stop     context.Context
	draining bool
	deadline time.Time
}

// Next implements audit.Source.
func (d *drainSource) Next(ctx context.Context) (audit.Event, error) {
	if !d.draining {
		c, cancel := context.WithCancel(ctx)
		stopped := context.AfterFunc(d.stop, cancel)
		ev, err := d.src.Next(c)
		stopped()
		cancel()
		if err == nil || ctx.Err() != nil || d.stop.Err() == nil {
			return ev, err
		}
		d.draining, d.deadline = true, time.Now().Add(drainMax)
	}
	if time.Now().After(d.deadline) {
		return audit.Event{}, io.EOF
	}
	c, cancel := context.WithTimeout(ctx, drainQuiet)
	defer cancel()
	ev, err := d.src.Next(c)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return audit.Event{}, io.EOF
	}
	return ev, err
}
