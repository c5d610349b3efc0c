package vmcheck_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"

	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// helperEnv turns the test binary into a loopback client (value "loopback", address in
// helperAddrEnv), started inside a test cgroup, so the check needs no tool from the machine.
const (
	helperEnv     = "IMDSV2_VMCHECK_HELPER"
	helperAddrEnv = "IMDSV2_VMCHECK_ADDR"
)

// runHelper is the child side: connect, send "ping", expect "pong". Its exit status is the result.
func runHelper(mode string) int {
	if mode != "loopback" {
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 2
	}
	c, err := net.DialTimeout("tcp", os.Getenv(helperAddrEnv), 60*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // generous: the VM is emulated (TCG)
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("ping")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		fmt.Fprintf(os.Stderr, "answer %q, %v\n", buf, err)
		return 1
	}
	return 0
}

// TestBPFFeatures probes the program and map types the auditor's design relies on (see
// DESIGN.md: cgroup sock_addr and skb hooks, tracepoints, TC, ring buffer). In the VM it also
// requires kernel BTF, which the Debian cloud kernel has.
func TestBPFFeatures(t *testing.T) {
	privtest.Require(t)
	for _, pt := range []ebpf.ProgramType{ebpf.CGroupSockAddr, ebpf.CGroupSKB, ebpf.TracePoint,
		ebpf.RawTracepoint, ebpf.SchedCLS} {
		if err := features.HaveProgramType(pt); err != nil {
			t.Errorf("program type %s: %v", pt, err)
		}
	}
	for _, mt := range []ebpf.MapType{ebpf.RingBuf, ebpf.LRUHash, ebpf.PerCPUArray} {
		if err := features.HaveMapType(mt); err != nil {
			t.Errorf("map type %s: %v", mt, err)
		}
	}
	if inVM() {
		if _, err := btf.LoadKernelSpec(); err != nil {
			t.Errorf("kernel BTF: %v", err)
		}
	}
}

// TestCgroupSKBAllow attaches a counting cgroup_skb egress program that always allows to a cgroup
// made for this test (never the root cgroup), runs a loopback client inside that cgroup and checks
// that the traffic went through and that the program saw it.
func TestCgroupSKBAllow(t *testing.T) {
	privtest.Require(t)
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatalf("create counter map: %v", err)
	}
	defer counter.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.CGroupSKB,
		License: "GPL",
		Instructions: asm.Instructions{
			// counter[0] += 1, then allow; allow also when the lookup fails.
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "allow"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("allow"),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load cgroup_skb program: %v", err)
	}
	defer prog.Close()

	g := cgroup.ForTest(t)
	l, err := link.AttachCgroup(link.CgroupOptions{Path: g.Path(), Attach: ebpf.AttachCGroupInetEgress, Program: prog})
	if err != nil {
		t.Fatalf("attach to %s: %v", g.Path(), err)
	}
	defer l.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- servePong(ln) }()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=loopback", helperAddrEnv+"="+ln.Addr().String())
	out, err := combinedRun(g, cmd)
	if err != nil {
		t.Fatalf("loopback client inside the cgroup: %v\n%s", err, out)
	}
	if err := <-served; err != nil {
		t.Fatalf("server side: %v", err)
	}
	var packets uint64
	if err := counter.Lookup(uint32(0), &packets); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	if packets == 0 {
		t.Fatal("the attached program saw no packet from the client in its cgroup")
	}
	t.Logf("program counted %d egress packets of the client", packets)

	// BPF_PROG_TEST_RUN on a minimal packet: the verdict must be allow (1).
	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	if ret != 1 {
		t.Fatalf("verdict %d, want 1 (allow)", ret)
	}
}

func servePong(ln net.Listener) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // generous: the VM is emulated (TCG)
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping" {
		return errors.New("unexpected request " + string(buf))
	}
	_, err = c.Write([]byte("pong"))
	return err
}

type outBuf struct{ b []byte }

func (o *outBuf) Write(p []byte) (int, error) { o.b = append(o.b, p...); return len(p), nil }

func combinedRun(g *cgroup.Group, cmd *exec.Cmd) (string, error) {
	var out outBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	err := g.Run(cmd)
	return string(out.b), err
}
