package testbed

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Addresses of the bed's own links, private to its namespaces.
var (
	instanceToIMDSv4 = netip.MustParsePrefix("10.253.0.1/24")
	imdsLinkv4       = netip.MustParsePrefix("10.253.0.2/24")
	instanceToIMDSv6 = netip.MustParsePrefix("fd00:ec2::1/64")
	imdsLinkv6       = netip.MustParsePrefix("fd00:ec2::254/64")
	bridgev4         = netip.MustParsePrefix("10.254.0.1/24")
	containerv4      = netip.MustParsePrefix("10.254.0.2/24")
	bridgev6         = netip.MustParsePrefix("fd00:c0::1/64")
	containerv6      = netip.MustParsePrefix("fd00:c0::2/64")
)

// Link names inside the namespaces. They need not be unique across beds: each namespace has its
// own set of names.
const (
	linkInstanceToIMDS = "to-imds" // instance side of the veth to the imds namespace
	linkBridge         = "br0"     // the instance's container bridge
	linkInstanceToCtr  = "to-ctr"  // bridge port, veth to the container
	linkPeer           = "eth0"    // the far end of a veth, in the imds and container namespaces
)

// readyTimeout bounds the wait for the links to come up (normally well under a second).
const readyTimeout = 10 * time.Second

// wire builds links, addresses and routes, each inside its own namespace, through netlink
// handles opened in that namespace: nothing is created in the caller's namespace even briefly.
func (b *Bed) wire() error {
	nl, err := b.openNamespaces()
	defer nl.close()
	if err != nil {
		return err
	}
	for _, step := range []func() error{nl.makeLinks, nl.addAddresses, nl.addRoutes, nl.enableForwarding} {
		if err := step(); err != nil {
			return err
		}
	}
	if err := pinNeighbours(nl.handles); err != nil {
		return err
	}
	return waitReady(nl.handles, readyTimeout)
}

// nsLinks are the bed's namespaces as wire works on them: a namespace handle and a netlink
// handle opened in each.
type nsLinks struct {
	handles map[NS]*netlink.Handle
	fds     map[NS]netns.NsHandle
}

func (n *nsLinks) close() {
	for _, h := range n.handles {
		h.Close()
	}
	for _, fd := range n.fds {
		fd.Close()
	}
}

// openNamespaces opens every namespace of the bed, turns off IPv6 duplicate address detection
// in it and brings its loopback up. What it opened is in the result even on error, to close.
func (b *Bed) openNamespaces() (*nsLinks, error) {
	nl := &nsLinks{handles: map[NS]*netlink.Handle{}, fds: map[NS]netns.NsHandle{}}
	for _, ns := range allNS {
		fd, err := netns.GetFromName(b.names[ns])
		if err != nil {
			return nl, err
		}
		nl.fds[ns] = fd
		h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
		if err != nil {
			return nl, fmt.Errorf("netlink handle in %s: %w", ns, err)
		}
		nl.handles[ns] = h
		// Link-local IPv6 addresses go through duplicate address detection for about a second,
		// during which neighbour discovery cannot use them and first connections stall. Nothing
		// can collide in a private namespace, so links made from here on skip it.
		if err := InNamespace(fd, func() error {
			return writeSysctls("0", "/proc/sys/net/ipv6/conf/all/accept_dad", "/proc/sys/net/ipv6/conf/default/accept_dad")
		}); err != nil {
			return nl, fmt.Errorf("%s: disable IPv6 duplicate address detection: %w", ns, err)
		}
		if err := linkUp(h, "lo"); err != nil {
			return nl, fmt.Errorf("%s: %w", ns, err)
		}
	}
	return nl, nil
}

// makeLinks creates the instance's veth to IMDS, its container bridge and the bridge port's
// veth to the container. Each veth is created in the instance with its peer born inside the
// other namespace.
func (n *nsLinks) makeLinks() error {
	inst := n.handles[Instance]
	if err := inst.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: linkInstanceToIMDS},
		PeerName:      linkPeer,
		PeerNamespace: netlink.NsFd(n.fds[IMDS]),
	}); err != nil {
		return fmt.Errorf("veth instance-imds: %w", err)
	}
	// No multicast snooping: it can hold back IPv6 neighbour solicitations until a querier shows up.
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: linkBridge}, MulticastSnooping: &snooping}
	if err := inst.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := inst.LinkAdd(&netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: linkInstanceToCtr},
		PeerName:      linkPeer,
		PeerNamespace: netlink.NsFd(n.fds[Container]),
	}); err != nil {
		return fmt.Errorf("veth instance-container: %w", err)
	}
	toCtr, err := linkByName(inst, linkInstanceToCtr)
	if err != nil {
		return err
	}
	if err := inst.LinkSetMaster(toCtr, br); err != nil {
		return fmt.Errorf("attach to bridge: %w", err)
	}
	return nil
}

// bedLinks are every link of the bed, by namespace, with the addresses it carries.
var bedLinks = []struct {
	ns    NS
	link  string
	addrs []netip.Prefix
}{
	{Instance, linkInstanceToIMDS, []netip.Prefix{instanceToIMDSv4, instanceToIMDSv6}},
	{Instance, linkBridge, []netip.Prefix{bridgev4, bridgev6}},
	{Instance, linkInstanceToCtr, nil},
	{IMDS, linkPeer, []netip.Prefix{imdsLinkv4, netip.PrefixFrom(imdsfacts.AddrV4, 32), imdsLinkv6}},
	{Container, linkPeer, []netip.Prefix{containerv4, containerv6}},
}

// addAddresses puts the addresses of bedLinks on their links and sets the links up.
func (n *nsLinks) addAddresses() error {
	for _, s := range bedLinks {
		h := n.handles[s.ns]
		l, err := linkByName(h, s.link)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", s.link, s.ns, err)
		}
		for _, p := range s.addrs {
			a := &netlink.Addr{IPNet: ipNet(p)}
			if p.Addr().Is6() {
				a.Flags = unix.IFA_F_NODAD // usable at once, no duplicate detection wait
			}
			if err := h.AddrAdd(l, a); err != nil {
				return fmt.Errorf("address %s on %s in %s: %w", p, s.link, s.ns, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("up %s in %s: %w", s.link, s.ns, err)
		}
	}
	return nil
}

// addRoutes: the instance reaches 169.254.169.254 through the imds link (fd00:ec2::254 is on
// that link's /64); the imds and container namespaces route everything back through the
// instance.
func (n *nsLinks) addRoutes() error {
	inst := n.handles[Instance]
	toIMDS, err := linkByName(inst, linkInstanceToIMDS)
	if err != nil {
		return err
	}
	if err := inst.RouteAdd(&netlink.Route{
		LinkIndex: toIMDS.Attrs().Index,
		Dst:       ipNet(netip.PrefixFrom(imdsfacts.AddrV4, 32)),
		Gw:        imdsLinkv4.Addr().AsSlice(),
		Src:       instanceToIMDSv4.Addr().AsSlice(),
	}); err != nil {
		return fmt.Errorf("route to IMDS: %w", err)
	}
	for _, r := range []struct {
		ns NS
		gw netip.Addr
	}{
		{IMDS, instanceToIMDSv4.Addr()}, {IMDS, instanceToIMDSv6.Addr()},
		{Container, bridgev4.Addr()}, {Container, bridgev6.Addr()},
	} {
		h := n.handles[r.ns]
		l, err := linkByName(h, linkPeer)
		if err != nil {
			return err
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: r.gw.AsSlice()}); err != nil {
			return fmt.Errorf("%s: default route via %s: %w", r.ns, r.gw, err)
		}
	}
	return nil
}

// enableForwarding turns on forwarding in the instance namespace only: it is the router between
// container and IMDS.
func (n *nsLinks) enableForwarding() error {
	if err := InNamespace(n.fds[Instance], func() error {
		return writeSysctls("1", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")
	}); err != nil {
		return fmt.Errorf("instance: enable forwarding: %w", err)
	}
	return nil
}

// waitReady waits until every link of the bed is operationally up and its IPv6 addresses are
// usable.
//
// Why: the kernel applies a carrier change, and with it the device's transmit queue, in its
// link-watch work, which can run a second or more after the link was set up; until then the
// device drops what it is given. Measured before this wait existed: a bridge port still
// "lower-layer-down" right after New, and the container's first connection to IMDS losing its
// SYN and taking 1.4 to 2.5 s (retransmission time-outs) to connect, longer than a metadata
// client's dial time-out.
func waitReady(handles map[NS]*netlink.Handle, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		var notUp []string
		for _, w := range bedLinks {
			l, err := linkByName(handles[w.ns], w.link)
			if err != nil {
				return fmt.Errorf("find %s in %s: %w", w.link, w.ns, err)
			}
			if st := l.Attrs().OperState; st != netlink.OperUp {
				notUp = append(notUp, fmt.Sprintf("%s/%s is %s", w.ns, w.link, st))
				continue
			}
			why, err := ipv6NotReady(handles[w.ns], l)
			if err != nil {
				return fmt.Errorf("addresses of %s in %s: %w", w.link, w.ns, err)
			}
			if why != "" {
				notUp = append(notUp, fmt.Sprintf("%s/%s %s", w.ns, w.link, why))
			}
		}
		if len(notUp) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links not up after %v: %s", timeout, strings.Join(notUp, ", "))
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// ipv6NotReady says what keeps the link's IPv6 from working yet, or "" when nothing does.
//
// Even without duplicate address detection, the kernel finishes an address (joins its
// solicited-node multicast group, clears "tentative") in a work item that can run long after the
// link came up when the machine is busy; until then neighbour solicitations for the address go
// unanswered and a first IPv6 connection waits a 1 s retransmission. Measured: the instance's
// first connection to fd00:ec2::254 took more than 250 ms under load. The link-local address,
// which neighbour discovery and routers use, is made on the same path.
func ipv6NotReady(h *netlink.Handle, l netlink.Link) (string, error) {
	addrs, err := addrList(h, l, netlink.FAMILY_V6)
	if err != nil {
		return "", err
	}
	linkLocal := false
	for _, a := range addrs {
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			return "has tentative IPv6 address " + a.IP.String(), nil
		}
		if a.IP.IsLinkLocalUnicast() {
			linkLocal = true
		}
	}
	if !linkLocal {
		return "has no IPv6 link-local address yet", nil
	}
	return "", nil
}

// writeSysctls writes value to each /proc/sys file, in the namespace of the calling thread.
func writeSysctls(value string, paths ...string) error {
	for _, p := range paths {
		if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := linkByName(h, name)
	if err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
