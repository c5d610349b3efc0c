//go:build !linux

package imdstest

import (
	"errors"
	"net"
)

// newHopSocket is only implemented on Linux; elsewhere token answers keep the default TTL.
func newHopSocket(net.Conn) (hopSocket, error) {
	return nil, errors.New("hop limit emulation needs Linux")
}
