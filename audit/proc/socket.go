package proc

import (
	"bufio"
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
// socket's inode from a net/tcp or net/tcp6 table, then the process with a
// descriptor on that inode. It is the best effort left for connections opened
// before the agent started: it needs permission to read other processes' fd
// directories.
//
// The socket is looked up in every network namespace that a process of
// ProcRoot is in, not only in the reader's own (ProcRoot/net): callers in
// containers on a bridge, or in a pod, hold their sockets in a namespace of
// their own, whose table only ProcRoot/PID/net shows. An address pair found in
// two namespaces (two containers behind two bridges with the same address) is
// ambiguous and attributed to nobody.
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

// socketInode finds the inode of local->remote in the reader's network
// namespace (ProcRoot/net), else in the namespaces of the processes of
// ProcRoot, each read once.
func (t *Table) socketInode(local, remote netip.AddrPort) (uint64, error) {
	if inode, ok := tcpInode(filepath.Join(t.cfg.ProcRoot, "net"), local, remote); ok {
		return inode, nil
	}
	dirs, err := os.ReadDir(t.cfg.ProcRoot)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	var found uint64
	for _, d := range dirs {
		if _, err := strconv.ParseUint(d.Name(), 10, 32); err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join(t.cfg.ProcRoot, d.Name(), "ns", "net"))
		if err != nil || seen[ns] {
			continue // gone, not ours to read, or a namespace read already
		}
		seen[ns] = true
		inode, ok := tcpInode(filepath.Join(t.cfg.ProcRoot, d.Name(), "net"), local, remote)
		switch {
		case !ok:
		case found == 0:
			found = inode
		case found != inode:
			return 0, fmt.Errorf("%w: %s -> %s is in more than one network namespace", ErrNoSocket, local, remote)
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("%w: %s -> %s in no network namespace of %s", ErrNoSocket, local, remote, t.cfg.ProcRoot)
	}
	return found, nil
}

// tcpInode looks local->remote up in dir/tcp and dir/tcp6, read whole
// however long they are (a busy host has tens of thousands of sockets).
func tcpInode(dir string, local, remote netip.AddrPort) (uint64, bool) {
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if inode, ok := tcpLineInode(sc.Text(), local, remote); ok {
				f.Close()
				return inode, true
			}
		}
		f.Close()
	}
	return 0, false
}

// FindTCPInode looks up the socket local->remote in the content of
// /proc/net/tcp or tcp6 and returns its inode. IPv4 sockets also match in
// tcp6 as IPv4-mapped addresses.
func FindTCPInode(b []byte, local, remote netip.AddrPort) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if inode, ok := tcpLineInode(line, local, remote); ok {
			return inode, true
		}
	}
	return 0, false
}

// tcpLineInode reads one line of a net/tcp table: the inode of the socket
// local->remote, if it is that one.
func tcpLineInode(line string, local, remote netip.AddrPort) (uint64, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return 0, false
	}
	l, ok1 := parseProcAddr(f[1])
	r, ok2 := parseProcAddr(f[2])
	if !ok1 || !ok2 || !sameEndpoint(l, local) || !sameEndpoint(r, remote) {
		return 0, false
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	return inode, err == nil && inode != 0
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
