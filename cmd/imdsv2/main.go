// Command imdsv2 reads EC2 instance metadata with IMDSv2 only, emulates the metadata service for
// tests, and shows the whole workflow in a self-contained demo.
//
// Run `imdsv2 help` for the list of commands and `imdsv2 help COMMAND` for each one's flags.
//
// Each command follows one shape: its flags are parsed into a config (register, setArgs), then
// one run(ctx, streams) error does the work; the exit status is decided in one place, finish,
// from the error (an *exitError carries its status, any other error is 1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses shared by the commands.
const (
	exitOK    = 0 // success (get read it, doctor healthy, ready READY, audit ran to its end)
	exitFail  = 1 // the command ran and the answer is "no" (an IMDS error, a check failed, NOT READY)
	exitUsage = 2 // bad flags or arguments, or the command could not run or decide (UNDECIDED)
)

// exitDoc documents the exit statuses for `imdsv2 help` (the README says the same).
const exitDoc = `
Exit status:
  0  success: the value was read, doctor HEALTHY, ready READY, the audit ran to its end
  1  the command ran and the answer is no: IMDS answered with an error, doctor found a
     problem, ready NOT READY, the audit failed while running
  2  bad flags or arguments, or the command could not run or decide: not root, no IMDS
     (nothing answers), ready UNDECIDED
`

// streams are where a command writes: its result on out, messages and progress on err.
type streams struct {
	out, err io.Writer
}

// config is one command's parsed command line. register binds the flags to its fields,
// setArgs takes the arguments and checks the values together (an error is a usage error),
// and run does the work.
type config interface {
	register(fs *flag.FlagSet)
	setArgs(args []string) error
	run(ctx context.Context, s streams) error
}

// command is one subcommand: its name, a one-line summary for `imdsv2 help`, its help text,
// what its arguments complete to, and its config.
type command struct {
	name    string
	summary string
	doc     string
	args    []string // words to complete for its arguments (bash and zsh)
	config  func() config
}

// commands lists the subcommands in the order `imdsv2 help` shows them.
func commands() []command {
	return []command{
		{"get", "read one metadata path with IMDSv2 (a trailing / lists a directory)", getDoc, getCompletions,
			func() config { return &getConfig{} }},
		{"doctor", "check from here: endpoints, IMDSv2 token, hop limit, identity (exit 0 healthy)", doctorDoc, nil,
			func() config { return &doctorConfig{} }},
		{"ready", "can this instance require IMDSv2 now? audit, scan, verdict and next steps (root)", readyDoc + hostDoc, nil,
			func() config { return &readyConfig{} }},
		{"mock", "run the IMDS emulator, for local development and tests", mockDoc, nil,
			func() config { return &mockConfig{} }},
		{"audit", "watch which processes and containers still call IMDS without a token (root, eBPF)", auditDoc + hostDoc, nil,
			func() config { return &auditConfig{} }},
		{"demo", "build a private test network, run the emulator and clients in it, explain what happens (root)", demoDoc, nil,
			func() config { return &demoConfig{} }},
		{"version", "print the version and build information (also: imdsv2 --version)", versionDoc, nil,
			func() config { return &versionConfig{} }},
		{"completion", "print the shell completion script for bash or zsh", completionDoc, []string{"bash", "zsh"},
			func() config { return &completionConfig{} }},
		{"help", "print the help of a command: imdsv2 help COMMAND", helpDoc, nil,
			func() config { return &helpConfig{} }},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to the subcommand named by args[0] and turns its outcome into the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s := streams{out: stdout, err: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-version", "--version":
		name = "version"
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "imdsv2: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
	return finish(c.name, runCommand(ctx, c, args[1:], s), stderr)
}

// runCommand parses the command line into the command's config and runs it; -h prints the
// command's help to stdout.
func runCommand(ctx context.Context, c command, args []string, s streams) error {
	cfg := c.config()
	fs := newFlagSet(c.name)
	cfg.register(fs)
	rest, err := parseArgs(fs, args)
	if isHelp(err) {
		writeHelp(s.out, c.doc, fs)
		return nil
	}
	if err != nil {
		return &exitError{code: exitUsage, err: flagError(err), usage: true}
	}
	if err := cfg.setArgs(rest); err != nil {
		return err
	}
	return cfg.run(ctx, s)
}

// exitError is an error that decides the exit status. err is printed on stderr after
// "imdsv2 COMMAND: "; without one the command's output already said everything (a verdict,
// a status). usage adds a pointer to the command's help.
type exitError struct {
	code  int
	err   error
	usage bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a bad flag or argument: exit 2, with a pointer to the help.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...), usage: true}
}

// cannotRun is a command that could not start (privileges, kernel, a file): exit 2.
func cannotRun(err error) error { return &exitError{code: exitUsage, err: err} }

// exitStatus is a status the command's output already explained (a verdict): nil for 0.
func exitStatus(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// finish is the one place that turns a command's error into its exit status and its message:
// nil is 0, an *exitError has its code, any other error is 1 (the command failed while running).
func finish(name string, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitFail
	var e *exitError
	if errors.As(err, &e) {
		code = e.code
		if e.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "imdsv2 %s: %v\n", name, err)
	if e != nil && e.usage {
		fmt.Fprintf(stderr, "Run 'imdsv2 help %s' for its flags and arguments.\n", name)
	}
	return code
}

func usage(w io.Writer) {
	fmt.Fprint(w, `imdsv2 makes moving EC2 instances to IMDSv2 safe.

Usage:
  imdsv2 COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Flags go before or after the arguments; -name and --name are the same; -h or --help prints a
command's help. Every command that prints a result takes --output text|json; each JSON document
or line carries a "schema" version of its layout.
`+exitDoc+`
Run 'imdsv2 help COMMAND' (or 'imdsv2 COMMAND -h') for a command's flags and examples, and
'imdsv2 completion bash|zsh' for shell completion.
`)
}

const helpDoc = `
Usage: imdsv2 help [COMMAND]

Prints the list of commands, or the help of COMMAND (the same as imdsv2 COMMAND -h).
`

// helpConfig is `imdsv2 help [COMMAND]`.
type helpConfig struct{ topic string }

func (h *helpConfig) register(*flag.FlagSet) {}

func (h *helpConfig) setArgs(args []string) error {
	if len(args) > 1 {
		return usageErrorf("takes at most one COMMAND, not %d arguments", len(args))
	}
	if len(args) == 1 {
		if _, ok := findCommand(args[0]); !ok {
			return usageErrorf("unknown command %q", args[0])
		}
		h.topic = args[0]
	}
	return nil
}

func (h *helpConfig) run(_ context.Context, s streams) error {
	c, ok := findCommand(h.topic)
	if !ok {
		usage(s.out)
		return nil
	}
	fs := newFlagSet(c.name)
	c.config().register(fs)
	writeHelp(s.out, c.doc, fs)
	return nil
}
