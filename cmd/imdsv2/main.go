// Command imdsv2 reads EC2 instance metadata with IMDSv2 only, emulates the metadata service for
// tests, and shows the whole workflow in a self-contained demo.
//
// Run `imdsv2 help` for the list of commands and `imdsv2 COMMAND -h` for each one's flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses shared by the commands.
const (
	exitOK    = 0 // success
	exitFail  = 1 // the command ran and the answer is "no" (an IMDS error, a check failed)
	exitUsage = 2 // bad flags or arguments, or the command could not run at all
)

// command is one subcommand: its name, a one-line summary for `imdsv2 help`, and the function
// that parses its own flags and runs it.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order `imdsv2 help` shows them.
func commands() []command {
	return []command{
		{"get", "read one metadata path with IMDSv2 (a trailing / lists a directory)", runGet},
		{"doctor", "check from here: endpoints, IMDSv2 token, hop limit, identity (exit 0 healthy)", runDoctor},
		{"ready", "can this instance require IMDSv2 now? audit, scan, verdict and next steps (root)", runReady},
		{"mock", "run the IMDS emulator, for local development and tests", runMock},
		{"audit", "watch which processes and containers still call IMDS without a token (root, eBPF)", runAudit},
		{"demo", "build a private test network, run the emulator and clients in it, explain what happens (root)", runDemo},
		{"version", "print the version and build information", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "imdsv2: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `imdsv2 makes moving EC2 instances to IMDSv2 safe.

Usage:
  imdsv2 COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'imdsv2 COMMAND -h' for a command's flags and examples.
`)
}
