//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/internal/benchstat"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// Benchmarks compare loopback TCP traffic of processes in test cgroups with the agent detached
// and attached, in the same run and interleaved (rounds of each in turn), so that a change in the
// machine's load affects all of them alike:
//
//	detached       a cgroup without programs
//	detached-again another one: the control, whose ratio to "detached" shows how far this
//	               machine's noise alone moves a ratio (an A/A test)
//	attached       a cgroup with the programs attached; the traffic is not IMDS traffic (the
//	               common case: every packet and connect of the host pays only for the check)
//	attached-imds  the programs watch the benchmark server's address and port, so every segment
//	               is reported and read by a consumer goroutine (the worst case)
//
// Reported: ns/op of each, and each mode's rate ratio to "detached" (the median over the
// rounds of each round's ratio; 1 = no cost, the goal for "attached" is at least 0.97), plus
// records lost.
//
// Run: nice -n 10 go test -run '^$' -bench Loopback -benchtime 20000x ./bpf/

// benchRounds is how many times each mode takes its turn within one benchmark run.
const benchRounds = 200

func BenchmarkLoopbackRR(b *testing.B) {
	benchLoopback(b, "rr", 0)
}

func BenchmarkLoopbackBulk(b *testing.B) {
	benchLoopback(b, "bulk", 64<<10)
}

func benchLoopback(b *testing.B, cmd string, bytesPerOp int64) {
	privtest.Require(b)
	rr, bulk := listen(b, echo100), listen(b, discard)
	watched := rr.port // the server that plays IMDS in attached-imds
	if cmd == "bulk" {
		watched = bulk.port
	}
	modes := []struct {
		name  string
		port  uint16 // 0: no agent
		w     *worker
		agent *Agent
		spent time.Duration
	}{{name: "detached"}, {name: "detached-again"}, {name: "attached", port: 1}, {name: "attached-imds", port: watched}}
	for i := range modes {
		m := &modes[i]
		cg := cgroup.ForTest(b)
		if m.port != 0 {
			m.agent = attachForBench(b, cg, m.port)
			drain(b, m.agent)
		}
		m.w = startWorker(b, cg, rr.addr, bulk.addr)
	}
	b.SetBytes(bytesPerOp)
	roundRatios := make([][]float64, len(modes)) // per mode, detached/mode time of each round
	b.ResetTimer()
	for r := range benchRounds {
		n := b.N/benchRounds + min(1, max(0, b.N%benchRounds-r))
		if n == 0 {
			continue
		}
		took := make([]time.Duration, len(modes))
		for k := range modes {
			i := (r + k) % len(modes) // each mode goes first in turn
			m := &modes[i]
			start := time.Now()
			m.w.do(b, cmd, n)
			took[i] = time.Since(start)
			m.spent += took[i]
		}
		for i := range modes {
			roundRatios[i] = append(roundRatios[i], float64(took[0])/float64(took[i]))
		}
	}
	b.StopTimer()
	for i, m := range modes {
		b.ReportMetric(float64(m.spent.Nanoseconds())/float64(b.N), "ns/op-"+m.name)
		if i > 0 {
			// The median of the rounds' ratios: a stall of the machine (this one's timers fire
			// up to a second late now and then) spoils a round or two, not the result.
			b.ReportMetric(benchstat.Median(roundRatios[i]), "ratio-"+m.name)
		}
		if m.agent != nil {
			b.ReportMetric(float64(m.agent.Lost()), "lost-"+m.name)
		}
	}
}

// BenchmarkLoadAttach measures the time from nothing to attached: Load (feature probes,
// verification of all programs) plus Attach to a cgroup. ms-median is the median of the
// iterations, which a stall of the machine does not move as it moves the mean (ns/op).
func BenchmarkLoadAttach(b *testing.B) {
	privtest.Require(b)
	cg := cgroup.ForTest(b)
	var each []float64
	for b.Loop() {
		start := time.Now()
		agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), Port: 1})
		if err != nil {
			b.Fatal(err)
		}
		if err := agent.Attach(cg.Path()); err != nil {
			b.Fatal(err)
		}
		each = append(each, float64(time.Since(start).Microseconds())/1000)
		b.StopTimer()
		agent.Close()
		// The kernel frees detached programs and maps after RCU grace periods and flushes
		// their memory lazily, work that would land on the next iteration; a real agent
		// starts on a host where nothing was just unloaded.
		time.Sleep(time.Second)
		b.StartTimer()
	}
	b.ReportMetric(benchstat.Median(each), "ms-median")
}

func attachForBench(b *testing.B, cg *cgroup.Group, port uint16) *Agent {
	agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), Port: port})
	if err != nil {
		b.Fatal(err)
	}
	if err := agent.Attach(cg.Path()); err != nil {
		agent.Close()
		b.Fatal(err)
	}
	return agent
}

// drain consumes events as the auditor would, until the benchmark ends.
func drain(b *testing.B, agent *Agent) {
	b.Cleanup(consume(agent))
}

// consume reads agent's events as the auditor would until stop is called, which then closes
// the agent.
func consume(agent *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := agent.Next(ctx); err != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		agent.Close()
	}
}

type server struct {
	addr string
	port uint16
}

func listen(b *testing.B, serve func(net.Conn)) server {
	return listenOn(b, "tcp4", "127.0.0.1:0", serve)
}

func listenOn(b *testing.B, network, addr string, serve func(net.Conn)) server {
	ln, err := net.Listen(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return server{addr: ln.Addr().String(), port: uint16(ln.Addr().(*net.TCPAddr).Port)}
}

// echo100 answers every 100-byte request with 100 bytes that start like an HTTP answer.
func echo100(c net.Conn) {
	req, resp := make([]byte, 100), make([]byte, 100)
	copy(resp, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

func discard(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// worker is a child process in the test cgroup that generates the load on command.
type worker struct {
	in  io.Writer
	out *bufio.Reader
}

func startWorker(b *testing.B, cg *cgroup.Group, rrAddr, bulkAddr string, dialAddrs ...string) *worker {
	cmd := child(append([]string{"worker", rrAddr, bulkAddr}, dialAddrs...)...)
	in, out := startPiped(b, cmd, cg.Start)
	w := &worker{in: in, out: out}
	w.do(b, "rr", 1) // connections up before the timer starts
	return w
}

func (w *worker) do(b *testing.B, cmd string, n int) {
	if _, err := fmt.Fprintln(w.in, cmd, strconv.Itoa(n)); err != nil {
		b.Fatal(err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil || line != "ok\n" {
		b.Fatalf("worker %s %d: %q, %v", cmd, n, line, err)
	}
}
