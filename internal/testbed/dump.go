package testbed

import (
	"github.com/vishvananda/netlink"

	"github.com/imdsv2/imdsv2/internal/nldump"
)

// linkByName is h.LinkByName through nldump.Retry: kernels without lookup by IFLA_IFNAME answer
// it from a dump of every link.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	return nldump.Retry(func() (netlink.Link, error) { return h.LinkByName(name) })
}

// addrList is h.AddrList through nldump.Retry (always a dump, filtered in user space).
func addrList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Addr, error) {
	return nldump.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, family) })
}
