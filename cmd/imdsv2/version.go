package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

const versionDoc = `
Usage: imdsv2 version [--output text|json] [--features]

Prints the version, the commit it was built from, and the Go version. With --features (root)
it also loads the auditor's eBPF programs into the kernel without attaching them, unloads them,
and prints the kernel features the auditor found: whether ` + "`imdsv2 audit`" + ` will run here.
`

type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", versionDoc, stderr)
	output := outputFlag("text")
	fs.Var(&output, "output", "text or json")
	features := fs.Bool("features", false, "also load (never attach) the auditor's eBPF programs and print the kernel features found (root)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	v := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
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
	if output == "json" {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		printVersion(stdout, v)
	}
	if *features {
		if err := writeFeatures(stdout); err != nil {
			fmt.Fprintln(stderr, "imdsv2 version:", err)
			return exitFail
		}
	}
	return exitOK
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
