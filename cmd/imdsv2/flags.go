package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The command line is parsed with the standard flag package, one FlagSet per command, with
// arguments and flags in any order (parseArgs). Each flag's usage names its value with a
// backquoted placeholder (`FILE`, `DIR`, `DURATION`, ...): the help prints it after the flag, and
// the completion scripts complete file names for FILE and directories for DIR.

// newFlagSet returns the command's flag set. It prints nothing itself: parseArgs returns its
// errors and run prints them, and -h prints the help to stdout (writeHelp).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("imdsv2 "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args with flags before, between and after the arguments, as in
// `imdsv2 get meta-data/instance-id --output json`, and returns the arguments. "--" ends the
// flags: everything after it is an argument. flag.ErrHelp is returned for -h and --help.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		// The flag package stops at the first argument, or after "--".
		if consumed := len(args) - len(left); consumed > 0 && args[consumed-1] == "--" {
			return append(rest, left...), nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// writeHelp prints the command's documentation and its flags, each with its placeholder,
// usage and default:
//
//	--timeout DURATION
//	      time budget for the whole call (default 1.5s)
func writeHelp(w io.Writer, doc string, fs *flag.FlagSet) {
	fmt.Fprint(w, strings.TrimLeft(doc, "\n"))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flagPlaceholder(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if def := shownDefault(f); def != "" {
			usage += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, strings.ReplaceAll(usage, "\n", "\n        "))
	})
	fmt.Fprintln(w, "  -h, --help\n        print this help")
}

// flagPlaceholder returns the placeholder of f's value ("" for a switch) and its usage without
// the backquotes: the backquoted word of the usage, else the choices of a flag with a fixed set
// (text|json), DURATION for a duration and N for a number. Any other flag must name its value
// in its usage (a test checks that no "string" or "value" is left).
func flagPlaceholder(f *flag.Flag) (string, string) {
	name, usage := flag.UnquoteUsage(f)
	c, hasChoices := f.Value.(interface{ choices() []string })
	switch {
	case isSwitch(f):
		name = ""
	case strings.Contains(f.Usage, "`"):
	case hasChoices:
		name = strings.Join(c.choices(), "|")
	case name == "duration":
		name = "DURATION"
	case name == "int" || name == "uint" || name == "int64" || name == "uint64":
		name = "N"
	}
	return name, usage
}

// isSwitch reports a boolean flag, which takes no value (--raw; --raw=false turns it off).
func isSwitch(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// shownDefault is the default worth printing: none for empty values, zero and false.
func shownDefault(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "0s", "false", "[]":
		return ""
	}
	return f.DefValue
}

// choiceFlag is a flag whose value is one of a few words, e.g. --output text|json. aliases maps
// older names to the word they mean (audit's --output table is text).
type choiceFlag struct {
	value   string
	allowed []string
	aliases map[string]string
}

func newChoice(def string, allowed ...string) *choiceFlag {
	return &choiceFlag{value: def, allowed: allowed}
}

// newOutputFlag is --output text|json, text by default.
func newOutputFlag() *choiceFlag { return newChoice("text", "text", "json") }

func (c *choiceFlag) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *choiceFlag) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if a, ok := c.aliases[s]; ok {
		s = a
	}
	for _, v := range c.allowed {
		if s == v {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("must be %s, not %q", orList(c.allowed), s)
}

func (c *choiceFlag) choices() []string { return c.allowed }

// orList renders "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// json reports --output json.
func (c *choiceFlag) json() bool { return c.value == "json" }

// tagsFlag is a compound flag: --tags Name=web,Env=prod (repeatable; later keys win).
type tagsFlag map[string]string

func (t *tagsFlag) String() string {
	if t == nil || len(*t) == 0 {
		return ""
	}
	keys := make([]string, 0, len(*t))
	for k := range *t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + (*t)[k]
	}
	return strings.Join(parts, ",")
}

func (t *tagsFlag) Set(s string) error {
	if *t == nil {
		*t = map[string]string{}
	}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("tag %q is not KEY=VALUE", kv)
		}
		if strings.Contains(k, "/") {
			return fmt.Errorf("tag key %q contains '/', which IMDS cannot serve", k)
		}
		(*t)[k] = v
	}
	return nil
}

func (t *tagsFlag) repeatable() bool { return true }

// stringsFlag is a comma-separated, repeatable list flag.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func (s *stringsFlag) repeatable() bool { return true }

// noArgs is the usage error of a command that takes no arguments.
func noArgs(args []string) error {
	if len(args) != 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// flagError names flags as the help does, --name, in the flag package's parse errors.
func flagError(err error) error {
	msg := err.Error()
	for _, p := range []string{"for flag -", "argument: -", "for -", "defined: -"} {
		if i := strings.Index(msg, p); i >= 0 && !strings.HasPrefix(msg[i+len(p):], "-") {
			msg = msg[:i+len(p)] + "-" + msg[i+len(p):]
			break
		}
	}
	return errors.New(msg)
}

// isHelp reports the error of -h or --help.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
