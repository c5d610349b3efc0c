package imdstest

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

type sockOpt struct{ level, name, prev int }

// linuxHopSocket sets IP_TTL or IPV6_UNICAST_HOPS through the connection's raw socket.
type linuxHopSocket struct {
	rc    syscall.RawConn
	want  []sockOpt // options to set; want[0] is required, the rest best effort
	saved []sockOpt // options set at least once, with the value to restore
}

func newHopSocket(c net.Conn) (hopSocket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var dom int
	var derr error
	if err := rc.Control(func(fd uintptr) {
		dom, derr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	h := &linuxHopSocket{rc: rc}
	switch dom {
	case unix.AF_INET:
		h.want = []sockOpt{{level: unix.IPPROTO_IP, name: unix.IP_TTL}}
	case unix.AF_INET6:
		h.want = []sockOpt{{level: unix.IPPROTO_IPV6, name: unix.IPV6_UNICAST_HOPS}}
		if la, ok := c.LocalAddr().(*net.TCPAddr); ok && la.IP.To4() != nil {
			// A dual-stack socket talking IPv4 sends through the IPv4 path, which uses IP_TTL.
			h.want = append(h.want, sockOpt{level: unix.IPPROTO_IP, name: unix.IP_TTL})
		}
	default:
		return nil, errors.New("socket is neither IPv4 nor IPv6")
	}
	return h, nil
}

func (h *linuxHopSocket) set(hops int) error {
	var opErr error
	err := h.rc.Control(func(fd uintptr) {
		first := h.saved == nil
		for i, o := range h.want {
			if first {
				prev, err := unix.GetsockoptInt(int(fd), o.level, o.name)
				if err != nil {
					if i == 0 {
						opErr = err
						return
					}
					continue
				}
				o.prev = prev
				h.saved = append(h.saved, o)
			}
		}
		for i, o := range h.saved {
			if err := unix.SetsockoptInt(int(fd), o.level, o.name, hops); err != nil && i == 0 {
				opErr = err
			}
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

func (h *linuxHopSocket) restore() {
	_ = h.rc.Control(func(fd uintptr) {
		for _, o := range h.saved {
			_ = unix.SetsockoptInt(int(fd), o.level, o.name, o.prev)
		}
	})
}

func (h *linuxHopSocket) unacked() (int, error) {
	var n int
	var ierr error
	if err := h.rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil {
		return 0, err
	}
	return n, ierr
}
