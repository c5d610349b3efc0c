// Package nldump retries netlink dumps that a concurrent change of the kernel's table
// interrupted. The test bed and ready's look at the host's container networks both list links
// and addresses while containers come and go.
package nldump

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// Tries bounds how often Retry makes a netlink call whose dump a concurrent change
// interrupted.
const Tries = 10

// Retry makes call, a netlink call that dumps a kernel table (links, addresses, routes,
// neighbours), again while it fails with netlink.ErrDumpInterrupted ("results may be incomplete
// or inconsistent"): the kernel says so when the table changed during the dump, which on a
// host with containers, or in the test bed, happens whenever a link or address changes state
// nearby, on any kernel. After Tries interrupted dumps it returns the last error.
func Retry[T any](call func() (T, error)) (T, error) {
	var v T
	var err error
	for i := range Tries {
		if v, err = call(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
		time.Sleep(time.Duration(i) * time.Millisecond)
	}
	return v, fmt.Errorf("%w (%d dumps in a row)", err, Tries)
}
