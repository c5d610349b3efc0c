package ready

import (
	"bytes"
	"context"
	"net/netip"
	"sort"
	"sync"

	"github.com/imdsv2/imdsv2/audit"
)

// maxSockets bounds the sockets an Observer remembers; the oldest are forgotten first.
const maxSockets = 16384

// Talker is a process seen talking to IMDS, with the address its socket had.
type Talker struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm,omitempty"`
	// Addr is the socket's local address: an address of this host's network namespace, or
	// of a container's.
	Addr string `json:"local_addr,omitempty"`
}

// Observations is what an Observer learnt that the auditor's aggregate does not keep.
type Observations struct {
	// Foreign lists callers whose sockets had a local address that is not one of this
	// host's: processes in other network namespaces (containers on a bridge, pods), which
	// are one or more routing hops further from IMDS than the host.
	Foreign []Talker `json:"foreign_namespace_callers"`
	// IPv6 lists callers that used the IPv6 endpoint [fd00:ec2::254].
	IPv6 []Talker `json:"ipv6_callers"`
	// HostTokenTTLs and ForeignTokenTTLs count token answers by the IP TTL (IPv6 hop limit)
	// they arrived with, on the host and in other namespaces. On the host the TTL is the
	// instance's HttpPutResponseHopLimit.
	HostTokenTTLs    map[uint8]uint64 `json:"host_token_ttls"`
	ForeignTokenTTLs map[uint8]uint64 `json:"foreign_token_ttls"`
}

// IsForeign reports whether pid was seen with a socket outside this host's namespace.
func (o *Observations) IsForeign(pid uint32) (Talker, bool) {
	if o == nil || pid == 0 {
		return Talker{}, false
	}
	for _, t := range o.Foreign {
		if t.PID == pid {
			return t, true
		}
	}
	return Talker{}, false
}

type sockInfo struct {
	pid        uint32
	comm       string
	local      netip.Addr
	remote     netip.Addr
	pendingPut bool
	order      uint64
}

// Observer is an audit.Source that passes every event of another source through unchanged
// and notes, per socket, the caller's local address (host or another network namespace),
// the endpoint's address family, and the TTL of token answers. Safe for one reader (the
// auditor) and concurrent calls of Observations.
type Observer struct {
	src  audit.Source
	host map[netip.Addr]bool

	mu      sync.Mutex
	socks   map[uint64]*sockInfo
	seq     uint64
	foreign map[uint32]Talker
	ipv6    map[uint32]Talker
	hostTTL map[uint8]uint64
	forTTL  map[uint8]uint64
}

// NewObserver wraps src. hostAddrs are the addresses of the network namespace ready treats
// as the host (InspectHost finds them).
func NewObserver(src audit.Source, hostAddrs []netip.Addr) *Observer {
	o := &Observer{src: src, host: map[netip.Addr]bool{}, socks: map[uint64]*sockInfo{},
		foreign: map[uint32]Talker{}, ipv6: map[uint32]Talker{}, hostTTL: map[uint8]uint64{}, forTTL: map[uint8]uint64{}}
	for _, a := range hostAddrs {
		o.host[a.Unmap()] = true
	}
	return o
}

// Next returns the next event of the wrapped source, after noting what it says.
func (o *Observer) Next(ctx context.Context) (audit.Event, error) {
	ev, err := o.src.Next(ctx)
	if err == nil {
		o.note(ev)
	}
	return ev, err
}

func (o *Observer) note(ev audit.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ev.Cookie == 0 {
		return
	}
	switch ev.Kind {
	case audit.EventClose, audit.EventExit:
		delete(o.socks, ev.Cookie)
		return
	case audit.EventConnect, audit.EventSend, audit.EventRecv:
	default:
		return
	}
	s := o.socks[ev.Cookie]
	if s == nil {
		if len(o.socks) >= maxSockets {
			o.forgetOldest()
		}
		o.seq++
		s = &sockInfo{order: o.seq}
		o.socks[ev.Cookie] = s
	}
	if ev.PID != 0 && s.pid == 0 {
		s.pid, s.comm = ev.PID, ev.Comm
	}
	if ev.Remote.IsValid() {
		s.remote = ev.Remote.Addr().Unmap()
	}
	if ev.Local.IsValid() && ev.Local.Addr().Unmap().IsValid() && !ev.Local.Addr().IsUnspecified() {
		s.local = ev.Local.Addr().Unmap()
	}
	t := Talker{PID: s.pid, Comm: s.comm}
	if s.local.IsValid() {
		t.Addr = s.local.String()
	}
	switch ev.Kind {
	case audit.EventSend:
		if len(ev.Data) > 0 && isRequestStart(ev.Data) {
			s.pendingPut = bytes.HasPrefix(ev.Data, []byte("PUT ")) && bytes.Contains(firstLine(ev.Data), []byte("/api/token"))
		}
		if s.remote.Is6() && s.pid != 0 {
			o.ipv6[s.pid] = t
		}
		if s.local.IsValid() && !o.host[s.local] && s.pid != 0 && len(o.host) > 0 {
			o.foreign[s.pid] = t
		}
	case audit.EventRecv:
		if s.pendingPut && bytes.HasPrefix(ev.Data, []byte("HTTP/")) {
			s.pendingPut = false
			if bytes.HasPrefix(ev.Data[min(len(ev.Data), 9):], []byte("200")) && ev.TTL > 0 {
				if s.local.IsValid() && !o.host[s.local] && len(o.host) > 0 {
					o.forTTL[ev.TTL]++
				} else {
					o.hostTTL[ev.TTL]++
				}
			}
		}
	}
}

func (o *Observer) forgetOldest() {
	var oldest uint64
	var first = true
	var key uint64
	for k, s := range o.socks {
		if first || s.order < oldest {
			oldest, key, first = s.order, k, false
		}
	}
	delete(o.socks, key)
}

// Observations returns what was noted so far, in a deterministic order.
func (o *Observer) Observations() *Observations {
	o.mu.Lock()
	defer o.mu.Unlock()
	obs := &Observations{Foreign: talkers(o.foreign), IPv6: talkers(o.ipv6),
		HostTokenTTLs: map[uint8]uint64{}, ForeignTokenTTLs: map[uint8]uint64{}}
	for k, v := range o.hostTTL {
		obs.HostTokenTTLs[k] = v
	}
	for k, v := range o.forTTL {
		obs.ForeignTokenTTLs[k] = v
	}
	return obs
}

func talkers(m map[uint32]Talker) []Talker {
	out := make([]Talker, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

func isRequestStart(b []byte) bool {
	for _, m := range []string{"GET ", "PUT ", "POST ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH "} {
		if bytes.HasPrefix(b, []byte(m)) {
			return true
		}
	}
	return false
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// IsForeign reports whether pid was seen with a socket outside the host's network
// namespace, and with which address.
func (o *Observer) IsForeign(pid uint32) (Talker, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.foreign[pid]
	return t, ok
}
