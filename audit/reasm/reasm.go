// Package reasm rebuilds the HTTP/1.x header blocks of both directions of a
// TCP connection from captured segments, keyed by socket cookie.
//
// Segments may arrive duplicated, overlapping, out of order, cut short by the
// capture (captured bytes fewer than the bytes on the wire) or not at all.
// Heads written in several pieces and several requests on one connection
// (keep-alive, pipelining) are handled; bodies are skipped by sequence
// arithmetic and never stored. Memory is bounded per stream and in total: the
// least recently used streams are evicted first, and evictions are counted. An
// evicted stream's partial head is emitted as Truncated, so that a request cut
// short by the bounds is reported as unclassifiable, never lost.
package reasm

import (
	"container/list"
	"slices"
	"time"

	"github.com/imdsv2/imdsv2/audit/httpreq"
)

// Dir is the direction of a stream.
type Dir uint8

// Directions.
const (
	// Send: from the local process to IMDS (requests).
	Send Dir = iota
	// Recv: from IMDS to the local process (answers).
	Recv
)

// Key names one direction of one connection.
type Key struct {
	Cookie uint64
	Dir    Dir
}

// Segment is one captured TCP segment's payload.
type Segment struct {
	Seq  uint32 // sequence number of the first payload byte
	Data []byte // captured bytes; may be fewer than WireLen
	// WireLen is the payload length on the wire; 0 means len(Data).
	WireLen uint32
	Time    time.Time
	TTL     uint8 // IP TTL / hop limit of the packet
	// AtStart says this is the first segment of its direction of the
	// connection (the connection was seen from its start): it begins at a
	// head, so bytes that do not look like one are a request that is not
	// HTTP, counted as such, not the middle of something unseen.
	AtStart bool
}

// Head is one rebuilt header block, handed to the emit callback.
type Head struct {
	Key Key
	Seq uint32 // sequence number of the block's first byte
	// Data is the header block including its final empty line, or what was
	// captured of it. It is borrowed: valid only during the callback, and
	// wiped afterwards because a request head may carry a token.
	Data []byte
	Time time.Time // time of the segment that carried the first byte
	TTL  uint8     // TTL of that segment
	// Truncated says bytes of the block are missing (cut by the capture, a
	// sequence gap, a close or an eviction); Data holds what was seen.
	Truncated bool
	// TooLarge says the block exceeded Config.MaxHeadBytes; Data holds the
	// first MaxHeadBytes bytes.
	TooLarge bool
	// The block parsed once, here, for its framing and for the consumer: a
	// Send head as Request, a Recv head as Response; ParseErr is the
	// parser's error (the fields then hold what it read before the error).
	Request  httpreq.Request
	Response httpreq.Response
	ParseErr error
}

// Config bounds the assembler. Zero fields take the documented defaults.
type Config struct {
	// MaxHeadBytes is the largest header block rebuilt; default httpreq.MaxHeadBytes.
	MaxHeadBytes int
	// OnToken, if set, receives the value of each complete
	// X-aws-ec2-metadata-token header while a request head is parsed (for a
	// redactor that scrubs it wherever it reappears); valid only during the
	// call.
	OnToken func(value []byte)
	// MaxPending is the number of out-of-order segments held per stream
	// before a gap is declared; default 16.
	MaxPending int
	// MaxStreamBytes bounds the bytes buffered per stream (head and
	// out-of-order segments); default 2*MaxHeadBytes (128 KiB).
	MaxStreamBytes int
	// MaxStreams bounds the number of streams; default 8192.
	MaxStreams int
	// MaxTotalBytes bounds the bytes buffered over all streams; default 8 MiB
	// (64 streams at MaxStreamBytes, or 128 heads of 64 KiB at once), and
	// never less than MaxStreamBytes.
	MaxTotalBytes int
}

func (c Config) withDefaults() Config {
	if c.MaxHeadBytes <= 0 {
		c.MaxHeadBytes = httpreq.MaxHeadBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 16
	}
	if c.MaxStreamBytes <= 0 {
		c.MaxStreamBytes = 2 * c.MaxHeadBytes
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 8192
	}
	if c.MaxTotalBytes <= 0 {
		c.MaxTotalBytes = 8 << 20
	}
	c.MaxTotalBytes = max(c.MaxTotalBytes, c.MaxStreamBytes)
	return c
}

// Stats counts what the assembler did.
type Stats struct {
	Streams    int    // streams held now
	Bytes      int    // bytes buffered now
	Evictions  uint64 // streams dropped to stay within MaxStreams/MaxTotalBytes
	Gaps       uint64 // sequence gaps declared (bytes never seen)
	Duplicates uint64 // segments entirely seen before (retransmits)
	TooLarge   uint64 // header blocks over MaxHeadBytes
}

// Assembler holds the streams. It is not safe for concurrent use.
type Assembler struct {
	cfg     Config
	streams map[Key]*stream
	lru     *list.List // of *stream, most recently used at the front
	bytes   int
	stats   Stats
}

// New returns an empty Assembler.
func New(cfg Config) *Assembler {
	return &Assembler{cfg: cfg.withDefaults(), streams: make(map[Key]*stream), lru: list.New()}
}

// Stats returns the counters and current usage.
func (a *Assembler) Stats() Stats {
	s := a.stats
	s.Streams = len(a.streams)
	s.Bytes = a.bytes
	return s
}

// Add feeds one segment of stream k and calls emit for every header block it
// completes.
func (a *Assembler) Add(k Key, seg Segment, emit func(Head)) {
	if seg.WireLen < uint32(len(seg.Data)) {
		seg.WireLen = uint32(len(seg.Data))
	}
	if seg.WireLen == 0 {
		return
	}
	s := a.streams[k]
	if s == nil {
		s = &stream{a: a, key: k, emit: emit}
		s.elem = a.lru.PushFront(s)
		a.streams[k] = s
	} else {
		a.lru.MoveToFront(s.elem)
	}
	s.emit = emit
	s.last = seg.Time
	s.add(seg)
	a.enforce(s)
}

// Flush declares every gap of stream k final and emits its partial head as
// Truncated. Call it when the other side answered although the request was
// not complete here: the missing bytes will not come. The stream stays, and
// resynchronises at the next segment that starts a head.
func (a *Assembler) Flush(k Key, emit func(Head)) {
	if s := a.streams[k]; s != nil {
		s.emit = emit
		s.flush()
	}
}

// Close flushes stream k like Flush and forgets it.
func (a *Assembler) Close(k Key, emit func(Head)) {
	if s := a.streams[k]; s != nil {
		s.emit = emit
		s.flush()
		a.drop(s)
	}
}

// Expire closes every stream with no segment since before.
func (a *Assembler) Expire(before time.Time, emit func(Head)) {
	for e := a.lru.Back(); e != nil; {
		s := e.Value.(*stream)
		e = e.Prev()
		if s.last.Before(before) {
			a.Close(s.key, emit)
		}
	}
}

// enforce evicts least recently used streams (never cur) until the bounds hold.
// An evicted stream's partial head is emitted as Truncated.
func (a *Assembler) enforce(cur *stream) {
	for len(a.streams) > a.cfg.MaxStreams || a.bytes > a.cfg.MaxTotalBytes {
		e := a.lru.Back()
		s := e.Value.(*stream)
		if s == cur {
			if e.Prev() == nil {
				return
			}
			s = e.Prev().Value.(*stream)
		}
		a.stats.Evictions++
		a.Close(s.key, s.emit)
	}
}

func (a *Assembler) drop(s *stream) {
	s.resetHead()
	for _, p := range s.pending {
		clear(p.Data)
	}
	a.bytes -= s.pendingBytes
	s.pending, s.pendingBytes = nil, 0
	a.lru.Remove(s.elem)
	delete(a.streams, s.key)
}

// looksLikeStart reports whether b can begin a head of direction d.
func looksLikeStart(d Dir, b []byte) bool {
	if d == Recv {
		return httpreq.LooksLikeResponseStart(b)
	}
	return httpreq.LooksLikeRequestStart(b)
}

// parse parses a head of direction d once, into h.
func (a *Assembler) parse(d Dir, h *Head) {
	if d == Send {
		h.Request, h.ParseErr = httpreq.ParseRequestToken(h.Data, a.cfg.OnToken)
		return
	}
	h.Response, h.ParseErr = httpreq.ParseResponse(h.Data)
}

// framing says what follows a complete, parsed head: a body of n bytes, a chunked
// body (followed chunk by chunk), or ok=false when it cannot be known from the head
// (until close, or unparsable), in which case the stream resynchronises at the next
// segment that starts a head.
func framing(d Dir, h *Head) (n uint64, chunked, ok bool) {
	if h.ParseErr != nil {
		return 0, false, false
	}
	if d == Send {
		if h.Request.Chunked {
			return 0, true, true
		}
		return uint64(max(h.Request.ContentLength, 0)), false, true
	}
	r := &h.Response
	switch {
	case r.Status < 200 || r.Status == 204 || r.Status == 304:
		return 0, false, true
	case r.Chunked:
		return 0, true, true
	case r.ContentLength >= 0:
		return uint64(r.ContentLength), false, true
	}
	return 0, false, false
}

// terminator finds the end of a header block (an empty line, CRLF or bare
// LF) in b, searching from "from"; it returns the block's length including the
// empty line, or -1.
func terminator(b []byte, from int) int {
	for i := max(from, 0); i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// insertPending keeps pending sorted by Seq relative to base, replacing a
// segment with the same Seq by the longer one.
func insertPending(p []Segment, base uint32, seg Segment) ([]Segment, int) {
	i, found := slices.BinarySearchFunc(p, seg, func(x, y Segment) int {
		return cmpSeq(x.Seq-base, y.Seq-base)
	})
	if found {
		if p[i].WireLen >= seg.WireLen && len(p[i].Data) >= len(seg.Data) {
			return p, 0
		}
		delta := len(seg.Data) - len(p[i].Data)
		clear(p[i].Data)
		p[i] = seg
		return p, delta
	}
	return slices.Insert(p, i, seg), len(seg.Data)
}

func cmpSeq(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// after reports whether sequence number a comes after b (modulo 2^32).
func after(a, b uint32) bool { return int32(a-b) > 0 }
