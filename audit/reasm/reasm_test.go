package reasm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// collector records copies of emitted heads.
type collector struct{ heads []Head }

func (c *collector) emit(h Head) {
	h.Data = bytes.Clone(h.Data)
	c.heads = append(c.heads, h)
}

func (c *collector) strings() []string {
	var out []string
	for _, h := range c.heads {
		s := string(h.Data)
		if h.Truncated {
			s += "<truncated>"
		}
		if h.TooLarge {
			s += "<too large>"
		}
		out = append(out, s)
	}
	return out
}

func seg(seq uint32, data string) Segment {
	return Segment{Seq: seq, Data: []byte(data), Time: t0}
}

const (
	get1 = "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
	get2 = "GET /latest/meta-data/instance-id HTTP/1.1\r\nX-aws-ec2-metadata-token: T\r\n\r\n"
	put1 = "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 4\r\n\r\n"
)

func run(t *testing.T, cfg Config, dir Dir, segs []Segment, want ...string) *Assembler {
	t.Helper()
	a := New(cfg)
	var c collector
	for _, s := range segs {
		a.Add(Key{Cookie: 7, Dir: dir}, s, c.emit)
	}
	got := c.strings()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("heads:\n got %q\nwant %q", got, want)
	}
	return a
}

func TestInOrder(t *testing.T) {
	run(t, Config{}, Send, []Segment{seg(100, get1)}, get1)
}

func TestPieces(t *testing.T) {
	var segs []Segment
	for i := 0; i < len(get1); i++ {
		segs = append(segs, seg(uint32(1000+i), get1[i:i+1]))
	}
	run(t, Config{}, Send, segs, get1)
}

func TestRetransmitsAndOverlaps(t *testing.T) {
	run(t, Config{}, Send, []Segment{
		seg(10, get1[:20]),
		seg(10, get1[:20]),   // duplicate
		seg(15, get1[5:30]),  // overlaps
		seg(10, get1[:30]),   // duplicate of both
		seg(40, get1[30:]),   // out of order
		seg(30, get1[20:35]), // fills the hole, overlaps the held one
		seg(40, get1[30:]),   // late duplicate
		seg(uint32(10+len(get1)), get2),
	}, get1, get2)
}

func TestOutOfOrderStart(t *testing.T) {
	// The second half arrives first: it does not start a request, so it
	// waits for the first half.
	run(t, Config{}, Send, []Segment{seg(20, get1[10:]), seg(10, get1[:10])}, get1)
}

func TestPipelinedWithBodies(t *testing.T) {
	stream := put1 + "BODY" + get1 + get2
	run(t, Config{}, Send, []Segment{seg(5, stream[:50]), seg(55, stream[50:])}, put1, get1, get2)
}

func TestKeepAliveResponses(t *testing.T) {
	r1 := "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	r2 := "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
	r3 := "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n"
	// The first body holds text that would look like a response: it must be skipped.
	stream := r1 + "HTTP/1.1 x" + r2 + r3 + "gone!"
	run(t, Config{}, Recv, []Segment{seg(1, stream[:len(r1)+3]), seg(uint32(1+len(r1)+3), stream[len(r1)+3:])}, r1, r2, r3)
}

func TestCaptureTruncation(t *testing.T) {
	// Only 20 bytes of the first request were captured; the next request
	// starts a new segment and is found again.
	s1 := Segment{Seq: 1, Data: []byte(get1[:20]), WireLen: uint32(len(get1)), Time: t0}
	run(t, Config{}, Send, []Segment{s1, seg(uint32(1+len(get1)), get2)}, get1[:20]+"<truncated>", get2)
}

func TestUncapturedPipelinedHeadIsReported(t *testing.T) {
	both := get1 + get2
	s1 := Segment{Seq: 1, Data: []byte(get1), WireLen: uint32(len(both)), Time: t0}
	run(t, Config{}, Send, []Segment{s1}, get1, "<truncated>")
}

func TestGapDeclaredWhenTooMuchIsHeld(t *testing.T) {
	cfg := Config{MaxPending: 2}
	next := uint32(1 + len(get1))
	run(t, cfg, Send, []Segment{
		seg(1, get1[:10]),                           // the rest of get1 never comes
		seg(next, get2),                             // held
		seg(next+uint32(len(get2)), get1),           // held
		seg(next+uint32(len(get2)+len(get1)), get2), // third held: gap
	}, get1[:10]+"<truncated>", get2, get1, get2)
}

func TestFlushAndClose(t *testing.T) {
	a := New(Config{})
	var c collector
	k := Key{Cookie: 1}
	a.Add(k, seg(1, get1[:15]), c.emit)
	a.Add(k, seg(30, get1[29:]), c.emit)
	a.Flush(k, c.emit)
	if got := c.strings(); len(got) != 1 || got[0] != get1[:15]+"<truncated>" {
		t.Fatalf("flush: %q", got)
	}
	a.Add(k, seg(uint32(1+len(get1)), get2), c.emit)
	a.Add(k, seg(uint32(1+len(get1)+len(get2)), get1[:12]), c.emit)
	a.Close(k, c.emit)
	want := []string{get1[:15] + "<truncated>", get2, get1[:12] + "<truncated>"}
	if got := c.strings(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("close: %q", got)
	}
	if st := a.Stats(); st.Streams != 0 || st.Bytes != 0 || st.Gaps != 1 {
		t.Fatalf("stats after close: %+v", st)
	}
}

func TestExpire(t *testing.T) {
	a := New(Config{})
	var c collector
	a.Add(Key{Cookie: 1}, Segment{Seq: 1, Data: []byte("GET /"), Time: t0}, c.emit)
	a.Add(Key{Cookie: 2}, Segment{Seq: 1, Data: []byte("GET /"), Time: t0.Add(time.Minute)}, c.emit)
	a.Expire(t0.Add(time.Second), c.emit)
	if st := a.Stats(); st.Streams != 1 || len(c.heads) != 1 || c.heads[0].Key.Cookie != 1 {
		t.Fatalf("stats %+v heads %q", st, c.strings())
	}
}

func TestChunkedBodyIsFollowed(t *testing.T) {
	r1 := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	r2 := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	body := "4\r\nabcd\r\n0\r\n\r\n"
	next := uint32(1 + len(r1))
	run(t, Config{}, Recv, []Segment{seg(1, r1), seg(next, body), seg(next+uint32(len(body)), r2)}, r1, r2)
}

// A request pipelined behind a request with a chunked body, in one write or split
// anywhere, is found: the chunks are followed (sizes in hex, extensions, a trailer).
func TestPipelinedBehindChunkedBody(t *testing.T) {
	post := "POST /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	body := "1A;ext=1\r\n" + strings.Repeat("b", 26) + "\r\n3\r\n\r\n\n\r\n0\r\nX-Trailer: 1\r\n\r\n"
	get := "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n"
	all := post + body + get
	run(t, Config{}, Send, []Segment{seg(1, all)}, post, get)
	for split := 1; split < len(all); split++ {
		run(t, Config{}, Send, []Segment{seg(1, all[:split]), seg(uint32(1+split), all[split:])}, post, get)
	}
	// A chunk whose data was not captured is skipped by arithmetic; a size line that
	// was not captured loses the framing until the next head.
	cut := Segment{Seq: 1, Data: []byte(post + "1A\r\nbb"), WireLen: uint32(len(post + body))}
	run(t, Config{}, Send, []Segment{cut, seg(uint32(1+len(post+body)), get)}, post, get)
	// Malformed chunk sizes lose the framing, never a later head that starts a segment.
	bad := post + "zz\r\n"
	run(t, Config{}, Send, []Segment{seg(1, bad), seg(uint32(1+len(bad)), get)}, post, get)
}

func TestTooLarge(t *testing.T) {
	big := "GET / HTTP/1.1\r\nA: " + strings.Repeat("x", 200) + "\r\n\r\n"
	a := run(t, Config{MaxHeadBytes: 64}, Send, []Segment{seg(1, big), seg(uint32(1+len(big)), get1)},
		big[:64]+"<too large>", get1)
	if a.Stats().TooLarge != 1 {
		t.Fatal("TooLarge not counted")
	}
}

func TestEvictionBounds(t *testing.T) {
	a := New(Config{MaxStreams: 3, MaxHeadBytes: 64, MaxTotalBytes: 200})
	var c collector
	for i := range 10 {
		a.Add(Key{Cookie: uint64(i)}, seg(1, "GET /partial-request-line"), c.emit)
		if st := a.Stats(); st.Streams > 3 || st.Bytes > 200 {
			t.Fatalf("bounds exceeded: %+v", st)
		}
	}
	if st := a.Stats(); st.Evictions != 7 {
		t.Fatalf("evictions: %+v", st)
	}
	// Total bytes bound with few streams.
	a = New(Config{MaxHeadBytes: 64, MaxStreamBytes: 100, MaxTotalBytes: 100})
	for i := range 4 {
		a.Add(Key{Cookie: uint64(i)}, seg(1, "GET /"+strings.Repeat("a", 40)), c.emit)
	}
	if st := a.Stats(); st.Bytes > 100 || st.Evictions != 2 {
		t.Fatalf("total bound: %+v", st)
	}
}

func TestSequenceWraps(t *testing.T) {
	start := uint32(1<<32 - 10)
	run(t, Config{}, Send, []Segment{seg(start, get1[:10]), seg(start+20, get1[20:]), seg(start+10, get1[10:20])}, get1)
}

func TestHeadMetadataAndWipe(t *testing.T) {
	a := New(Config{})
	var seen []byte
	var got Head
	r := "HTTP/1.1 200 OK\r\n\r\n"
	a.Add(Key{Cookie: 3, Dir: Recv}, Segment{Seq: 9, Data: []byte(r[:5]), Time: t0, TTL: 1}, nil)
	a.Add(Key{Cookie: 3, Dir: Recv}, Segment{Seq: 14, Data: []byte(r[5:]), Time: t0.Add(time.Second), TTL: 2},
		func(h Head) { got, seen = h, h.Data })
	if got.TTL != 1 || !got.Time.Equal(t0) || got.Seq != 9 || got.Key.Dir != Recv {
		t.Fatalf("head meta: %+v", got)
	}
	if strings.Trim(string(seen), "\x00") != "" {
		t.Fatalf("head bytes not wiped after emit: %q", seen)
	}
}

func TestGarbageIsSkipped(t *testing.T) {
	run(t, Config{MaxPending: 1}, Send, []Segment{
		seg(1, "\x16\x03\x01 tls hello"), seg(16, "more"), seg(20, "x"), seg(21, get1),
	}, get1)
}

// largeHead returns a tokenless request head of exactly size bytes (size >= 100): the
// request line, then tracing header fields of up to 1000 bytes.
func largeHead(size int) string {
	var b strings.Builder
	b.WriteString("GET /latest/meta-data/iam/security-credentials/role HTTP/1.1\r\n")
	for b.Len() < size-2 {
		n := min(1000, size-2-b.Len()-len("baggage: \r\n"))
		if n < 1 {
			// No room for another field: the block's size is off by a few bytes.
			panic("largeHead: size does not fit")
		}
		b.WriteString("baggage: " + strings.Repeat("v", n) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// records splits payload [from, to) of a stream starting at seq 1 the way the kernel reports
// a packet: records of at most 2 KiB, each with the sequence number of its first byte.
func records(s string, from, to int) []Segment {
	var out []Segment
	for off := from; off < to; off += 2048 {
		end := min(off+2048, to)
		out = append(out, seg(uint32(1+off), s[off:end]))
	}
	return out
}

// TestLargeHeadStitched: header blocks up to 64 KiB come out whole, however they were cut:
// one GSO packet in 2 KiB records, two packets, many small writes, small writes out of order
// and retransmitted.
func TestLargeHeadStitched(t *testing.T) {
	for _, size := range []int{3 << 10, 20 << 10, 60 << 10, 64 << 10} {
		h := largeHead(size)
		if len(h) != size {
			t.Fatalf("largeHead(%d) made %d bytes", size, len(h))
		}
		cuts := map[string][]Segment{
			"one packet":  records(h, 0, len(h)),
			"two packets": append(records(h, 0, len(h)/3), records(h, len(h)/3, len(h))...),
		}
		var small, shuffled []Segment
		for off := 0; off < len(h); off += 100 {
			small = append(small, seg(uint32(1+off), h[off:min(off+100, len(h))]))
		}
		// Pairs swapped, and every tenth segment sent twice (a retransmit).
		for i := 0; i < len(small); i += 2 {
			if i+1 < len(small) {
				shuffled = append(shuffled, small[i+1])
			}
			shuffled = append(shuffled, small[i])
			if i%10 == 0 {
				shuffled = append(shuffled, small[i])
			}
		}
		cuts["small writes"], cuts["small writes out of order"] = small, shuffled
		for name, segs := range cuts {
			t.Run(fmt.Sprintf("%d %s", size, name), func(t *testing.T) {
				a := run(t, Config{}, Send, append(segs, seg(uint32(1+len(h)), get1)), h, get1)
				if st := a.Stats(); st.Gaps != 0 || st.TooLarge != 0 || st.Evictions != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// TestLargeHeadOverLimit: a block over MaxHeadBytes (100 KiB) is handed over as its first
// MaxHeadBytes bytes, TooLarge; the next request on the connection is found again.
func TestLargeHeadOverLimit(t *testing.T) {
	h := largeHead(100 << 10)
	segs := append(records(h, 0, 64<<10), records(h, 64<<10, len(h))...)
	a := run(t, Config{}, Send, append(segs, seg(uint32(1+len(h)), get1)), h[:64<<10]+"<too large>", get1)
	if a.Stats().TooLarge != 1 {
		t.Fatalf("stats %+v", a.Stats())
	}
}

// TestLargeHeadCaptureShort: when the kernel kept fewer bytes than the packet had (the last
// record of a packet stands for the rest of it), the head is Truncated at the first missing byte.
func TestLargeHeadCaptureShort(t *testing.T) {
	h := largeHead(20 << 10)
	segs := records(h, 0, 4096)
	last := seg(4097, h[4096:4200])
	last.WireLen = uint32(len(h) - 4096)
	run(t, Config{}, Send, append(segs, last, seg(uint32(1+len(h)), get1)), h[:4200]+"<truncated>", get1)
}

// TestEvictionReportsPartialHead: a stream evicted to keep within the bounds hands over its
// partial head as Truncated, so the request is reported (as unclassifiable) and not lost.
func TestEvictionReportsPartialHead(t *testing.T) {
	a := New(Config{MaxStreams: 1})
	var c collector
	a.Add(Key{Cookie: 1}, seg(1, get1[:20]), c.emit)
	a.Add(Key{Cookie: 2}, seg(1, get2), c.emit)
	// Stream 2's head completes first; stream 1 is evicted after it, to make room.
	if got := c.strings(); len(got) != 2 || got[0] != get2 || got[1] != get1[:20]+"<truncated>" {
		t.Fatalf("heads %q", got)
	}
	if st := a.Stats(); st.Evictions != 1 || st.Streams != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDefaultBounds: the defaults let a 64 KiB head and a stream's worth of out-of-order
// segments through, and stay bounded.
func TestDefaultBounds(t *testing.T) {
	c := Config{}.withDefaults()
	if c.MaxHeadBytes < 64<<10 || c.MaxStreamBytes < 2*c.MaxHeadBytes || c.MaxTotalBytes < 64*c.MaxStreamBytes ||
		c.MaxTotalBytes > 64<<20 {
		t.Fatalf("defaults %+v", c)
	}
}
