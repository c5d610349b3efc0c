//go:build linux

package bpf

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/privtest"
)

// TestDNATToIMDSReported: a socket connected to another address whose packets an OUTPUT DNAT
// rule sends to IMDS (a Service whose endpoint is IMDS) is seen by its packets' destination, as
// a connection whose connect was not seen. The egress filter on the socket's own peer alone
// missed it. In a network namespace of its own, with an nft rule 127.0.0.2:other -> the fake
// IMDS on 127.0.0.1.
func TestDNATToIMDSReported(t *testing.T) {
	privtest.Require(t)
	nft, err := exec.LookPath("nft")
	if err != nil {
		privtest.Unavailable(t, "nft not found (Debian package nftables): "+err.Error())
	}
	nsPath := netnsHolder(t)
	inNS := func(args ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"--net=" + nsPath, "--"}, args...)...)
	}

	ln := listenIn(t, nsPath, "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "i-0123456789abcdef0 "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	other := 1024 + (port+1)%60000 // another port: the rule rewrites both address and port

	rules := fmt.Sprintf(`table ip imdsv2test {
	chain output {
		type nat hook output priority -100;
		ip daddr 127.0.0.2 tcp dport %d dnat to 127.0.0.1:%d
	}
}
`, other, port)
	for _, cmd := range []*exec.Cmd{inNS("ip", "link", "set", "lo", "up"), inNS(nft, "-f", "-")} {
		if cmd.Args[len(cmd.Args)-1] == "-" {
			cmd.Stdin = strings.NewReader(rules)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", cmd.Args, err, out)
		}
	}

	cg := cgroup.ForTest(t)
	agent, err := Load(Options{IPv4: netip.MustParseAddr("127.0.0.1"), IPv6: netip.MustParseAddr("::1"), Port: uint16(port)})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Attach(cg.Path()); err != nil {
		agent.Close()
		t.Fatal(err)
	}
	c := collect(t, agent)

	request := func(addr, marker string) {
		t.Helper()
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s; printf 'GET /latest/meta-data/%s HTTP/1.0\r\n\r\n' >&3; read -r line <&3; echo "$line"`,
			addr, marker)
		cmd := inNS("/bin/bash", "-c", script)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cg.Run(cmd); err != nil || !strings.Contains(out.String(), "200") {
			t.Fatalf("request to %s: %v, output %q", addr, err, out.String())
		}
	}
	direct := fmt.Sprintf("direct-%d", os.Getpid())
	natted := fmt.Sprintf("natted-%d", os.Getpid())
	request("127.0.0.1/"+strconv.Itoa(port), direct)
	request("127.0.0.2/"+strconv.Itoa(other), natted)

	evs := c.waitFor(t, "both requests", func(evs []audit.Event) bool {
		return count(audit.EventSend, hasData(direct), 1)(evs) && count(audit.EventSend, hasData(natted), 1)(evs)
	})
	if d := filter(evs, audit.EventSend, hasData(direct))[0]; d.NoConnect || d.PID == 0 {
		t.Errorf("direct request: NoConnect %v pid %d; want its connect seen", d.NoConnect, d.PID)
	}
	n := filter(evs, audit.EventSend, hasData(natted))[0]
	if !n.NoConnect || n.Remote != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)) {
		t.Errorf("DNATed request: NoConnect %v remote %v; want a connect not seen, to %v:%d\n%s",
			n.NoConnect, n.Remote, "127.0.0.1", port, dump(evs))
	}
}

// listenIn listens on addr in the network namespace at nsPath (the listening socket stays
// there).
func listenIn(t *testing.T, nsPath, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ln
}
