package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// newFlagSet returns a flag set that reports errors instead of exiting, and prints the command's
// documentation followed by its flags for -h.
func newFlagSet(name, doc string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("imdsv2 "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), strings.TrimLeft(doc, "\n"))
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns the outcome into an exit status: -1 to go on, exitOK after
// -h, exitUsage on a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}

// outputFlag is --output: text or json.
type outputFlag string

func (o *outputFlag) String() string { return string(*o) }

func (o *outputFlag) Set(s string) error {
	switch s {
	case "text", "json":
		*o = outputFlag(s)
		return nil
	}
	return fmt.Errorf("must be text or json, not %q", s)
}

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
