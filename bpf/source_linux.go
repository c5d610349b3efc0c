//go:build linux && (amd64 || arm64)

package bpf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/audit"
)

// pollInterval bounds how long Next blocks in the kernel before it looks at ctx and at the
// lost-record counter again, and how long a record waits to be read: the kernel programs
// submit records without waking the reader up (BPF_RB_NO_WAKEUP: a wake-up costs an
// inter-processor interrupt, in a VM a VM exit) until 1/64 of the ring buffer waits, so the
// reader wakes up by itself at least this often and reads whatever is there. The live view
// lags the kernel by at most this much.
const pollInterval = 100 * time.Millisecond

// headerSize is the size of struct event, the fixed part of every record.
var headerSize = binary.Size(imdsEvent{})

// record is one ring-buffer record: the header, decoded into the struct bpf2go generated from
// struct event in imds.c, and the captured bytes that follow it.
type record struct {
	hdr  imdsEvent
	data []byte
}

// decodeRecord decodes a raw ring-buffer sample. data aliases raw.
func decodeRecord(raw []byte) (record, error) {
	var r record
	if len(raw) < headerSize {
		return r, fmt.Errorf("bpf: short ring-buffer record: %d bytes, the header alone is %d", len(raw), headerSize)
	}
	if _, err := binary.Decode(raw[:headerSize], binary.NativeEndian, &r.hdr); err != nil {
		return r, fmt.Errorf("bpf: decode record header: %w", err)
	}
	end := headerSize + int(r.hdr.CapLen)
	if end > len(raw) {
		return r, fmt.Errorf("bpf: record of kind %d says %d captured bytes but has %d", r.hdr.Kind, r.hdr.CapLen, len(raw)-headerSize)
	}
	r.data = raw[headerSize:end]
	return r, nil
}

// Next returns the next event: a record from the kernel, an EventLost when the lost-record
// counter has grown since the last report, or an EventAttached or EventDetached when the
// agent started or stopped watching its cgroup (the first event after Attach is an
// EventAttached; Next also checks, every second, that the watched cgroup is still there, and
// follows it when it is removed and created again). It blocks until one is available or ctx is done, and
// returns io.EOF once the agent is closed. Agent implements audit.Source with it.
func (a *Agent) Next(ctx context.Context) (audit.Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return audit.Event{}, err
		}
		ev, ok, err := a.poll(ctx)
		if ok || err != nil {
			return ev, err
		}
	}
}

// poll returns an event if one arrives within pollInterval; ok is false if none did.
func (a *Agent) poll(ctx context.Context) (ev audit.Event, ok bool, err error) {
	a.life.RLock()
	defer a.life.RUnlock()
	if a.closed.Load() {
		return audit.Event{}, false, io.EOF
	}
	if ev, ok := a.nextWatchEvent(); ok {
		return ev, true, nil
	}
	if ev, ok := a.lostEvent(); ok {
		return ev, true, nil
	}
	deadline := time.Now().Add(pollInterval)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	a.reader.SetDeadline(deadline)
	err = a.reader.ReadInto(&a.rec)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.noteDrained()
		return audit.Event{}, false, nil
	case errors.Is(err, ringbuf.ErrClosed):
		return audit.Event{}, false, io.EOF
	case err != nil:
		return audit.Event{}, false, fmt.Errorf("bpf: read the ring buffer: %w", err)
	}
	rec, err := decodeRecord(a.rec.RawSample)
	if err != nil {
		return audit.Event{}, false, err
	}
	ev, err = a.event(rec)
	return ev, err == nil, err
}

// lostEvent returns an EventLost when records were lost since the last one it returned. The
// counter is read at most every pollInterval. The caller holds life.
func (a *Agent) lostEvent() (audit.Event, bool) {
	now := time.Now()
	if now.Sub(a.lostChecked) < pollInterval {
		return audit.Event{}, false
	}
	a.lostChecked = now
	n := a.lost()
	if n <= a.lostReported {
		return audit.Event{}, false
	}
	ev := audit.Event{Kind: audit.EventLost, Time: now, Lost: n - a.lostReported}
	a.lostReported = n
	return ev, true
}

// event converts a record into an audit.Event; the Data it returns is a copy.
func (a *Agent) event(r record) (audit.Event, error) {
	return convert(r, a.boot)
}

var kinds = map[imdsEventKind]audit.EventKind{
	imdsEventKindEVENT_CONNECT: audit.EventConnect,
	imdsEventKindEVENT_SEND:    audit.EventSend,
	imdsEventKindEVENT_RECV:    audit.EventRecv,
	imdsEventKindEVENT_EXEC:    audit.EventExec,
	imdsEventKindEVENT_EXIT:    audit.EventExit,
	imdsEventKindEVENT_CLOSE:   audit.EventClose,
}

const (
	afInet  = unix.AF_INET
	afInet6 = unix.AF_INET6
)

// convert turns a record into an audit.Event; boot is the wall-clock ns at boot-time zero.
func convert(r record, boot int64) (audit.Event, error) {
	h := &r.hdr
	kind, ok := kinds[imdsEventKind(h.Kind)]
	if !ok {
		return audit.Event{}, fmt.Errorf("bpf: record of unknown kind %d", h.Kind)
	}
	flag := func(f imdsEventFlag) bool { return imdsEventFlag(h.Flags)&f != 0 }
	ev := audit.Event{
		Kind:        kind,
		Time:        time.Unix(0, boot+int64(h.TimeNs)),
		Cookie:      h.Cookie,
		PID:         h.Id.Pid,
		TID:         h.Id.Tid,
		PPID:        h.Ppid,
		UID:         h.Id.Uid,
		GID:         h.Id.Gid,
		CgroupID:    h.Id.CgroupId,
		Comm:        cString(h.Id.Comm[:]),
		NetnsCookie: h.Id.NetnsCookie,
		HostNetns:   flag(imdsEventFlagFLAG_HOST_NETNS),
		NoConnect:   flag(imdsEventFlagFLAG_NO_CONNECT),
		Truncated:   flag(imdsEventFlagFLAG_TRUNCATED),
		V4Mapped:    flag(imdsEventFlagFLAG_V4MAPPED),
		ArgvFault:   flag(imdsEventFlagFLAG_ARGV_FAULT),
	}
	switch kind {
	case audit.EventConnect:
		ev.Remote = netip.AddrPortFrom(addr(h.Family, h.RemoteAddr), h.RemotePort)
	case audit.EventSend, audit.EventRecv:
		ev.Local = netip.AddrPortFrom(addr(h.Family, h.LocalAddr), h.LocalPort)
		ev.Remote = netip.AddrPortFrom(addr(h.Family, h.RemoteAddr), h.RemotePort)
		ev.Seq = h.Seq
		ev.DataLen = h.DataLen
		ev.Data = bytes.Clone(r.data)
		ev.TTL = h.Ttl
	case audit.EventExec:
		ev.Exe, ev.Args = splitExec(r.data, int(h.AuxLen))
		ev.DataLen = h.DataLen
		ev.Start, ev.ParentStart = time.Duration(h.StartNs), time.Duration(h.ParentStartNs)
	}
	return ev, nil
}

// addr reads an address of the given family; an IPv4-mapped IPv6 address (a dual-stack
// socket's connect) is unmapped, so that it compares equal to the IPv4 endpoint.
func addr(family uint8, b [16]uint8) netip.Addr {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(b[:4]))
	case afInet6:
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.Addr{}
}

// splitExec splits exec data: the executable path (aux bytes with its NUL), then argv as
// NUL-separated strings (the last may be cut short by the capture limit).
func splitExec(data []byte, aux int) (exe string, args []string) {
	aux = min(aux, len(data))
	exe = cString(data[:aux])
	rest := data[aux:]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			args = append(args, string(rest))
			break
		}
		args = append(args, string(rest[:i]))
		rest = rest[i+1:]
	}
	return exe, args
}

// cString returns the bytes up to the first NUL.
func cString[T int8 | uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

var _ audit.Source = (*Agent)(nil)
