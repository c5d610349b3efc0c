//go:build linux && (amd64 || arm64)

package bpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// Packet builders for BPF_PROG_TEST_RUN: the kernel wants an Ethernet header first and hands
// the cgroup_skb program the packet from the IP header on, as on a real socket.

func eth(proto uint16, l3 []byte) []byte {
	b := make([]byte, 14, 14+len(l3))
	binary.BigEndian.PutUint16(b[12:], proto)
	return append(b, l3...)
}

func tcp(sport, dport uint16, seq uint32, doffWords byte, payload []byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = doffWords << 4
	b[13] = 0x18 // PSH, ACK
	return append(b, payload...)
}

func ipv4(src, dst string, proto, ttl byte, l4 []byte) []byte {
	b := make([]byte, 20)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	b[8], b[9] = ttl, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ipv6(src, dst string, next, hop byte, l4 []byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6], b[7] = next, hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

const (
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
	ethARP  = 0x0806
	local4  = "10.0.0.5"
	local6  = "2001:db8::5"
)

var (
	httpReq  = []byte("GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
	httpResp = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nServer: EC2ws\r\n\r\nmyrole")
)

func v4req(payload []byte) []byte {
	return eth(ethIPv4, ipv4(local4, "169.254.169.254", 6, 64, tcp(40000, 80, 1000, 5, payload)))
}

func with(b []byte, f func([]byte)) []byte {
	b = bytes.Clone(b)
	f(b)
	return b
}

// TestProgramsAllowEveryPacket runs the cgroup_skb programs on hand-made packets with
// BPF_PROG_TEST_RUN: every packet, well-formed or not, gets verdict 1 (allow) from both the
// egress and the ingress program, and exactly the IMDS segments with payload are reported.
//
// The kernel's test harness refuses (EINVAL) some malformed inputs before any program runs, and
// which ones depends on the kernel: "bpf: reject short IPv4/IPv6 inputs in
// bpf_prog_test_run_skb" reached 5.10 in 5.10.259, so 5.10.223 runs inputs that 5.10.262
// refuses. For an input that is not a well-formed IMDS segment, either outcome passes (ran and
// allowed, or refused); a program that runs and returns anything but allow always fails.
func TestProgramsAllowEveryPacket(t *testing.T) {
	privtest.Require(t)
	agent, err := Load(Options{}) // the real endpoint: nothing leaves the machine in a test run
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	egress, ingress := agent.coll.Programs[imdsProgImdsEgress], agent.coll.Programs[imdsProgImdsIngress]

	big := bytes.Repeat([]byte("x"), 3000)
	v4resp := eth(ethIPv4, ipv4("169.254.169.254", local4, 6, 1, tcp(80, 40000, 5000, 5, httpResp)))
	hopByHop := append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp(40000, 80, 77, 5, httpReq)...)
	tests := []struct {
		name string
		pkt  []byte
		want *audit.Event // from egress, or from ingress when Kind is EventRecv; nil: no event
	}{
		{"v4 request", v4req(httpReq), &audit.Event{Kind: audit.EventSend, Seq: 1000, TTL: 64, Data: httpReq}},
		{"v4 answer", v4resp, &audit.Event{Kind: audit.EventRecv, Seq: 5000, TTL: 1, Data: httpResp[:64]}},
		{"v4 trailing bytes after tot_len", append(v4req(httpReq), 0, 0, 0, 0),
			&audit.Event{Kind: audit.EventSend, Seq: 1000, TTL: 64, Data: httpReq}},
		{"v4 other address", eth(ethIPv4, ipv4(local4, "10.9.9.9", 6, 64, tcp(40000, 80, 1, 5, httpReq))), nil},
		{"v4 other port", eth(ethIPv4, ipv4(local4, "169.254.169.254", 6, 64, tcp(40000, 8080, 1, 5, httpReq))), nil},
		{"v4 UDP", eth(ethIPv4, ipv4(local4, "169.254.169.254", 17, 64, tcp(40000, 80, 1, 5, httpReq))), nil},
		{"v4 no payload", v4req(nil), nil},
		{"v4 truncated TCP header", v4req(httpReq)[:14+20+8], nil},
		{"v4 IHL 3", with(v4req(httpReq), func(b []byte) { b[14] = 0x43 }), nil},
		{"v4 IHL beyond packet", with(v4req(nil), func(b []byte) { b[14] = 0x4f }), nil},
		{"v4 tot_len inside header", with(v4req(httpReq), func(b []byte) { binary.BigEndian.PutUint16(b[16:], 8) }), nil},
		{"v4 TCP doff 2", with(v4req(httpReq), func(b []byte) { b[14+20+12] = 2 << 4 }), nil},
		{"v4 TCP doff beyond packet", with(v4req([]byte("abc")), func(b []byte) { b[14+20+12] = 15 << 4 }), nil},
		{"v4 later fragment", with(v4req(httpReq), func(b []byte) { b[14+7] = 1 }), nil},
		{"v4 version 6 in v4 frame", with(v4req(httpReq), func(b []byte) { b[14] = 0x65 }), nil},
		{"v6 request", eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 6, 64, tcp(40000, 80, 42, 5, httpReq))),
			&audit.Event{Kind: audit.EventSend, Seq: 42, TTL: 64, Data: httpReq}},
		{"v6 answer", eth(ethIPv6, ipv6("fd00:ec2::254", local6, 6, 2, tcp(80, 40000, 43, 5, httpResp))),
			&audit.Event{Kind: audit.EventRecv, Seq: 43, TTL: 2, Data: httpResp[:64]}},
		{"v6 hop-by-hop header", eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 0, 64, hopByHop)),
			&audit.Event{Kind: audit.EventSend, Seq: 77, TTL: 64, Data: httpReq}},
		{"v6 other address", eth(ethIPv6, ipv6(local6, "fd00:ec2::253", 6, 64, tcp(40000, 80, 1, 5, httpReq))), nil},
		{"v6 truncated TCP header", eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 6, 64, tcp(40000, 80, 1, 5, nil)[:10])), nil},
		{"v6 ext header chain too long", eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 60, 64,
			append(bytes.Repeat([]byte{60, 0, 0, 0, 0, 0, 0, 0}, 5), tcp(40000, 80, 1, 5, httpReq)...))), nil},
		{"ARP", eth(ethARP, make([]byte, 28)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, refused := runBothMayRefuse(t, agent, egress, ingress, tt.pkt)
			if refused != "" && tt.want != nil {
				t.Fatalf("the kernel refused to run a well-formed IMDS segment: %s", refused)
			}
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("events for a packet that is not an IMDS segment:\n%s", dump(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d events, want 1:\n%s", len(got), dump(got))
			}
			e := got[0]
			if e.Kind != tt.want.Kind || e.Seq != tt.want.Seq || e.TTL != tt.want.TTL || !bytes.Equal(e.Data, tt.want.Data) ||
				e.PID != 0 || e.Cookie == 0 || e.Remote.Port() != 80 || e.Local.Port() != 40000 {
				t.Fatalf("event = %+v\nwant kind %v seq %d ttl %d data %q, pid 0 (connect not seen), ports 40000->80",
					e, tt.want.Kind, tt.want.Seq, tt.want.TTL, tt.want.Data)
			}
			if int(e.DataLen) < len(e.Data) || (e.Kind == audit.EventSend && int(e.DataLen) != len(e.Data)) {
				t.Fatalf("DataLen %d for %d captured bytes", e.DataLen, len(e.Data))
			}
		})
	}

	t.Run("packet over 2 KiB in records", func(t *testing.T) {
		// The test harness takes packets of a page at most: 3000 bytes make two records.
		got := runBoth(t, agent, egress, ingress, v4req(big))
		want := []audit.Event{{Seq: 1000, Data: big[:2048], DataLen: 2048}, {Seq: 3048, Data: big[2048:], DataLen: 952}}
		checkRecords(t, got, want)
	})

	t.Run("capture limit below the packet", func(t *testing.T) {
		small, err := Load(Options{SendCapture: 2100})
		if err != nil {
			t.Fatal(err)
		}
		defer small.Close()
		got := runBoth(t, small, small.coll.Programs[imdsProgImdsEgress], small.coll.Programs[imdsProgImdsIngress], v4req(big))
		// The last record stands for the rest of the packet: 952 bytes, 52 of them captured.
		want := []audit.Event{{Seq: 1000, Data: big[:2048], DataLen: 2048}, {Seq: 3048, Data: big[2048:2100], DataLen: 952}}
		checkRecords(t, got, want)
	})

	t.Run("garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 2000
		refusals := 0
		for i := range n {
			var pkt []byte
			// The harness wants a whole IP header (see "short inputs" below): at least 40 bytes.
			if i%2 == 0 { // random bytes behind a random IP ethertype
				pkt = make([]byte, 14+40+rng.IntN(300))
				for j := range pkt {
					pkt[j] = byte(rng.Uint32())
				}
				binary.BigEndian.PutUint16(pkt[12:], []uint16{ethIPv4, ethIPv6}[rng.IntN(2)])
			} else { // a valid IMDS request with a few bytes changed and maybe cut short
				pkt = v4req(httpReq)
				if i%4 == 1 {
					pkt = eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 6, 64, tcp(40000, 80, 42, 5, httpReq)))
				}
				for range 1 + rng.IntN(4) {
					pkt[14+rng.IntN(60)] = byte(rng.Uint32())
				}
				pkt = pkt[:14+40+rng.IntN(len(pkt)-14-40+1)]
			}
			if _, refused := runBothMayRefuse(t, agent, egress, ingress, pkt); refused != "" {
				refusals++
			}
		}
		// Every one has a whole IP header behind an IP ethertype: most must run.
		t.Logf("the kernel refused %d of %d inputs", refusals, n)
		if refusals > n/2 {
			t.Fatalf("the kernel refused %d of %d inputs: too few ran to prove anything", refusals, n)
		}
	})

	t.Run("short inputs", func(t *testing.T) {
		// The kernel's test harness refuses (EINVAL) input shorter than an Ethernet header and,
		// from 5.10.259 and 6.x on, an IP packet without a whole IP header, before any program
		// runs; a real socket's skb always has its IP header. The programs still check every
		// length themselves, so where the kernel does run such an input, they must allow it.
		for name, pkt := range map[string][]byte{
			"zero-length":            nil,
			"13 bytes":               make([]byte, 13),
			"ethernet header only":   eth(ethIPv4, nil),
			"v4 truncated IP header": v4req(httpReq)[:14+10],
			"v6 truncated IP header": eth(ethIPv6, ipv6(local6, "fd00:ec2::254", 6, 64, nil))[:14+30],
		} {
			if got, refused := runBothMayRefuse(t, agent, egress, ingress, pkt); len(got) != 0 {
				t.Errorf("%s: events for a packet that is not an IMDS segment:\n%s", name, dump(got))
			} else if refused == "" {
				t.Logf("%s: this kernel ran it, and both programs allowed it", name)
			}
		}
	})

	t.Run("tracepoints return 0", func(t *testing.T) {
		// The kernel cannot test-run BTF tracepoints (tp_btf), and ignores what they return;
		// still, every path of them ends in "r0 = 0; exit".
		spec, err := loadImds()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{imdsProgImdsExec, imdsProgImdsExit} {
			if err := exitsReturnZero(spec.Programs[name].Instructions); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	if lost := agent.Lost(); lost != 0 {
		t.Errorf("lost %d records", lost)
	}
}

// checkRecords compares the send events of one packet with want (sequence number, data and
// DataLen; every event from the egress program, ports 40000->80).
func checkRecords(t *testing.T, got, want []audit.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n%s", len(got), len(want), dump(got))
	}
	for i, e := range got {
		w := want[i]
		if e.Kind != audit.EventSend || e.Seq != w.Seq || e.DataLen != w.DataLen || !bytes.Equal(e.Data, w.Data) ||
			e.Cookie == 0 || e.Local.Port() != 40000 || e.Remote.Port() != 80 {
			t.Errorf("event %d: kind %v seq %d data_len %d, %d bytes captured; want send, seq %d, data_len %d, %d bytes",
				i, e.Kind, e.Seq, e.DataLen, len(e.Data), w.Seq, w.DataLen, len(w.Data))
		}
	}
}

// runBoth runs a well-formed packet through the egress and the ingress program, checks both
// verdicts are "allow" and returns the events they emitted.
func runBoth(t *testing.T, a *Agent, egress, ingress *ebpf.Program, pkt []byte) []audit.Event {
	t.Helper()
	evs, refused := runBothMayRefuse(t, a, egress, ingress, pkt)
	if refused != "" {
		t.Fatalf("the kernel refused to run a well-formed packet: %s", refused)
	}
	return evs
}

// runBothMayRefuse is runBoth for a packet the kernel's test harness may refuse (EINVAL, before
// any program runs: see TestProgramsAllowEveryPacket): refused says so; any other error, or a
// verdict other than "allow" from a program that ran, fails the test.
func runBothMayRefuse(t *testing.T, a *Agent, egress, ingress *ebpf.Program, pkt []byte) (evs []audit.Event, refused string) {
	t.Helper()
	for _, p := range []*ebpf.Program{egress, ingress} {
		ret, err := p.Run(&ebpf.RunOptions{Data: pkt})
		if errors.Is(err, unix.EINVAL) {
			refused += fmt.Sprintf("%v refused %x: %v; ", p, pkt, err)
			continue
		}
		if err != nil {
			t.Fatalf("test run of %v on %x: %v", p, pkt, err)
		}
		if ret != 1 {
			t.Fatalf("%v returned %d, want 1 (allow), for packet %x", p, ret, pkt)
		}
	}
	// Records are committed before Run returns: whatever is there now is all there is.
	for a.reader.AvailableBytes() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		ev, err := a.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs, refused
}

// TestProgramsWithoutKernelBTF: the packet programs loaded on kernels without BTF of their own
// report one record of at most 2 KiB per packet (its DataLen the whole payload, so the rest
// counts as missing) and allow every packet too.
func TestProgramsWithoutKernelBTF(t *testing.T) {
	privtest.Require(t)
	agent, err := Load(Options{singleRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if f := agent.Features(); f.SendCapture != 2048 || f.SendCaptureLimited == "" {
		t.Errorf("features: send capture %d %q, want 2048 and why", f.SendCapture, f.SendCaptureLimited)
	}
	egress, ingress := agent.coll.Programs[imdsProgImdsEgress], agent.coll.Programs[imdsProgImdsIngress]
	big := bytes.Repeat([]byte("x"), 3000)
	checkRecords(t, runBoth(t, agent, egress, ingress, v4req(big)), []audit.Event{{Seq: 1000, Data: big[:2048], DataLen: 3000}})
	checkRecords(t, runBoth(t, agent, egress, ingress, v4req(httpReq)), []audit.Event{{Seq: 1000, Data: httpReq, DataLen: uint32(len(httpReq))}})
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		pkt := v4req(httpReq)
		for range 1 + rng.IntN(4) {
			pkt[14+rng.IntN(60)] = byte(rng.Uint32())
		}
		runBothMayRefuse(t, agent, egress, ingress, pkt) // fails the test unless each verdict is "allow"
	}
}

// exitsReturnZero checks that every exit of insns comes right after "r0 = 0" and that no jump
// lands on an exit, skipping that assignment (bpf-to-bpf calls aside: the programs have none).
func exitsReturnZero(insns asm.Instructions) error {
	pos := make([]int, len(insns)) // in raw 8-byte instruction slots, as jump offsets count
	exits := map[int]bool{}
	raw := 0
	for i, ins := range insns {
		pos[i] = raw
		raw += int(ins.Size() / asm.InstructionSize)
		if ins.OpCode.JumpOp() == asm.Exit {
			exits[pos[i]] = true
			if prev := insns[max(i-1, 0)]; i == 0 || prev.OpCode != asm.Mov.Op(asm.ImmSource) || prev.Dst != asm.R0 || prev.Constant != 0 {
				return fmt.Errorf("exit %d follows %v, not r0 = 0", i, prev)
			}
		}
	}
	for i, ins := range insns {
		if ins.OpCode.Class().IsJump() && ins.OpCode.JumpOp() != asm.Exit && ins.OpCode.JumpOp() != asm.Call {
			if to := pos[i] + 1 + int(ins.Offset); exits[to] {
				return fmt.Errorf("jump %d (%v) lands on the exit at slot %d", i, ins, to)
			}
		}
	}
	return nil
}

func TestExitsReturnZero(t *testing.T) {
	for _, tt := range []struct {
		name  string
		insns asm.Instructions
		ok    bool
	}{
		{"r0 = 0; exit", asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}, true},
		{"r0 = 1; exit", asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}, false},
		{"jump to the assignment", asm.Instructions{asm.JEq.Imm(asm.R1, 0, "out"), asm.Mov.Imm(asm.R1, 2),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return()}, true},
		{"jump over it onto the exit", asm.Instructions{asm.Mov.Imm(asm.R0, 7), asm.JEq.Imm(asm.R1, 0, "out"),
			asm.Mov.Imm(asm.R0, 0), asm.Return().WithSymbol("out")}, false},
		{"exit first", asm.Instructions{asm.Return()}, false},
	} {
		insns, err := resolveJumps(tt.insns)
		if err != nil {
			t.Fatal(err)
		}
		if err := exitsReturnZero(insns); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// resolveJumps turns symbolic jump targets into offsets, as loading does: it encodes insns
// and decodes them again.
func resolveJumps(insns asm.Instructions) (asm.Instructions, error) {
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, err
	}
	var out asm.Instructions
	for buf.Len() > 0 {
		var ins asm.Instruction
		if err := ins.Unmarshal(&buf, binary.LittleEndian, "linux"); err != nil {
			return nil, err
		}
		out = append(out, ins)
	}
	return out, nil
}
