//go:build linux && (amd64 || arm64)

package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/imdsv2/imdsv2/audit"
)

// TestHeaderMatchesC checks that the generated Go struct has the size of struct event in the
// object's BTF, and that imds.c's load-time defaults are the Go defaults.
func TestHeaderMatchesC(t *testing.T) {
	spec, err := loadImds()
	if err != nil {
		t.Fatal(err)
	}
	var ev *btf.Struct
	if err := spec.Types.TypeByName("event", &ev); err != nil {
		t.Fatal(err)
	}
	if int(ev.Size) != headerSize || headerSize != 136 {
		t.Fatalf("struct event is %d bytes in BTF, the Go header %d, want both 136", ev.Size, headerSize)
	}
	for name, want := range map[string]uint32{imdsVarSendCapture: uint32(MaxSendCapture), imdsVarRecvCapture: uint32(defaultRecvCapture)} {
		var got uint32
		if err := spec.Variables[name].Get(&got); err != nil || got != want {
			t.Errorf("%s default = %d, %v; want %d", name, got, err, want)
		}
	}
}

func encode(t *testing.T, h imdsEvent, data []byte) []byte {
	t.Helper()
	h.CapLen = uint16(len(data))
	b, err := binary.Append(nil, binary.NativeEndian, &h)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, data...)
}

func TestDecodeAndConvert(t *testing.T) {
	var comm [16]int8
	for i, c := range "curl" {
		comm[i] = int8(c)
	}
	boot := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	send := imdsEvent{Kind: uint8(imdsEventKindEVENT_SEND), TimeNs: 5e9, Cookie: 9,
		Id: imdsIdentity{Pid: 10, Tid: 11, Uid: 1000, Gid: 1000, CgroupId: 77, NetnsCookie: 4096, Comm: comm}, Seq: 123, DataLen: 4000, LocalPort: 40000, RemotePort: 80, Family: afInet, Ttl: 64,
		Flags:     uint8(imdsEventFlagFLAG_HOST_NETNS),
		LocalAddr: [16]uint8{10, 0, 0, 5}, RemoteAddr: [16]uint8{169, 254, 169, 254}}
	raw := encode(t, send, []byte("GET / HTTP/1.1\r\n"))
	rec, err := decodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := convert(rec, boot)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Event{Kind: audit.EventSend, Time: time.Unix(0, boot+5e9), Cookie: 9, PID: 10, TID: 11, UID: 1000, GID: 1000,
		CgroupID: 77, Comm: "curl", NetnsCookie: 4096, HostNetns: true, Local: netip.MustParseAddrPort("10.0.0.5:40000"),
		Remote: netip.MustParseAddrPort("169.254.169.254:80"), Seq: 123, Data: []byte("GET / HTTP/1.1\r\n"), DataLen: 4000, TTL: 64}
	if !ev.Time.Equal(want.Time) || ev.Kind != want.Kind || ev.Local != want.Local || ev.Remote != want.Remote ||
		!bytes.Equal(ev.Data, want.Data) || ev.Comm != want.Comm || ev.Seq != want.Seq || ev.DataLen != want.DataLen ||
		ev.PID != want.PID || ev.CgroupID != want.CgroupID || ev.TTL != want.TTL ||
		ev.NetnsCookie != want.NetnsCookie || ev.HostNetns != want.HostNetns || ev.TID != want.TID || ev.UID != want.UID {
		t.Fatalf("convert = %+v\nwant      %+v", ev, want)
	}
	raw[headerSize] = 'X' // Data must not alias the ring buffer
	if ev.Data[0] != 'G' {
		t.Fatal("event data aliases the raw record")
	}

	mapped := imdsEvent{Kind: uint8(imdsEventKindEVENT_CONNECT), Family: afInet6, RemotePort: 80,
		RemoteAddr: netip.MustParseAddr("::ffff:169.254.169.254").As16()}
	rec, _ = decodeRecord(encode(t, mapped, nil))
	if ev, _ := convert(rec, 0); ev.Remote != netip.MustParseAddrPort("169.254.169.254:80") || ev.Local.IsValid() {
		t.Errorf("mapped connect: Remote %v Local %v", ev.Remote, ev.Local)
	}

	exec := imdsEvent{Kind: uint8(imdsEventKindEVENT_EXEC), AuxLen: 14, DataLen: 30}
	rec, _ = decodeRecord(encode(t, exec, []byte("/usr/bin/curl\x00curl\x00-s\x00http://x\x00")))
	if ev, _ := convert(rec, 0); ev.Exe != "/usr/bin/curl" || !slices.Equal(ev.Args, []string{"curl", "-s", "http://x"}) {
		t.Errorf("exec: Exe %q Args %q", ev.Exe, ev.Args)
	}
}

// TestEveryFlagReachesTheEvent sets each flag imds.c defines, alone, and checks that convert
// carries it into exactly the audit.Event field that stands for it.
func TestEveryFlagReachesTheEvent(t *testing.T) {
	fields := func(ev audit.Event) []bool {
		return []bool{ev.NoConnect, ev.Truncated, ev.V4Mapped, ev.ArgvFault, ev.HostNetns}
	}
	flags := []imdsEventFlag{imdsEventFlagFLAG_NO_CONNECT, imdsEventFlagFLAG_TRUNCATED, imdsEventFlagFLAG_V4MAPPED,
		imdsEventFlagFLAG_ARGV_FAULT, imdsEventFlagFLAG_HOST_NETNS}
	var all imdsEventFlag
	for i, f := range flags {
		all |= f
		rec, err := decodeRecord(encode(t, imdsEvent{Kind: uint8(imdsEventKindEVENT_SEND), Flags: uint8(f)}, nil))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := convert(rec, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]bool, len(flags))
		want[i] = true
		if got := fields(ev); !slices.Equal(got, want) {
			t.Errorf("flag %#x: event fields %v, want %v", f, got, want)
		}
	}
	// Every bit imds.c defines is in the list: a new flag fails here until convert carries it.
	var enum *btf.Enum
	spec, err := loadImds()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Types.TypeByName("event_flag", &enum); err != nil {
		t.Fatal(err)
	}
	for _, v := range enum.Values {
		if imdsEventFlag(v.Value)&all == 0 {
			t.Errorf("imds.c flag %s (%#x) is not carried into audit.Event", v.Name, v.Value)
		}
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	good := encode(t, imdsEvent{Kind: 2}, []byte("abc"))
	tests := map[string]struct {
		raw  []byte
		want string
	}{
		"empty":          {nil, "short ring-buffer record"},
		"short header":   {good[:headerSize-1], "short ring-buffer record"},
		"cap_len beyond": {good[:headerSize+2], "says 3 captured bytes but has 2"},
	}
	for name, tt := range tests {
		if _, err := decodeRecord(tt.raw); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
	rec, err := decodeRecord(encode(t, imdsEvent{Kind: 200}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := convert(rec, 0); err == nil || !strings.Contains(err.Error(), "unknown kind 200") {
		t.Errorf("convert of kind 200 = %v", err)
	}
}

func TestSplitExec(t *testing.T) {
	tests := []struct {
		data string
		aux  int
		exe  string
		args []string
	}{
		{"/bin/sh\x00sh\x00-c\x00", 8, "/bin/sh", []string{"sh", "-c"}},
		{"/bin/sh\x00sh\x00-c\x00trunc", 8, "/bin/sh", []string{"sh", "-c", "trunc"}},
		{"\x00", 1, "", nil},
		{"/x", 99, "/x", nil},
		{"", 0, "", nil},
		{"/a\x00\x00\x00", 3, "/a", []string{"", ""}},
	}
	for _, tt := range tests {
		exe, args := splitExec([]byte(tt.data), tt.aux)
		if exe != tt.exe || !slices.Equal(args, tt.args) {
			t.Errorf("splitExec(%q, %d) = %q, %q; want %q, %q", tt.data, tt.aux, exe, args, tt.exe, tt.args)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, 120))
	f.Add(append(make([]byte, 120), "abc"...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := decodeRecord(raw)
		if err != nil {
			return
		}
		ev, err := convert(rec, 0)
		if err == nil && len(ev.Data) > int(rec.hdr.CapLen) {
			t.Fatalf("%d data bytes from cap_len %d", len(ev.Data), rec.hdr.CapLen)
		}
	})
}
