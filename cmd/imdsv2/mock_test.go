package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `imdsv2 mock --log` past the request log's bound (10 000 entries, then the oldest tenth is
// dropped): each request is printed exactly once. The poller it replaced printed entries again
// each time the log dropped its oldest tenth, and skipped those dropped before it looked.
func TestMockLogPrintsEachRequestOnce(t *testing.T) {
	noEnv(t)
	const n, workers = 10050, 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _, errb, done := startMock(t, ctx, "--log")
	// Pipelined on a few connections: the emulator's work, not a client's, is what takes time.
	host := strings.TrimPrefix(url, "http://")
	var wg sync.WaitGroup
	for w := range workers {
		conn, err := net.Dial("tcp", host)
		require.NoError(t, err)
		defer conn.Close()
		go func() { _, _ = io.Copy(io.Discard, conn) }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			bw := bufio.NewWriter(conn)
			for i := w; i < n; i += workers {
				fmt.Fprintf(bw, "GET /latest/meta-data/x-%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, host)
			}
			if err := bw.Flush(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Lines come as the requests are answered. waitGuard, not a speed: in a VM under software
	// emulation (make test-vm) on a busy machine, 10050 requests took more than 30 s.
	require.Eventually(t, func() bool { return strings.Count(errb.String(), "\n") >= n }, waitGuard, 10*time.Millisecond)
	cancel()
	require.Equal(t, exitOK, <-done)

	seen := make(map[string]int, n)
	lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
	for _, line := range lines {
		i := strings.Index(line, "/latest/meta-data/x-")
		require.GreaterOrEqual(t, i, 0, "line %q", line)
		path, _, _ := strings.Cut(line[i:], " ")
		seen[path]++
	}
	require.Len(t, lines, n)
	require.Len(t, seen, n)
	for p, c := range seen {
		require.Equal(t, 1, c, p)
	}
}

// startMock runs `imdsv2 mock --listen 127.0.0.1:0 ARGS...` until ctx is done and returns its
// URL, its output buffers and the channel of its exit status.
func startMock(t *testing.T, ctx context.Context, args ...string) (url string, out, errb *syncBuffer, done chan int) {
	t.Helper()
	out, errb, done = &syncBuffer{}, &syncBuffer{}, make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"mock", "--listen", "127.0.0.1:0"}, args...), out, errb) }()
	require.Eventually(t, func() bool {
		_, rest, ok := strings.Cut(out.String(), "serving IMDS at ")
		if ok {
			url, _, _ = strings.Cut(rest, " ")
		}
		return ok
	}, 10*time.Second, 10*time.Millisecond)
	return url, out, errb, done
}
