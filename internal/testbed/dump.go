package testbed

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// dumpTries bounds how often retryDump makes a netlink call whose dump a concurrent change
// interrupted.
const dumpTries = 10

// retryDump makes call, a netlink call that dumps a kernel table (links, addresses, routes,
// neighbours), again while it fails with netlink.ErrDumpInterrupted ("results may be incomplete
// or inconsistent"): the kernel says so when the table changed during the dump, which in the bed
// happens whenever a link or address changes state nearby, on any kernel. After dumpTries
// interrupted dumps it returns the last error.
func retryDump[T any](call func() (T, error)) (T, error) {
	var v T
	var err error
	for i := range dumpTries {
		if v, err = call(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
		time.Sleep(time.Duration(i) * time.Millisecond)
	}
	return v, fmt.Errorf("%w (%d dumps in a row)", err, dumpTries)
}

// linkByName is h.LinkByName through retryDump: kernels without lookup by IFLA_IFNAME answer
// it from a dump of every link.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	return retryDump(func() (netlink.Link, error) { return h.LinkByName(name) })
}

// addrList is h.AddrList through retryDump (always a dump, filtered in user space).
func addrList(h *netlink.Handle, l netlink.Link, family int) ([]netlink.Addr, error) {
	return retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, family) })
}
