package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// testOptions points the client at the emulator, ignores the caller's AWS_* environment, and
// gives a loaded test machine generous time limits: these tests check answers, not speed.
func testOptions(url string) imds.Options {
	return imds.Options{Endpoint: url, Getenv: func(string) string { return "" },
		Timeout: time.Minute, TokenTimeout: 30 * time.Second, RequestTimeout: 30 * time.Second, DialTimeout: 10 * time.Second}
}

func newServer(t *testing.T, cfg imdstest.Config) *imdstest.Server {
	cfg.InstanceID = "i-0spot000000000001"
	srv := imdstest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

func TestExitsOnSpotNotice(t *testing.T) {
	srv := newServer(t, imdstest.Config{SpotActionAfter: 50 * time.Millisecond, SpotAction: "stop"})
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), testOptions(srv.URL()), 20*time.Millisecond, &out))
	assert.Contains(t, out.String(), "watching i-0spot000000000001")
	assert.Contains(t, out.String(), "spot interruption: stop at ")
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			assert.True(t, r.TokenSent, "tokenless GET %s", r.Path)
		}
	}
}

func TestExitsOnRebalance(t *testing.T) {
	srv := newServer(t, imdstest.Config{RebalanceAfter: 50 * time.Millisecond})
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), testOptions(srv.URL()), 20*time.Millisecond, &out))
	assert.Contains(t, out.String(), "rebalance recommended at ")
}

// notifyWriter is a writer that tells, once, when a line containing want has been written.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func newNotifyWriter(want string) *notifyWriter {
	return &notifyWriter{want: want, seen: make(chan struct{})}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	n, err := w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return n, err
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestStopsOnCancel(t *testing.T) {
	srv := newServer(t, imdstest.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newNotifyWriter("watching")
	done := make(chan error, 1)
	go func() { done <- run(ctx, testOptions(srv.URL()), 10*time.Millisecond, out) }()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("run ended before watching: %v", err)
	}
	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, out.String(), "stopping on signal")
}

// TestSIGTERM sends the process a real SIGTERM while the agent runs: the agent must catch it and
// exit with status 0.
func TestSIGTERM(t *testing.T) {
	srv := newServer(t, imdstest.Config{})
	out := newNotifyWriter("watching")
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- agent([]string{"-interval", "10ms"}, testOptions(srv.URL()), out, &errOut) }()
	select {
	case <-out.seen: // the handler is installed before this line is written
	case code := <-done:
		t.Fatalf("agent ended with %d before watching: %s", code, errOut.String())
	}
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	assert.Equal(t, 0, <-done, errOut.String())
	assert.Contains(t, out.String(), "stopping on signal")
}

func TestFailsFastOffEC2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // a refused port: "not on EC2"
	var errOut bytes.Buffer
	code := agent(nil, testOptions("http://"+addr), &bytes.Buffer{}, &errOut)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "spotwatch: cannot start: ")

	err = run(context.Background(), testOptions("http://"+addr), time.Second, &bytes.Buffer{})
	assert.True(t, errors.Is(err, imds.ErrUnreachable), "%v", err)
}

func TestFailsOnHopLimit(t *testing.T) {
	srv := newServer(t, imdstest.Config{})
	srv.InjectFault(imdstest.Fault{Method: http.MethodPut, Kind: imdstest.FaultHang})
	opts := testOptions(srv.URL())
	opts.TokenTimeout = 2 * time.Second // the token answer that never comes: no need to wait long
	err := run(context.Background(), opts, time.Second, &bytes.Buffer{})
	assert.True(t, errors.Is(err, imds.ErrHopLimit), "%v", err)
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-interval", "0s"}, {"-interval", "soon"}, {"-nope"}} {
		assert.Equal(t, 2, agent(args, imds.Options{}, &bytes.Buffer{}, &bytes.Buffer{}), "%v", args)
	}
}
