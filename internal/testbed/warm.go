package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// pinNeighbours writes permanent neighbour entries for every peer address of every link, in both
// directions, so that no first packet waits for ARP or neighbour discovery.
//
// Why: resolution runs from kernel work items that a busy machine schedules late, and a lost
// first solicitation costs a one-second retransmission, four times a metadata client's dial
// time-out. Measured before this existed: a container's first IPv6 connection took 308 ms on an
// idle machine, and first connections timed out in CI while test packages compiled alongside.
func pinNeighbours(handles map[NS]*netlink.Handle) error {
	// Each veth pair (or bridge and container end): both ends' addresses, pinned at the other.
	for _, p := range []struct {
		aNS, bNS     NS
		aLink, bLink string
		aAddrs       []netip.Prefix
		bAddrs       []netip.Prefix
	}{
		{Instance, IMDS, linkInstanceToIMDS, linkPeer,
			[]netip.Prefix{instanceToIMDSv4, instanceToIMDSv6}, []netip.Prefix{imdsLinkv4, imdsLinkv6}},
		{Instance, Container, linkBridge, linkPeer,
			[]netip.Prefix{bridgev4, bridgev6}, []netip.Prefix{containerv4, containerv6}},
	} {
		a, err := linkByName(handles[p.aNS], p.aLink)
		if err != nil {
			return fmt.Errorf("neighbours: %s in %s: %w", p.aLink, p.aNS, err)
		}
		b, err := linkByName(handles[p.bNS], p.bLink)
		if err != nil {
			return fmt.Errorf("neighbours: %s in %s: %w", p.bLink, p.bNS, err)
		}
		if err := pin(handles[p.bNS], b, a.Attrs().HardwareAddr, p.aAddrs); err != nil {
			return fmt.Errorf("neighbours of %s in %s: %w", p.bLink, p.bNS, err)
		}
		if err := pin(handles[p.aNS], a, b.Attrs().HardwareAddr, p.bAddrs); err != nil {
			return fmt.Errorf("neighbours of %s in %s: %w", p.aLink, p.aNS, err)
		}
	}
	return nil
}

// pin makes each address a permanent neighbour at mac on link l.
func pin(h *netlink.Handle, l netlink.Link, mac net.HardwareAddr, addrs []netip.Prefix) error {
	for _, a := range addrs {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT,
			IP: a.Addr().AsSlice(), HardwareAddr: mac}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("%s: %w", a.Addr(), err)
		}
	}
	return nil
}

// probeTimeout bounds one connection attempt of warmUp; attempts repeat until readyTimeout.
const probeTimeout = 200 * time.Millisecond

// warmUp connects, from the instance and the container, to a listener in the imds namespace at
// both metadata addresses, until each path carries a connection promptly. It proves the bed
// routes what the tests need before any test relies on it, and reports which path does not.
func (b *Bed) warmUp() error {
	var ln net.Listener
	if err := b.Do(IMDS, func() error {
		var err error
		ln, err = net.Listen("tcp", "[::]:0") // dual-stack: both metadata addresses
		return err
	}); err != nil {
		return fmt.Errorf("warm-up listener: %w", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	deadline := time.Now().Add(readyTimeout)
	for _, from := range []NS{Instance, Container} {
		dial := b.DialContext(from)
		for _, to := range []netip.Addr{imdsfacts.AddrV4, imdsfacts.AddrV6} {
			addr := net.JoinHostPort(to.String(), port)
			var last error
			for {
				ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
				c, err := dial(ctx, "tcp", addr)
				cancel()
				if err == nil {
					c.Close()
					break
				}
				last = err
				if time.Now().After(deadline) {
					return fmt.Errorf("no connection from %s to %s within %v: %w", from, addr, readyTimeout, last)
				}
				if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENETUNREACH) {
					time.Sleep(20 * time.Millisecond) // a route or address not applied yet
				}
			}
		}
	}
	return nil
}
