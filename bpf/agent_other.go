//go:build !linux || !(amd64 || arm64)

package bpf

import (
	"context"
	"errors"
	"runtime"

	"github.com/imdsv2/imdsv2/audit"
)

// errUnsupported is what every entry point returns where the BPF objects are not built.
var errUnsupported = errors.New("bpf: the auditor runs only on Linux on amd64 or arm64, this is " + runtime.GOOS + "/" + runtime.GOARCH)

// Agent is the loaded auditor; on this platform it cannot be created.
type Agent struct{}

// Load fails on this platform.
func Load(Options) (*Agent, error) { return nil, errUnsupported }

// Check fails on this platform.
func Check() error { return errUnsupported }

// Attach fails on this platform.
func (*Agent) Attach(string) error { return errUnsupported }

// Features returns no features on this platform.
func (*Agent) Features() Features { return Features{} }

// Lost returns 0 on this platform.
func (*Agent) Lost() uint64 { return 0 }

// Next fails on this platform.
func (*Agent) Next(context.Context) (audit.Event, error) { return audit.Event{}, errUnsupported }

// Close does nothing on this platform.
func (*Agent) Close() error { return nil }
