//go:build linux && (386 || amd64 || arm64)

package bpf

import (
	"net/netip"
	"testing"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// TestCDefaultsMatch compares the defaults written in bpf/imds.c (imds_ip4,
// imds_ip6, imds_port), which C cannot take from Go, with internal/imdsfacts.
// The loader always overwrites them, but a program loaded without it, or a
// reader of the C, sees these. Reading the compiled object needs no root.
func TestCDefaultsMatch(t *testing.T) {
	spec, err := loadImds()
	if err != nil {
		t.Fatal(err)
	}
	var ip4 [4]byte
	var ip6 [16]byte
	var port uint16
	for name, out := range map[string]any{imdsVarImdsIp4: &ip4, imdsVarImdsIp6: &ip6, imdsVarImdsPort: &port} {
		v, ok := spec.Variables[name]
		if !ok {
			t.Fatalf("the object has no variable %s", name)
		}
		if err := v.Get(out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got := netip.AddrFrom4(ip4); got != imdsfacts.AddrV4 {
		t.Errorf("imds.c imds_ip4 = %s, imdsfacts.IPv4 = %s", got, imdsfacts.AddrV4)
	}
	if got := netip.AddrFrom16(ip6); got != imdsfacts.AddrV6 {
		t.Errorf("imds.c imds_ip6 = %s, imdsfacts.IPv6 = %s", got, imdsfacts.AddrV6)
	}
	if port != imdsfacts.Port {
		t.Errorf("imds.c imds_port = %d, imdsfacts.Port = %d", port, imdsfacts.Port)
	}
}
