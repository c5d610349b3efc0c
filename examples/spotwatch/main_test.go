package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestExitsOnSpotNotice(t *testing.T) {
	srv := imdstest.NewServer(imdstest.Config{SpotActionAfter: 50 * time.Millisecond})
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), imds.Options{Endpoint: srv.URL()}, 20*time.Millisecond, &out))
	require.Contains(t, out.String(), "spot interruption: terminate")
}

func TestExitsOnRebalance(t *testing.T) {
	srv := imdstest.NewServer(imdstest.Config{RebalanceAfter: 50 * time.Millisecond})
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), imds.Options{Endpoint: srv.URL()}, 20*time.Millisecond, &out))
	require.Contains(t, out.String(), "rebalance recommended")
}

func TestStopsOnCancel(t *testing.T) {
	srv := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error)
	go func() { done <- run(ctx, imds.Options{Endpoint: srv.URL()}, 10*time.Millisecond, &out) }()
	require.Eventually(t, func() bool { return len(srv.Requests()) > 4 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestFailsFastOffEC2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // a refused port: "not on EC2"
	err = run(context.Background(), imds.Options{Endpoint: "http://" + addr}, time.Second, &bytes.Buffer{})
	require.True(t, errors.Is(err, imds.ErrUnreachable), "%v", err)
}
