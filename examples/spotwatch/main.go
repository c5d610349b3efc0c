// Command spotwatch is the kind of agent started from user data: it watches for a Spot
// interruption notice and a rebalance recommendation, and exits cleanly (status 0, with a message)
// when one arrives or when it is told to stop (SIGTERM, Ctrl-C), so that a wrapper script or
// systemd can drain the instance.
//
// It fails fast, with the reason, when IMDS cannot be reached (off EC2, or the hop limit in a
// container): an agent that hangs silently is worse than one that says why it cannot start.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imdsv2/imdsv2/imds"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, imds.Options{}, 5*time.Second, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "spotwatch:", err)
		os.Exit(1)
	}
}

// run polls every interval until a notice arrives (nil), ctx ends (nil) or IMDS fails (error).
func run(ctx context.Context, opts imds.Options, interval time.Duration, w io.Writer) error {
	c, err := imds.New(opts)
	if err != nil {
		return err
	}
	id, err := c.InstanceID(ctx)
	if err != nil {
		return fmt.Errorf("cannot start: %w", err)
	}
	fmt.Fprintf(w, "watching %s for spot interruption and rebalance notices\n", id)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		action, err := c.SpotInstanceAction(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if action != nil {
			fmt.Fprintf(w, "spot interruption: %s at %s; exiting\n", action.Action, action.Time.UTC().Format(time.RFC3339))
			return nil
		}
		rebalance, err := c.RebalanceRecommendation(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if rebalance != nil {
			fmt.Fprintf(w, "rebalance recommended at %s; exiting\n", rebalance.NoticeTime.UTC().Format(time.RFC3339))
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				fmt.Fprintln(w, "stopping on signal")
			}
			return nil
		case <-tick.C:
		}
	}
}
