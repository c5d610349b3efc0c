package bpf

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.IPv4 != DefaultIPv4 || o.IPv6 != DefaultIPv6 || o.Port != 80 || o.RingBufferSize != 4<<20 ||
		o.SendCapture != MaxSendCapture || o.RecvCapture != 64 {
		t.Fatalf("defaults = %+v", o)
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{IPv4: netip.MustParseAddr("::1")}, "IPv4 ::1 is not an IPv4 address"},
		{Options{IPv6: netip.MustParseAddr("10.0.0.1")}, "is not a plain IPv6 address"},
		{Options{IPv6: netip.MustParseAddr("::ffff:10.0.0.1")}, "is not a plain IPv6 address"},
		{Options{RingBufferSize: 3 << 20}, "RingBufferSize 3145728 is not a power of two"},
		{Options{RingBufferSize: 1024}, "RingBufferSize 1024"},
		{Options{SendCapture: MaxSendCapture + 1}, "SendCapture 65537 is outside 1..65536"},
		{Options{SendCapture: -1}, "SendCapture -1"},
		{Options{RecvCapture: 257}, "RecvCapture 257 is outside 1..256"},
		{Options{NoExec: true, RequireExec: true}, "contradict"},
	}
	for _, tt := range tests {
		_, err := tt.opts.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("withDefaults(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
}

func TestFeaturesString(t *testing.T) {
	f := Features{Kernel: "6.1.0", Exec: false, ExecSkipped: "no kernel BTF", AttachMode: "bpf_link",
		Programs: []string{"cgroup/connect4", "cgroup/connect6"}, RingBufferSize: 4 << 20,
		Cgroup: "/run/imdsv2/cgroup2", CgroupMounted: true, Endpoint: "169.254.169.254:80",
		SendCapture: 2048, SendCaptureLimited: "no kernel BTF"}
	want := `kernel:          6.1.0
endpoint:        169.254.169.254:80
btf:             no
exec tracing:    no (no kernel BTF)
cgroup:          /run/imdsv2/cgroup2 (cgroup2 mounted by the agent)
attach mode:     bpf_link
programs:        cgroup/connect4, cgroup/connect6
ring buffer:     4096 KiB
send capture:    2048 bytes per packet (no kernel BTF)
`
	if got := f.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}
