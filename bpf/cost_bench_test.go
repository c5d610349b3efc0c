//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/benchstat"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// BenchmarkCost measures what each program of the agent costs per run, with the kernel's own
// accounting (kernel.bpf_stats_enabled: run_time_ns and run_cnt of every program), against an
// empty program of the same type attached to the same hook of the same cgroup in the same run.
// The empty program's own figure is the accounting's clock reads and the hook's overhead (30 to
// 90 ns here), so only the agent's excess over it is the auditor's cost. Every paired run loads
// and attaches both anew, in alternating order (attachCostSet says why).
//
// The agent runs with its default endpoint (169.254.169.254, fd00:ec2::254, port 80: nothing
// here talks to it), so all the load is what a host's workloads are to it: traffic that is not
// IMDS's. Each paired run drives, inside the watched cgroup, 100-byte round trips and 64 KiB
// writes on loopback TCP, connects and closes over IPv4 and IPv6, and a loop of /bin/true; then
// the same /bin/true loop in a cgroup outside the watched one. Reported per program, as the
// median over the runs of each run's excess (agent minus empty program, ns per run):
//
//	egress, ingress            cgroup_skb, the packets of non-IMDS sockets (goal <= 10 ns)
//	connect4, connect6, release connects to and closes of non-IMDS addresses
//	exec-in, exit-in           sched_process_exec/exit of a process inside the watched cgroup
//	exec-out, exit-out         the same outside it (every other process of the host)
//	exec-root, exit-root       inside, with the agent as on the hierarchy's root (exec_all: no
//	                           cgroup test in exec; the tests never attach there). The host's
//	                           other processes are watched then too but taken out at the
//	                           outside figure, which overstates these a little
//
// The tracepoints run for every exec and exit on the host, other people's included; the inside
// figures separate this benchmark's own processes from them (ownCost). A table printed at the
// end shows every program's median ns per run and the spread of its excess over the runs, the
// noise beside the figure. ratio-rr and ratio-bulk are, as in BenchmarkLoopback*, the detached/attached time
// ratio of the same load in the same runs (1 = no cost), with a second agent (no exec programs)
// on a cgroup of its own.
//
// Run (root): go test -run '^$' -bench Cost ./bpf/   (make bench-cost)
func BenchmarkCost(b *testing.B) {
	privtest.Require(b)
	if err := Check(); err != nil {
		privtest.Unavailable(b, err.Error())
	}
	enableStats(b)

	rr, bulk := listen(b, echo100), listen(b, discard)
	v6 := listenOn(b, "tcp6", "[::1]:0", discard)
	watched, outside, ratioCg := cgroup.ForTest(b), cgroup.ForTest(b), cgroup.ForTest(b)

	loadForCost(b, ratioCg, Options{NoExec: true})

	load := startWorker(b, watched, rr.addr, bulk.addr, bulk.addr, v6.addr)
	detached := startWorker(b, outside, rr.addr, bulk.addr)
	attached := startWorker(b, ratioCg, rr.addr, bulk.addr)

	runs := max(b.N, costRuns)
	var (
		progs              []costProg // of the first run, for the order of the table
		res                = make(map[string]*costResult)
		ratioRR, ratioBulk []float64
		lost               uint64
	)
	b.ResetTimer()
	for run := range runs {
		set := attachCostSet(b, watched, run%2 == 0)
		if progs == nil {
			progs = set.progs
		}
		for _, p := range set.progs {
			if res[p.name] == nil {
				res[p.name] = &costResult{}
			}
		}
		net := measure(b, set.progs, func() {
			load.do(b, "rr", costRR)
			load.do(b, "bulk", costBulk)
			load.do(b, "dial", costDials)
		})
		in := measure(b, set.progs, func() { execLoop(b, watched, costExecs) })
		out := measure(b, set.progs, func() { execLoop(b, outside, costExecs) })
		// As on the root of the hierarchy, where the cgroup test is skipped.
		if err := set.agent.setExecAll(true); err != nil {
			b.Fatal(err)
		}
		root := measure(b, set.progs, func() { execLoop(b, watched, costExecs) })
		if err := set.agent.setExecAll(false); err != nil {
			b.Fatal(err)
		}
		lost += set.agent.Lost()
		set.close()
		for _, p := range set.progs {
			r := res[p.name]
			if !p.process {
				r.add("", net[p.name])
				continue
			}
			// Outside first: the inside figure takes the host's other processes out with it.
			o := r.add("-out", out[p.name])
			agentIn := ownCost(in[p.name].agent, costExecs, o)
			ser := r.addValues("-in", agentIn, in[p.name].ref.perRun())
			ser.count = append(ser.count, float64(in[p.name].agent.runs))
			// The host's other processes are watched too there: taking them out at the
			// outside figure overstates this one a little.
			agentRoot := ownCost(root[p.name].agent, costExecs, o)
			ser = r.addValues("-root", agentRoot, root[p.name].ref.perRun())
			ser.count = append(ser.count, float64(root[p.name].agent.runs))
		}
		// The attached/detached ratio of the same load, each going first in turn.
		for _, cmd := range []struct {
			name   string
			n      int
			ratios *[]float64
		}{{"rr", costRR, &ratioRR}, {"bulk", costBulk, &ratioBulk}} {
			ws := []*worker{detached, attached}
			took := make([]time.Duration, 2)
			for k := range ws {
				i := (run + k) % 2
				start := time.Now()
				ws[i].do(b, cmd.name, cmd.n)
				took[i] = time.Since(start)
			}
			*cmd.ratios = append(*cmd.ratios, float64(took[0])/float64(took[1]))
		}
	}
	b.StopTimer()

	var table strings.Builder
	fmt.Fprintf(&table, "%d paired runs; ns per run, median over runs; excess = agent - empty program of the same run\n", runs)
	fmt.Fprintf(&table, "%-10s %10s %10s %10s %18s %12s\n", "program", "agent", "empty", "excess", "excess min..max", "runs/span")
	for _, p := range progs {
		for _, suffix := range res[p.name].order {
			name := p.name + suffix
			s := res[p.name].series[suffix]
			ex := benchstat.PairedExcess(s.agent, s.ref)
			fmt.Fprintf(&table, "%-10s %10.0f %10.0f %10.1f %8.1f..%-8.1f %12.0f\n", name,
				benchstat.Median(s.agent), benchstat.Median(s.ref), ex.Median, ex.Min, ex.Max, benchstat.Median(s.count))
			b.ReportMetric(ex.Median, name+"-excess-ns/run")
		}
	}
	rrs, bulks := benchstat.SpreadOf(ratioRR), benchstat.SpreadOf(ratioBulk)
	b.ReportMetric(rrs.Median, "ratio-rr")
	b.ReportMetric(bulks.Median, "ratio-bulk")
	fmt.Fprintf(&table, "detached/attached time ratio, median [min..max]: rr %.3f [%.3f..%.3f], bulk %.3f [%.3f..%.3f]; records lost %d",
		rrs.Median, rrs.Min, rrs.Max, bulks.Median, bulks.Min, bulks.Max, lost)
	// Printed, not logged: the testing package keeps only the first lines of a benchmark's log.
	fmt.Println(table.String())
}

// The load of one paired run. Bounded: a run, loading the agent included, takes about a second
// here.
const (
	costRuns  = 9    // paired runs at least (b.N when larger)
	costRR    = 3000 // 100-byte round trips
	costBulk  = 200  // 64 KiB writes
	costDials = 300  // connects to 127.0.0.1 and to ::1, each closed at once
	costExecs = 100  // runs of /bin/true inside the watched cgroup, and as many outside
)

// costProg is one program of the agent and the empty program on the same hook.
type costProg struct {
	name       string // in metric names
	agent, ref *ebpf.Program
	process    bool // exec/exit tracepoint: measured inside and outside the watched cgroup
}

// costNames are the agent's programs as the metrics call them.
var costNames = map[string]string{
	imdsProgImdsEgress:   "egress",
	imdsProgImdsIngress:  "ingress",
	imdsProgImdsConnect4: "connect4",
	imdsProgImdsConnect6: "connect6",
	imdsProgImdsRelease:  "release",
	imdsProgImdsExec:     "exec",
	imdsProgImdsExit:     "exit",
}

// enableStats turns on the kernel's per-program accounting for the benchmark's duration and
// puts kernel.bpf_stats_enabled back as it was afterwards, also when the benchmark fails.
func enableStats(b *testing.B) {
	const sysctl = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		privtest.Unavailable(b, "kernel.bpf_stats_enabled (5.1+): "+err.Error())
	}
	if err := os.WriteFile(sysctl, []byte("1\n"), 0); err != nil {
		b.Fatalf("enable kernel.bpf_stats_enabled: %v", err)
	}
	b.Cleanup(func() {
		if err := os.WriteFile(sysctl, old, 0); err != nil {
			b.Errorf("restore kernel.bpf_stats_enabled to %q: %v", strings.TrimSpace(string(old)), err)
		}
	})
	// Another run of this benchmark that ends meanwhile puts the sysctl back to 0; a
	// BPF_ENABLE_STATS descriptor (5.8+) keeps the accounting on until it is closed.
	if c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err == nil {
		b.Cleanup(func() { c.Close() })
	}
}

// loadForCost loads an agent with opts, attaches it to cg and consumes its records as the
// auditor would, until the benchmark ends.
func loadForCost(b *testing.B, cg *cgroup.Group, opts Options) *Agent {
	agent, err := Load(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := agent.Attach(cg.Path()); err != nil {
		agent.Close()
		b.Fatal(err)
	}
	drain(b, agent)
	return agent
}

// costSet is the agent and, on each of its hooks, an empty program of the same type, loaded
// and attached for one paired run.
type costSet struct {
	agent *Agent
	progs []costProg
	close func() // detaches and unloads everything, the agent included; idempotent
}

// attachCostSet loads the agent (default options) and the empty programs and attaches them:
// the cgroup programs to cg, the tracepoints to their BTF tracepoints; the agent first when
// agentFirst, else the empty programs. Each paired run gets programs of its own because a
// program's readings move by up to tens of ns here with where the kernel happened to put its
// code, the same way for the program's whole life: loaded once, that would be one draw for
// all runs, which no median over them removes. Alternating the order keeps either from
// running first on every hook. The empty programs allow (cgroup) or return 0 (tracepoints),
// as the agent does.
func attachCostSet(b *testing.B, cg *cgroup.Group, agentFirst bool) *costSet {
	agent, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	stop := consume(agent)
	var closers []io.Closer
	var once sync.Once
	set := &costSet{agent: agent, close: func() {
		once.Do(func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i].Close()
			}
			stop()
		})
	}}
	b.Cleanup(set.close) // when the benchmark fails half-way
	attachAgent := func() {
		if err := agent.Attach(cg.Path()); err != nil {
			b.Fatal(err)
		}
	}
	if agentFirst {
		attachAgent()
	}
	for _, p := range programs {
		prog := agent.coll.Programs[p.name]
		if prog == nil {
			continue
		}
		spec := &ebpf.ProgramSpec{
			Name:         "imds_empty",
			Type:         prog.Type(),
			AttachType:   p.attach,
			License:      "Dual BSD/GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
		}
		if p.exec {
			tracing := spec.Copy()
			tracing.AttachType = ebpf.AttachTraceRawTp
			tracing.AttachTo = strings.TrimPrefix(p.label, "tp_btf/")
			tracing.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
			spec = tracing
		}
		ref, err := ebpf.NewProgram(spec)
		if err != nil {
			b.Fatalf("load the empty %s: %v", p.label, err)
		}
		closers = append(closers, ref)
		var l link.Link
		if p.exec {
			l, err = link.AttachTracing(link.TracingOptions{Program: ref})
		} else {
			l, err = link.AttachCgroup(link.CgroupOptions{Path: cg.Path(), Attach: p.attach, Program: ref})
		}
		if err != nil {
			b.Fatalf("attach the empty %s: %v", p.label, err)
		}
		closers = append(closers, l)
		set.progs = append(set.progs, costProg{name: costNames[p.name], agent: prog, ref: ref, process: p.exec})
	}
	if !agentFirst {
		attachAgent()
	}
	return set
}

// runStat is what the kernel accounted to one program over a span of time.
type runStat struct{ ns, runs uint64 }

func (s runStat) perRun() float64 {
	if s.runs == 0 {
		return 0
	}
	return float64(s.ns) / float64(s.runs)
}

// pairStat is a program's runStat and that of the empty program beside it.
type pairStat struct{ agent, ref runStat }

// measure runs load and returns, per program, what the kernel accounted to it meanwhile.
func measure(b *testing.B, progs []costProg, load func()) map[string]pairStat {
	read := func() map[string]pairStat {
		m := make(map[string]pairStat, len(progs))
		for _, p := range progs {
			m[p.name] = pairStat{readStat(b, p.agent), readStat(b, p.ref)}
		}
		return m
	}
	before := read()
	load()
	after := read()
	for name, a := range after {
		s := before[name]
		after[name] = pairStat{
			agent: runStat{a.agent.ns - s.agent.ns, a.agent.runs - s.agent.runs},
			ref:   runStat{a.ref.ns - s.ref.ns, a.ref.runs - s.ref.runs},
		}
	}
	return after
}

func readStat(b *testing.B, p *ebpf.Program) runStat {
	st, err := p.Stats()
	if err != nil {
		b.Fatalf("read the kernel's accounting of program %v: %v", p, err)
	}
	return runStat{ns: uint64(st.Runtime.Nanoseconds()), runs: st.RunCount}
}

// ownCost returns the ns per run of the own runs of a span in which a program ran total.runs
// times, own of them for this benchmark's processes and the rest for others' at
// othersPerRun ns each (measured in a span with none of its own). Without own runs, or with
// fewer runs than own (which the kernel's accounting does not give), it returns the span's
// mean.
func ownCost(total runStat, own uint64, othersPerRun float64) float64 {
	if own == 0 || total.runs < own {
		return total.perRun()
	}
	others := float64(total.runs-own) * othersPerRun
	return (float64(total.ns) - others) / float64(own)
}

// costResult holds one program's figures over the runs, per series ("" for a cgroup program,
// "-in" and "-out" for the process tracepoints).
type costResult struct {
	order  []string
	series map[string]*costSeries
}

type costSeries struct{ agent, ref, count []float64 }

// add records a span's stats in series suffix and returns the agent's ns per run.
func (r *costResult) add(suffix string, s pairStat) float64 {
	a := s.agent.perRun()
	ser := r.addValues(suffix, a, s.ref.perRun())
	ser.count = append(ser.count, float64(s.agent.runs))
	return a
}

func (r *costResult) addValues(suffix string, agent, ref float64) *costSeries {
	if r.series == nil {
		r.series = make(map[string]*costSeries)
	}
	s := r.series[suffix]
	if s == nil {
		s = &costSeries{}
		r.series[suffix] = s
		r.order = append(r.order, suffix)
	}
	s.agent = append(s.agent, agent)
	s.ref = append(s.ref, ref)
	return s
}

// execLoop runs /bin/true n times inside cg.
func execLoop(b *testing.B, cg *cgroup.Group, n int) {
	for range n {
		if err := cg.Run(exec.Command("/bin/true")); err != nil {
			b.Fatalf("/bin/true in %s: %v", cg.Path(), err)
		}
	}
}

func TestOwnCost(t *testing.T) {
	// 100 own runs at 20 us among 50 of other processes at 500 ns each.
	total := runStat{ns: 100*20000 + 50*500, runs: 150}
	if got := ownCost(total, 100, 500); got != 20000 {
		t.Errorf("ownCost = %v, want 20000", got)
	}
	if got := ownCost(runStat{ns: 3000, runs: 2}, 0, 500); got != 1500 {
		t.Errorf("ownCost without own runs = %v, want the mean 1500", got)
	}
	if got := ownCost(runStat{ns: 3000, runs: 2}, 5, 500); got != 1500 {
		t.Errorf("ownCost with fewer runs than own = %v, want the mean 1500", got)
	}
}
