// Command spotwatch is the kind of agent started from user data: it watches for a Spot
// interruption notice and a rebalance recommendation, and exits cleanly (status 0, with a message)
// when one arrives or when it is told to stop (SIGTERM, Ctrl-C), so that a wrapper script or
// systemd can drain the instance next.
//
// It fails fast, with the reason, when IMDS cannot be reached (off EC2, or a container behind a
// bridge while the instance's hop limit is 1): an agent that hangs silently is worse than one that
// says why it cannot start.
//
//	spotwatch -interval 5s && drain-and-shutdown.sh
//
// Anywhere but EC2 point it at the emulator:
//
//	imdsv2 mock --spot-after 30s &
//	AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 go run ./examples/spotwatch
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imdsv2/imdsv2/imds"
)

func main() {
	os.Exit(agent(os.Args[1:], imds.Options{}, os.Stdout, os.Stderr))
}

// agent is main without the process around it: flags, signals, exit status.
func agent(args []string, opts imds.Options, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("spotwatch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// AWS gives two minutes' notice; polling every 5 s, as AWS suggests, leaves time to drain.
	interval := fs.Duration("interval", 5*time.Second, "how often to poll IMDS")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *interval <= 0 {
		fmt.Fprintln(stderr, "spotwatch: -interval must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, *interval, stdout); err != nil {
		fmt.Fprintln(stderr, "spotwatch:", err)
		return 1
	}
	return 0
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
	fmt.Fprintf(w, "watching %s for spot interruption and rebalance notices every %s\n", id, interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		stop, err := check(ctx, c, w)
		if ctx.Err() != nil {
			// A request cut short by the signal is not an IMDS failure.
			fmt.Fprintln(w, "stopping on signal")
			return nil
		}
		if stop || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// check reads both notices once and reports whether one has arrived.
func check(ctx context.Context, c *imds.Client, w io.Writer) (bool, error) {
	action, err := c.SpotInstanceAction(ctx)
	if err != nil {
		return false, err
	}
	if action != nil {
		fmt.Fprintf(w, "spot interruption: %s at %s; exiting\n", action.Action, action.Time.UTC().Format(time.RFC3339))
		return true, nil
	}
	rebalance, err := c.RebalanceRecommendation(ctx)
	if err != nil {
		return false, err
	}
	if rebalance != nil {
		fmt.Fprintf(w, "rebalance recommended at %s; exiting\n", rebalance.NoticeTime.UTC().Format(time.RFC3339))
		return true, nil
	}
	return false, nil
}
