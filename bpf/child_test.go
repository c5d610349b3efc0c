//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/netguard"
)

// childEnv makes the test binary act as a workload process (a curl-like client) instead of
// running tests; the tests start it inside their cgroup.
const childEnv = "IMDSV2_BPF_TEST_CHILD"

func init() {
	if os.Getenv(childEnv) == "1" {
		// The child's main goroutine stays on the process's first thread (the leader), so
		// that execFromThread's goroutine runs on another one.
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild(os.Args[1:]))
	}
	netguard.TestMain(m)
}

// runChild runs one workload: args[0] is "child", args[1] the mode.
func runChild(args []string) int {
	if len(args) < 2 || args[0] != "child" {
		fmt.Fprintln(os.Stderr, "child: usage: child <mode> args...")
		return 2
	}
	var err error
	switch mode, rest := args[1], args[2:]; mode {
	case "get": // get URL marker
		err = childGet(rest[0], rest[1], 1)
	case "many": // many URL marker N
		n, _ := strconv.Atoi(rest[2])
		err = childGet(rest[0], rest[1], n)
	case "send-exit": // send-exit host:port marker: send a request and exit at once
		var c net.Conn
		if c, err = net.Dial("tcp", rest[0]); err == nil {
			_, err = io.WriteString(c, request("/latest/meta-data/ami-id", rest[1]))
			if err == nil {
				os.Exit(0) // no close, no read: the process is gone before the answer
			}
		}
	case "connect-exit": // connect-exit host:port: connect (refused or not), send nothing, exit
		if c, err := net.Dial("tcp", rest[0]); err == nil {
			c.Close()
		}
	case "wait-get": // wait-get URL marker padding...: say "waiting", read a line from stdin, then get
		fmt.Println("waiting")
		if _, err = bufio.NewReader(os.Stdin).ReadString('\n'); err == nil {
			err = childGet(rest[0], rest[1], 1)
		}
	case "wait-exec": // wait-exec path argv...: say "waiting", read a line from stdin, then exec path
		fmt.Println("waiting")
		if _, err = bufio.NewReader(os.Stdin).ReadString('\n'); err == nil {
			err = unix.Exec(rest[0], rest[1:], os.Environ())
		}
	case "thread-exec": // thread-exec URL marker marker2: get, then exec "get URL marker2" from a thread that is not the leader
		if err = childGet(rest[0], rest[1], 1); err == nil {
			err = execFromThread(os.Args[0], []string{os.Args[0], "child", "get", rest[0], rest[2]})
		}
	case "hold": // hold host:port marker: connect, wait for a line on stdin, then send
		err = childHold(rest[0], rest[1])
	case "connects": // connects imdsPort otherPort
		err = childConnects(rest[0], rest[1])
	case "worker": // worker rrAddr bulkAddr [dialAddr...]: benchmark load on commands from stdin
		err = childWorker(rest[0], rest[1], rest[2:])
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// execFromThread executes argv[0] from a thread other than the process's first, so that the
// kernel kills the leader thread (de_thread) and the new program takes over the pid.
func execFromThread(path string, argv []string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if tid := unix.Gettid(); tid == unix.Getpid() {
			done <- fmt.Errorf("exec thread %d is the leader", tid)
			return
		}
		done <- unix.Exec(path, argv, os.Environ())
	}()
	return <-done
}

func request(path, marker string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: imds\r\nX-Marker: " + marker + "\r\n\r\n"
}

// childGet makes n requests to url with keep-alive, a new connection every 10 requests, and
// prints "dials N" on stdout: the connections it opened. That is n/10 most of the time, but Go's
// transport dials anew when the next request comes before the connection just used is back in
// its idle pool (seen under QEMU TCG), so the test compares with what the child did.
func childGet(url, marker string, n int) error {
	var dials atomic.Int64
	dialer := &net.Dialer{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DialContext: dial}, Timeout: 10 * time.Second}
	defer func() { fmt.Printf("dials %d\n", dials.Load()) }()
	for i := range n {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Marker", marker)
		req.Close = i%10 == 9 // mostly keep-alive, now and then a new connection
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
	}
	return nil
}

func childHold(addr, marker string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("connected")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	if _, err := io.WriteString(c, request("/latest/meta-data/instance-id", marker)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	return err
}

// childConnects connects every way a program can reach the (test) IMDS port and an unrelated
// port, and fails on the first connect that does not succeed: a program that denied a
// connect() would show up here as EPERM.
func childConnects(imdsPort, otherPort string) error {
	for _, addr := range []string{"127.0.0.1:" + imdsPort, "[::1]:" + imdsPort, "127.0.0.1:" + otherPort, "[::1]:" + otherPort} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp connect %s: %w", addr, err)
		}
		c.Close()
	}
	c, err := net.Dial("udp", "127.0.0.1:"+imdsPort)
	if err != nil {
		return fmt.Errorf("udp connect: %w", err)
	}
	c.Close()
	// A dual-stack AF_INET6 socket reaching the IPv4 endpoint as ::ffff:127.0.0.1, as Java does.
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		return err
	}
	port, _ := strconv.Atoi(imdsPort)
	sa := &unix.SockaddrInet6{Port: port, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("v4-mapped connect: %w", err)
	}
	_, err = unix.Write(fd, []byte(request("/mapped", "mapped")))
	return err
}

// childWorker serves benchmark commands: "rr N" makes N 100-byte request/response round trips
// on one connection to rrAddr, "bulk N" writes N chunks of 64 KiB to bulkAddr, "dial N"
// connects to each of dialAddrs and closes, N times. It answers "ok" or "error ..." for each
// command.
func childWorker(rrAddr, bulkAddr string, dialAddrs []string) error {
	rr, err := net.Dial("tcp", rrAddr)
	if err != nil {
		return err
	}
	bulk, err := net.Dial("tcp", bulkAddr)
	if err != nil {
		return err
	}
	req, resp := make([]byte, 100), make([]byte, 100)
	copy(req, request("/latest/meta-data/instance-id", "bench"))
	chunk := make([]byte, 64<<10)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		n, _ := strconv.Atoi(arg)
		err := error(nil)
		for i := 0; i < n && err == nil; i++ {
			switch cmd {
			case "rr":
				if _, err = rr.Write(req); err == nil {
					_, err = io.ReadFull(rr, resp)
				}
			case "bulk":
				_, err = bulk.Write(chunk)
			case "dial":
				err = dialEach(dialAddrs)
			default:
				err = fmt.Errorf("unknown command %q", cmd)
			}
		}
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		fmt.Println("ok")
	}
	return in.Err()
}

func dialEach(addrs []string) error {
	for _, addr := range addrs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}
