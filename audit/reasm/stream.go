package reasm

import (
	"bytes"
	"container/list"
	"time"
)

// maxWire bounds a segment's claimed length so that sequence arithmetic,
// which works modulo 2^32, stays meaningful (GSO packets reach 64 KiB, BIG TCP
// a few hundred KiB).
const maxWire = 1 << 24

type mode uint8

const (
	modeHead    mode = iota // at or inside a header block
	modeBody                // skipping bodyLeft body bytes
	modeChunked             // following a chunked body, chunk by chunk
	modeLost                // framing unknown: wait for a segment that starts a head
)

// chunkState is where a chunked body is: at a chunk-size line, inside a
// chunk's data, at the line break after it, or in the trailer.
type chunkState uint8

const (
	chunkSize chunkState = iota
	chunkData
	chunkDataEnd
	chunkTrailer
)

// maxChunkLine bounds a chunk-size or trailer line; a longer one loses the
// framing.
const maxChunkLine = 4096

// stream is one direction of one connection.
type stream struct {
	a    *Assembler
	key  Key
	emit func(Head)
	elem *list.Element
	last time.Time

	started bool
	next    uint32 // sequence number of the next byte to consume
	mode    mode
	// bodyLeft is the number of body bytes still to skip in modeBody, or of
	// the current chunk's data in modeChunked.
	bodyLeft uint64
	chunk    chunkState
	line     []byte // a chunk-size or trailer line read so far

	headActive bool // a head began at headSeq
	head       []byte
	headSeq    uint32
	headTime   time.Time
	headTTL    uint8

	pending      []Segment // out of order, sorted by Seq, Data owned
	pendingBytes int
}

func (s *stream) add(seg Segment) {
	seg.WireLen = min(seg.WireLen, maxWire)
	if !s.started && seg.AtStart {
		s.started, s.next, s.mode = true, seg.Seq, modeHead
	}
	if !s.started || after(seg.Seq, s.next) {
		s.hold(seg)
		if !s.started {
			if looksLikeStart(s.key.Dir, s.pending[0].Data) || s.overfull() {
				s.gap()
			}
			return
		}
		if s.overfull() {
			s.gap()
		}
		return
	}
	s.consume(seg)
	s.drain()
}

// hold keeps a copy of an out-of-order segment.
func (s *stream) hold(seg Segment) {
	seg.Data = bytes.Clone(seg.Data)
	base := s.next
	if !s.started && len(s.pending) > 0 {
		// Before the start is known, order around the first held segment.
		base = s.pending[0].Seq - 1<<31
	}
	var delta int
	s.pending, delta = insertPending(s.pending, base, seg)
	s.pendingBytes += delta
	s.a.bytes += delta
}

func (s *stream) overfull() bool {
	return len(s.pending) > s.a.cfg.MaxPending || s.pendingBytes+len(s.head) > s.a.cfg.MaxStreamBytes
}

// drain consumes held segments that are now in order.
func (s *stream) drain() {
	for len(s.pending) > 0 && !after(s.pending[0].Seq, s.next) {
		p := s.pending[0]
		s.pending = s.pending[1:]
		s.pendingBytes -= len(p.Data)
		s.a.bytes -= len(p.Data)
		s.consume(p)
		clear(p.Data)
	}
	if len(s.pending) == 0 {
		s.pending = nil
	}
}

// gap gives up waiting for the bytes before the first held segment.
func (s *stream) gap() {
	if len(s.pending) == 0 {
		return
	}
	first := s.pending[0]
	if !s.started {
		s.started, s.next, s.mode = true, first.Seq, modeLost
		if looksLikeStart(s.key.Dir, first.Data) {
			s.mode = modeHead
		}
		s.drain()
		return
	}
	s.a.stats.Gaps++
	missing := uint64(first.Seq - s.next)
	switch s.mode {
	case modeBody:
		// A gap inside a body costs nothing: the body is skipped anyway.
		switch {
		case missing < s.bodyLeft:
			s.bodyLeft -= missing
		case missing == s.bodyLeft:
			s.bodyLeft, s.mode, s.headActive = 0, modeHead, false
		default:
			s.bodyLeft, s.mode = 0, modeLost
		}
	case modeHead:
		if s.headActive {
			s.finishHead(len(s.head), true, false)
		} else {
			// A head began inside the gap: report it so that answers
			// stay paired with requests, though nothing of it was seen.
			s.emitHead(Head{Seq: s.next, Time: first.Time, TTL: first.TTL, Truncated: true})
		}
		s.mode = modeLost
	case modeChunked:
		// Chunk framing cannot be followed across missing bytes.
		s.mode = modeLost
	}
	s.next = first.Seq
	s.drain()
}

// flush declares every gap final and ends a partial head.
func (s *stream) flush() {
	for len(s.pending) > 0 {
		s.gap()
	}
	if s.headActive {
		s.finishHead(len(s.head), true, false)
		s.mode = modeLost
	}
}

// consume processes an in-order segment (it may overlap bytes already seen).
func (s *stream) consume(seg Segment) {
	end := seg.Seq + seg.WireLen
	if !after(end, s.next) {
		s.a.stats.Duplicates++
		return
	}
	capEnd := seg.Seq + uint32(len(seg.Data))
	pos := s.next
	for after(end, pos) {
		switch s.mode {
		case modeBody:
			n := uint32(min(uint64(end-pos), s.bodyLeft))
			pos += n
			s.bodyLeft -= uint64(n)
			if s.bodyLeft == 0 {
				s.mode, s.headActive = modeHead, false
			}
		case modeLost:
			if pos == seg.Seq && looksLikeStart(s.key.Dir, seg.Data) {
				s.mode, s.headActive = modeHead, false
				continue
			}
			pos = end
		case modeChunked:
			pos = s.consumeChunked(seg, pos, end, capEnd)
		case modeHead:
			pos = s.consumeHead(seg, pos, end, capEnd)
		}
	}
	s.next = end
}

// consumeHead adds the bytes of seg from pos to the current head and returns
// the position where processing continues.
func (s *stream) consumeHead(seg Segment, pos, end, capEnd uint32) uint32 {
	if !after(capEnd, pos) {
		// The capture stopped before pos: the head is cut short here.
		if s.headActive {
			s.finishHead(len(s.head), true, false)
		} else {
			s.emitHead(Head{Seq: pos, Time: seg.Time, TTL: seg.TTL, Truncated: true})
		}
		s.mode = modeLost
		return end
	}
	b := seg.Data[pos-seg.Seq:]
	if !s.headActive {
		if !looksLikeStart(s.key.Dir, b) {
			if s.key.Dir == Send {
				// Where a request must begin, something else was sent: a request all
				// the same (IMDS answers it, with 400), counted as one that is not HTTP.
				n := len(b)
				if t := terminator(b, 0); t >= 0 {
					n = t
				}
				s.emitHead(Head{Seq: pos, Data: b[:min(n, s.a.cfg.MaxHeadBytes)], Time: seg.Time, TTL: seg.TTL})
			}
			s.mode = modeLost
			return end
		}
		s.headActive, s.headSeq, s.headTime, s.headTTL = true, pos, seg.Time, seg.TTL
	}
	old := len(s.head)
	n := min(len(b), s.a.cfg.MaxHeadBytes-old)
	s.head = append(s.head, b[:n]...)
	s.a.bytes += n
	if t := terminator(s.head, old-3); t >= 0 {
		body, chunked, known := s.finishHead(t, false, false)
		switch {
		case !known:
			s.mode = modeLost
			return end
		case chunked:
			s.mode, s.chunk, s.line = modeChunked, chunkSize, s.line[:0]
		case body > 0:
			s.mode, s.bodyLeft = modeBody, body
		}
		return pos + uint32(t-old)
	}
	if len(s.head) >= s.a.cfg.MaxHeadBytes {
		s.a.stats.TooLarge++
		s.finishHead(len(s.head), false, true)
		s.mode = modeLost
		return end
	}
	return pos + uint32(n)
}

// finishHead parses the first n bytes of the current head, emits them and resets
// the head; it returns the framing of what follows (see framing).
func (s *stream) finishHead(n int, truncated, tooLarge bool) (body uint64, chunked, known bool) {
	h := Head{Seq: s.headSeq, Data: s.head[:n], Time: s.headTime, TTL: s.headTTL,
		Truncated: truncated, TooLarge: tooLarge}
	s.a.parse(s.key.Dir, &h)
	body, chunked, known = framing(s.key.Dir, &h)
	s.emitHead(h)
	s.resetHead()
	return body, chunked, known
}

// emitHead hands h to the consumer, parsed (heads that finishHead did not
// parse are parsed here), so every head reaches the consumer parsed once.
func (s *stream) emitHead(h Head) {
	h.Key = s.key
	if h.Request.Method == "" && h.Response.Status == 0 && h.ParseErr == nil {
		s.a.parse(s.key.Dir, &h)
	}
	if s.emit != nil {
		s.emit(h)
	}
}

// consumeChunked follows a chunked body from pos: chunk-size lines and trailers
// are read from the captured bytes, chunk data is skipped by sequence
// arithmetic. It returns the position where processing continues; at the end
// of the body the stream is back at a head.
func (s *stream) consumeChunked(seg Segment, pos, end, capEnd uint32) uint32 {
	for after(end, pos) {
		if s.chunk == chunkData {
			n := uint32(min(uint64(end-pos), s.bodyLeft))
			pos += n
			if s.bodyLeft -= uint64(n); s.bodyLeft == 0 {
				s.chunk, s.line = chunkDataEnd, s.line[:0]
			}
			continue
		}
		// A line: it must have been captured.
		if !after(capEnd, pos) {
			s.mode = modeLost
			return end
		}
		b := seg.Data[pos-seg.Seq : min(capEnd, end)-seg.Seq]
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(s.line)+len(b) > maxChunkLine {
				s.mode = modeLost
				return end
			}
			s.line = append(s.line, b...)
			pos += uint32(len(b))
			continue
		}
		s.line = append(s.line, b[:i]...)
		pos += uint32(i + 1)
		line := bytes.TrimSuffix(s.line, []byte{'\r'})
		switch s.chunk {
		case chunkSize:
			size, ok := chunkSizeOf(line)
			switch {
			case !ok:
				s.mode = modeLost
				return end
			case size == 0:
				s.chunk = chunkTrailer
			default:
				s.chunk, s.bodyLeft = chunkData, size
			}
		case chunkDataEnd:
			if len(line) != 0 {
				s.mode = modeLost
				return end
			}
			s.chunk = chunkSize
		case chunkTrailer:
			if len(line) == 0 {
				s.mode, s.headActive, s.line = modeHead, false, s.line[:0]
				return pos
			}
		}
		s.line = s.line[:0]
	}
	return pos
}

// chunkSizeOf parses a chunk-size line: hex digits, then optional extensions
// after ';'.
func chunkSizeOf(line []byte) (uint64, bool) {
	hex, _, _ := bytes.Cut(line, []byte{';'})
	hex = bytes.TrimRight(hex, " \t")
	if len(hex) == 0 || len(hex) > 15 {
		return 0, false
	}
	var n uint64
	for _, c := range hex {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uint64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// resetHead wipes the head buffer: a request head may hold a token.
func (s *stream) resetHead() {
	clear(s.head)
	s.a.bytes -= len(s.head)
	if cap(s.head) > 4096 {
		s.head = nil
	} else {
		s.head = s.head[:0]
	}
	s.headActive = false
}
