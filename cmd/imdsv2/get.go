package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
)

const getDoc = `
Usage: imdsv2 get [flags] PATH [flags]

Reads PATH from the instance metadata service with an IMDSv2 session token and prints it.
PATH names a place under /latest/: "meta-data/instance-id", "dynamic/instance-identity/document",
"user-data" (decompressed if it is gzip-compressed). A PATH that starts with none of
meta-data/, dynamic/, user-data or api/ is read under meta-data/, so "instance-id" is
"meta-data/instance-id", as in the AWS SDKs. A leading "/" or "/latest/" is accepted too.
A PATH ending in "/" lists a directory, one entry per line; "meta-data" and "dynamic" alone
list theirs. api/ holds only the session token endpoint, which get uses by itself: it is
refused (a token is never printed).

It never falls back to IMDSv1 unless --allow-v1 is given. Every failure is reported within
--timeout with what is wrong and how to fix it, e.g. the hop-limit failure of a container
behind a bridge.

The environment variables of the AWS SDKs apply: AWS_EC2_METADATA_SERVICE_ENDPOINT,
AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_V1_DISABLED.
Flags win over them.

The value is printed as IMDS sent it when the output goes to a pipe or a file, for scripts.
On a terminal, control characters and escape sequences in it (user data and tags are
written by whoever may launch or tag the instance) are shown escaped, \x1b and so on, so
that they cannot act on the terminal; --raw prints them as they are. In --output json,
JSON's own escapes apply (\u001b for ESC and the other C0 control characters).

Exit status: 0 on success, 1 when IMDS answered with an error (not found, token refused, hop
limit: the message says why), 2 when nothing answers (not on EC2, IMDS cut off) or on bad usage.

Examples:
  imdsv2 get instance-id                      # same as meta-data/instance-id
  imdsv2 get meta-data/                       # list the top level
  imdsv2 get dynamic/instance-identity/document
  imdsv2 get --endpoint-mode ipv6 meta-data/placement/region
  imdsv2 get --endpoint http://127.0.0.1:1338 --output json meta-data/instance-id
`

// getSchema is the version of the layout of get's JSON document; it changes when a field changes
// meaning or goes away (fields may be added).
const getSchema = 1

// getResult is the --output json document of `imdsv2 get`.
type getResult struct {
	Schema      int       `json:"schema"`
	Path        string    `json:"path"`
	Value       *string   `json:"value,omitempty"`        // the answer, when it is UTF-8 text
	ValueBase64 []byte    `json:"value_base64,omitempty"` // the answer, when it is not
	Items       []string  `json:"items,omitempty"`        // a directory listing
	Error       *getError `json:"error,omitempty"`
}

type getError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// exitCode is the status of a read that failed: 2 when nothing answered (no IMDS here, as
// doctor says), 1 when IMDS answered and the answer is no.
func (e *getError) exitCode() int {
	if e.Kind == imds.KindUnreachable.String() {
		return exitUsage
	}
	return exitFail
}

// getCompletions are the paths the completion scripts offer for PATH.
var getCompletions = []string{"instance-id", "instance-type", "placement/region", "placement/availability-zone",
	"iam/security-credentials/", "tags/instance/", "meta-data/", "dynamic/instance-identity/document", "user-data"}

// getConfig is the command line of `imdsv2 get`.
type getConfig struct {
	endpoint string
	mode     *choiceFlag
	allowV1  bool
	timeout  time.Duration
	raw      bool
	output   *choiceFlag
	path     getPath
}

func (c *getConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", "", "base `URL` of IMDS, e.g. http://[fd00:ec2::254] (default: by --endpoint-mode)")
	c.mode = newChoice("", "ipv4", "ipv6", "auto")
	fs.Var(c.mode, "endpoint-mode", "which endpoint: ipv4, ipv6 or auto (IPv4 first, then IPv6) (default ipv4, or AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE)")
	fs.BoolVar(&c.allowV1, "allow-v1", false, "fall back to an IMDSv1 (tokenless) request when no token can be had; reported on stderr")
	fs.DurationVar(&c.timeout, "timeout", imds.DefaultTimeout, "time budget for the whole call")
	fs.BoolVar(&c.raw, "raw", false, "print the value exactly as IMDS sent it, control characters included, even to a terminal")
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text or json")
}

func (c *getConfig) setArgs(args []string) error {
	if len(args) != 1 {
		return usageErrorf("need exactly one PATH, not %d arguments", len(args))
	}
	var err error
	if c.path, err = parseGetPath(args[0]); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// client builds the imds client the flags describe; --allow-v1's fallback is reported on w.
func (c *getConfig) client(w io.Writer) (*imds.Client, error) {
	opts := imds.Options{Endpoint: c.endpoint, AllowIMDSv1: c.allowV1, Timeout: c.timeout}
	if c.mode.value != "" {
		m, err := imds.ParseEndpointMode(c.mode.value)
		if err != nil {
			return nil, usageErrorf("--endpoint-mode: %v", err)
		}
		opts.EndpointMode = m
	}
	if c.allowV1 {
		opts.OnFallback = func(f imds.Fallback) {
			fmt.Fprintf(w, "imdsv2 get: warning: fell back to IMDSv1: %v\n", f)
		}
	}
	client, err := imds.New(opts)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return client, nil
}

// run reads the path and prints it. With --output json a failure is in the document too, and
// is not repeated on stderr.
func (c *getConfig) run(ctx context.Context, s streams) error {
	client, err := c.client(s.err)
	if err != nil {
		return err
	}
	res := c.path.fetch(ctx, client)
	if c.output.json() {
		if err := writeJSON(s.out, res); err != nil {
			return err
		}
		if res.Error != nil {
			return exitStatus(res.Error.exitCode())
		}
		return nil
	}
	if res.Error != nil {
		return &exitError{code: res.Error.exitCode(), err: errors.New(res.Error.Message)}
	}
	f, isFile := s.out.(*os.File)
	printGetText(s.out, res, !c.raw && isFile && isTerminal(f))
	return nil
}

// writeJSON writes v as indented JSON, the layout of every single-document --output json, with
// C1 and bidirectional controls escaped (audit.EscapeJSON): values read from IMDS or a process
// cannot hide text on the terminal of whoever reads the JSON.
func writeJSON(w io.Writer, v any) error {
	return audit.WriteIndentedJSON(w, v)
}

// getPath is a PATH of imdsv2 get: a tree under /latest/ and a path in it.
type getPath struct {
	tree string // "meta-data", "dynamic" or "user-data"
	rel  string // relative to the tree, without a leading "/"; "" for user-data
}

// parseGetPath maps PATH to the tree that reads it: meta-data/, dynamic/ and user-data as named,
// anything else under meta-data/ (the SDK's GetMetadata takes "instance-id"), api/ refused.
func parseGetPath(arg string) (getPath, error) {
	p := strings.TrimPrefix(strings.TrimLeft(arg, "/"), "latest/")
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "meta-data", "dynamic":
		return getPath{tree: first, rel: rest}, nil
	case "user-data":
		if rest != "" {
			return getPath{}, fmt.Errorf("PATH %q: user-data has no subpaths; read \"user-data\"", arg)
		}
		return getPath{tree: first}, nil
	case "api":
		return getPath{}, fmt.Errorf("PATH %q: api/ holds the session token endpoint, which imdsv2 get "+
			"uses by itself; a token is never printed", arg)
	}
	return getPath{tree: "meta-data", rel: p}, nil
}

// String is the URL path, e.g. "/latest/meta-data/instance-id".
func (g getPath) String() string {
	if g.tree == "user-data" {
		return "/latest/user-data"
	}
	return "/latest/" + g.tree + "/" + g.rel
}

// isDir reports a directory to list: a tree's top, or a path ending in "/".
func (g getPath) isDir() bool {
	return g.tree != "user-data" && (g.rel == "" || strings.HasSuffix(g.rel, "/"))
}

func (g getPath) list(ctx context.Context, c *imds.Client) ([]string, error) {
	if g.tree == "dynamic" {
		return c.ListDynamic(ctx, g.rel)
	}
	return c.List(ctx, g.rel)
}

func (g getPath) read(ctx context.Context, c *imds.Client) ([]byte, error) {
	switch g.tree {
	case "user-data":
		return c.UserData(ctx)
	case "dynamic":
		return c.Dynamic(ctx, g.rel)
	}
	return c.Get(ctx, g.rel)
}

// fetch reads or lists the path into the result, or the error.
func (g getPath) fetch(ctx context.Context, c *imds.Client) getResult {
	res := getResult{Schema: getSchema, Path: g.String()}
	var err error
	if g.isDir() {
		res.Items, err = g.list(ctx, c)
	} else {
		var body []byte
		body, err = g.read(ctx, c)
		if utf8.Valid(body) {
			s := string(body)
			res.Value = &s
		} else {
			res.ValueBase64 = body
		}
	}
	if err != nil {
		return getResult{Schema: getSchema, Path: res.Path, Error: &getError{Kind: errorKind(err), Message: err.Error()}}
	}
	return res
}

// printGetText prints the answer; with escape (a person at a terminal) control characters and
// invalid bytes are shown escaped, line breaks and tabs kept (audit.EscapeLines).
func printGetText(w io.Writer, res getResult, escape bool) {
	show := func(s string) string { return s }
	if escape {
		show = audit.EscapeLines
	}
	switch {
	case res.Items != nil:
		for _, it := range res.Items {
			fmt.Fprintln(w, show(it))
		}
	case res.Value != nil:
		fmt.Fprint(w, show(*res.Value))
		if !strings.HasSuffix(*res.Value, "\n") {
			fmt.Fprintln(w)
		}
	case escape:
		fmt.Fprintln(w, show(string(res.ValueBase64)))
	default:
		_, _ = w.Write(res.ValueBase64)
	}
}

// errorKind names the class of an imds error for scripts, in one word: "hop-limit",
// "unreachable", "not-found", ...
func errorKind(err error) string {
	var e *imds.Error
	if errors.As(err, &e) {
		return strings.ReplaceAll(e.Kind.String(), " ", "-")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "error"
}
