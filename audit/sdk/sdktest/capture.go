// Package sdktest holds the captures of real IMDS clients that the fingerprints of package sdk
// are tested against: what each client sent on the wire, request head by request head, made by
// the end-to-end tests (internal/e2e, -update-captures) that install the client and run it in
// the test bed against the emulator.
package sdktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Schema is the version of the capture file format.
const Schema = 1

// Capture is one client run: who it is and the request heads it sent, as sent (header names,
// order and case), with token values replaced by TokenPlaceholder.
type Capture struct {
	Schema int `json:"schema"`
	// Client is the product as package sdk names it ("aws-sdk-js-v3", "curl").
	Client  string `json:"client"`
	Version string `json:"version"`
	// Source says where the client came from, with its exact version: "npm:aws-sdk@2.600.0",
	// "debian:curl=7.88.1-10+deb12u15".
	Source string `json:"source"`
	// API is what the client program called ("MetadataService.request", "fromInstanceMetadata",
	// "curl -H X-aws-ec2-metadata-token").
	API string `json:"api"`
	// Where is the test bed namespace it ran in and the hop limit: "instance, hop limit 1".
	Where string `json:"where"`
	// Exe is the executable's path; Argv its arguments (paths of the test's own files reduced to
	// their base names).
	Exe  string   `json:"exe"`
	Argv []string `json:"argv"`
	// Requests are the request heads in the order the emulator read them.
	Requests []string `json:"requests"`
}

// TokenPlaceholder stands for every token value in a capture.
const TokenPlaceholder = "<token>"

// SecretPlaceholder stands for the value of any other header that can carry a secret.
const SecretPlaceholder = "<redacted>"

// tokenShape is the emulator's (and real IMDS's) token: base64 text beginning with AQAE.
var tokenShape = regexp.MustCompile(`AQAE[A-Za-z0-9+/=_-]{16,}`)

// Redact replaces the values of the token header and of headers that can carry credentials, and
// any token-shaped text elsewhere in the head.
func Redact(head string) string {
	lines := strings.SplitAfter(head, "\n")
	for i, l := range lines {
		if i == 0 {
			continue
		}
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		end := l[len(strings.TrimRight(l, "\r\n")):]
		switch strings.ToLower(name) {
		case "x-aws-ec2-metadata-token":
			lines[i] = name + ": " + TokenPlaceholder + end
		case "authorization", "proxy-authorization", "cookie", "metadata-token", "x-amz-security-token":
			lines[i] = name + ": " + SecretPlaceholder + end
		}
	}
	return tokenShape.ReplaceAllString(strings.Join(lines, ""), TokenPlaceholder)
}

// FileName is the capture's file name: <client>-<version>-<api>[-<where>].json, with characters
// outside [A-Za-z0-9._-] replaced.
func (c *Capture) FileName() string {
	name := c.Client + "-" + c.Version + "-" + c.API
	if ns, _, _ := strings.Cut(c.Where, ","); ns != "" && ns != "instance" {
		name += "-" + ns
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name) + ".json"
}

// Write stores c in dir under its FileName.
func Write(dir string, c *Capture) error {
	c.Schema = Schema
	for i, r := range c.Requests {
		c.Requests[i] = Redact(r)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, c.FileName()), append(b, '\n'), 0o644)
}

// Load reads every capture in dir, sorted by file name.
func Load(dir string) ([]Capture, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var out []Capture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c Capture
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if c.Schema != Schema {
			return nil, fmt.Errorf("%s: schema %d, want %d", f, c.Schema, Schema)
		}
		if len(c.Requests) == 0 || c.Client == "" {
			return nil, fmt.Errorf("%s: no client or no requests", f)
		}
		if filepath.Base(f) != c.FileName() {
			return nil, fmt.Errorf("%s: named %s by its contents", f, c.FileName())
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no captures in " + dir)
	}
	return out, nil
}
