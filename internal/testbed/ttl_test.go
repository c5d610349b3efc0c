package testbed_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// capture is a packet socket on one link of a bed namespace. It queues every packet from the
// moment it is opened; answers reads them afterwards, so no goroutine has to race the traffic.
type capture struct{ fd int }

func openCapture(t *testing.T, bed *testbed.Bed, ns testbed.NS, link string) *capture {
	t.Helper()
	c := &capture{fd: -1}
	require.NoError(t, bed.Do(ns, func() error {
		ifi, err := net.InterfaceByName(link) // netlink socket made on this thread: in ns
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		// SOCK_DGRAM: packets start at the network header.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		c.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}))
	t.Cleanup(func() { unix.Close(c.fd) })
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// answer is an HTTP response segment seen on the wire, with the TTL / hop limit it arrived with.
type answer struct {
	ttl    int
	status string
}

// answers drains the queued packets and returns the HTTP answers that came from src port 80.
func (c *capture) answers(t *testing.T, src netip.Addr) []answer {
	t.Helper()
	var out []answer
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		require.NoError(t, err)
		if a, ok := parseAnswer(buf[:n], src); ok {
			out = append(out, a)
		}
	}
}

// parseAnswer reads an IPv4 or IPv6 packet carrying TCP from src:80 whose payload starts an HTTP
// response. IPv6 extension headers are not expected in the bed and not handled.
func parseAnswer(p []byte, src netip.Addr) (answer, bool) {
	var ttl int
	var from netip.Addr
	var tcp []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_TCP:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < ihl {
			return answer{}, false
		}
		ttl, from, tcp = int(p[8]), netip.AddrFrom4([4]byte(p[12:16])), p[ihl:]
	case len(p) >= 40 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_TCP:
		ttl, from, tcp = int(p[7]), netip.AddrFrom16([16]byte(p[8:24])), p[40:]
	default:
		return answer{}, false
	}
	if from != src || len(tcp) < 20 || binary.BigEndian.Uint16(tcp[0:2]) != 80 {
		return answer{}, false
	}
	off := int(tcp[12]>>4) * 4
	if len(tcp) < off {
		return answer{}, false
	}
	payload := tcp[off:]
	if !bytes.HasPrefix(payload, []byte("HTTP/1.1 ")) {
		return answer{}, false
	}
	line, _, _ := bytes.Cut(payload, []byte("\r\n"))
	return answer{ttl: ttl, status: string(line)}, true
}

// TestTokenAnswerTTLOnTheWire reads, with a packet socket, the TTL (IPv6 hop limit) the token
// answer arrives with: in the instance it equals the configured hop limit (no router between),
// in the container it is one less (the instance routes). GET answers carry the default 64.
func TestTokenAnswerTTLOnTheWire(t *testing.T) {
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	require.NoError(t, bed.ServeIMDS(srv))

	for _, tc := range []struct {
		ns       testbed.NS
		link     string
		hopLimit int
		want     int
	}{
		{testbed.Instance, "to-imds", 1, 1},
		{testbed.Instance, "to-imds", 5, 5},
		{testbed.Container, "eth0", 5, 4},
		{testbed.Container, "eth0", 2, 1},
	} {
		srv.Update(func(c *imdstest.Config) { c.HopLimit = tc.hopLimit })
		client := bed.HTTPClient(tc.ns, answerTimeout)
		for _, src := range []netip.Addr{imdsfacts.AddrV4, imdsfacts.AddrV6} {
			host := "http://" + net.JoinHostPort(src.String(), "80")
			pc := openCapture(t, bed, tc.ns, tc.link)
			token := httpDo(t, client, http.MethodPut, host+"/latest/api/token",
				"X-aws-ec2-metadata-token-ttl-seconds", "60")
			got := pc.answers(t, src)
			require.NotEmpty(t, got, "%s, hop limit %d, %s: token answer not captured", tc.ns, tc.hopLimit, src)
			for _, a := range got {
				require.Equal(t, tc.want, a.ttl, "%s, hop limit %d, %s: TTL of %q", tc.ns, tc.hopLimit, src, a.status)
			}
			httpDo(t, client, http.MethodGet, host+"/latest/meta-data/instance-id",
				"X-aws-ec2-metadata-token", token)
			got = pc.answers(t, src)
			require.NotEmpty(t, got, "GET answer not captured")
			hops := 64
			if tc.ns == testbed.Container {
				hops--
			}
			for _, a := range got {
				require.Equal(t, hops, a.ttl, "%s %s: GET answers keep the default TTL", tc.ns, src)
			}
		}
	}
}

// httpDo sends one request with one header and returns the body of its 200 answer.
func httpDo(t *testing.T, client *http.Client, method, url, header, value string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	req.Header.Set(header, value)
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", method, url)
	return string(body)
}
