package proc

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxFDScan bounds the file descriptors looked at by one SocketOwner call.
const maxFDScan = 200000

// ErrNoSocket says no socket with the given addresses was found.
var ErrNoSocket = errors.New("proc: socket not found")

// SocketOwner finds the process holding the TCP socket local->remote: the
// socket's inode from ProcRoot/net/tcp and tcp6 (the network namespace of
// ProcRoot's reader), then the process with a descriptor on that inode. It is
// the best effort left for connections opened before the agent started: it
// needs permission to read other processes' fd directories, and finds
// nothing in other network namespaces.
func (t *Table) SocketOwner(local, remote netip.AddrPort) (uint32, error) {
	inode, err := t.socketInode(local, remote)
	if err != nil {
		return 0, err
	}
	target := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	dirs, err := os.ReadDir(t.cfg.ProcRoot)
	if err != nil {
		return 0, err
	}
	scanned := 0
	for _, d := range dirs {
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		fdDir := filepath.Join(t.cfg.ProcRoot, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // not ours to read, or gone
		}
		for _, fd := range fds {
			if scanned++; scanned > maxFDScan {
				return 0, fmt.Errorf("%w: gave up after %d descriptors", ErrNoSocket, maxFDScan)
			}
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == target {
				return uint32(pid), nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no readable process holds %s", ErrNoSocket, target)
}

func (t *Table) socketInode(local, remote netip.AddrPort) (uint64, error) {
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := readFile(filepath.Join(t.cfg.ProcRoot, "net", name))
		if err != nil {
			continue
		}
		if inode, ok := FindTCPInode(b, local, remote); ok {
			return inode, nil
		}
	}
	return 0, fmt.Errorf("%w: %s -> %s not in %s/net/tcp{,6}", ErrNoSocket, local, remote, t.cfg.ProcRoot)
}

// FindTCPInode looks up the socket local->remote in the content of
// /proc/net/tcp or tcp6 and returns its inode. IPv4 sockets also match in
// tcp6 as IPv4-mapped addresses.
func FindTCPInode(b []byte, local, remote netip.AddrPort) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		l, ok1 := parseProcAddr(f[1])
		r, ok2 := parseProcAddr(f[2])
		if !ok1 || !ok2 || !sameEndpoint(l, local) || !sameEndpoint(r, remote) {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err == nil && inode != 0 {
			return inode, true
		}
	}
	return 0, false
}

func sameEndpoint(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// parseProcAddr reads "0100007F:0050": the address as 32-bit words in host
// (little-endian on the architectures the project targets) order, the port
// in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	out := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(out[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(out)
	return netip.AddrPortFrom(addr, uint16(port)), true
}
