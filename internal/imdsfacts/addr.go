package imdsfacts

import "net/netip"

// Where IMDS answers (IMDS-FACTS.md section 1): plain HTTP on port 80 at a
// link-local IPv4 address and, on Nitro instances with HttpProtocolIpv6=enabled,
// at an IPv6 address. bpf/imds.c has its own copy in C (imds_ip4, imds_ip6,
// imds_port); a test in bpf compares it with these.
const (
	IPv4 = "169.254.169.254"
	IPv6 = "fd00:ec2::254"
	Port = 80

	// EndpointIPv4 and EndpointIPv6 are the base URLs of the service.
	EndpointIPv4 = "http://" + IPv4
	EndpointIPv6 = "http://[" + IPv6 + "]"
)

// AddrV4 and AddrV6 are IPv4 and IPv6 parsed; AddrPortV4 and AddrPortV6 add
// the port.
var (
	AddrV4     = netip.MustParseAddr(IPv4)
	AddrV6     = netip.MustParseAddr(IPv6)
	AddrPortV4 = netip.AddrPortFrom(AddrV4, Port)
	AddrPortV6 = netip.AddrPortFrom(AddrV6, Port)
)
