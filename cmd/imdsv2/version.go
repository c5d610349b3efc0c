package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

const versionDoc = `
Usage: imdsv2 version [--output text|json] [--features]
       imdsv2 --version

Prints the version, the commit it was built from, and the Go version. With --features (root)
it also loads the auditor's eBPF programs into the kernel without attaching them, unloads them,
and prints the kernel features the auditor found: whether ` + "`imdsv2 audit`" + ` will run here.
With --output json the features are the "features" array of the document.

Exit status: 0, or 2 when --features cannot load the programs here (privileges, kernel: the
message says what is missing).
`

// versionSchema is the version of the layout of version's JSON document.
const versionSchema = 1

type versionInfo struct {
	Schema    int    `json:"schema"`
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// Features are the lines of --features: what the auditor found in this kernel.
	Features []string `json:"features,omitempty"`
}

// versionConfig is the command line of `imdsv2 version` (and `imdsv2 --version`).
type versionConfig struct {
	output   *choiceFlag
	features bool
}

func (c *versionConfig) register(fs *flag.FlagSet) {
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text or json")
	fs.BoolVar(&c.features, "features", false, "also load (never attach) the auditor's eBPF programs and print the kernel features found (root)")
}

func (c *versionConfig) setArgs(args []string) error { return noArgs(args) }

func (c *versionConfig) run(_ context.Context, s streams) error {
	v := buildInfo()
	if c.features {
		f, err := featureLines()
		if err != nil {
			return err
		}
		v.Features = f
	}
	if c.output.json() {
		return writeJSON(s.out, v)
	}
	printVersion(s.out, v)
	if c.features {
		fmt.Fprintln(s.out, "auditor features (programs loaded and unloaded again, nothing attached):")
		for _, line := range v.Features {
			fmt.Fprintln(s.out, "  "+line)
		}
	}
	return nil
}

// buildInfo is the version set at build time, or the module's, and the commit it was built from.
func buildInfo() versionInfo {
	v := versionInfo{Schema: versionSchema, Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func printVersion(stdout io.Writer, v versionInfo) {
	fmt.Fprintf(stdout, "imdsv2 %s", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(stdout, " (commit %.12s", v.Commit)
		if v.Modified {
			fmt.Fprint(stdout, ", modified")
		}
		fmt.Fprint(stdout, ")")
	}
	fmt.Fprintf(stdout, " %s %s\n", v.GoVersion, v.Platform)
}
