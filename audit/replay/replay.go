// Package replay builds sequences of audit.Event by hand, the way the kernel
// side would report them, and replays them as an audit.Source. Tests use it
// to feed the auditor recorded sessions without root or BPF.
//
//	r := replay.New(start)
//	p := replay.Proc{PID: 100, PPID: 1, Comm: "curl"}
//	r.Exec(p, "/usr/bin/curl", "curl", "http://169.254.169.254/latest/meta-data/")
//	c := r.Connect(p)
//	c.Send(replay.GetV1("/latest/meta-data/", "curl/8.5.0"))
//	r.Advance(time.Millisecond)
//	c.Recv(replay.Answer(200, 10), 64)
//	c.Close()
//	err := auditor.Run(ctx, r.Source())
package replay

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// FakeToken is the token value the request builders send. It looks like a
// real one (base64, "AQAE" prefix) so that tests can check it never leaks.
const FakeToken = "AQAEAFakeTokenValueThatMustNeverAppearInAnyOutput0123456789abcdef=="

// Proc is the identity the kernel side attaches to events.
type Proc struct {
	PID, PPID, UID, GID uint32
	Comm                string
	CgroupID            uint64
	// Start and ParentStart go into its exec events (audit.Event.Start, ParentStart: time
	// after boot); 0: not known, as from a source that does not tell.
	Start, ParentStart time.Duration
}

// Recorder accumulates events with a clock moved by hand.
type Recorder struct {
	now    time.Time
	events []audit.Event
	cookie uint64
	port   uint16
}

// New returns a Recorder whose clock starts at start.
func New(start time.Time) *Recorder {
	return &Recorder{now: start, cookie: 1000, port: 40000}
}

// Now returns the recorder's clock.
func (r *Recorder) Now() time.Time { return r.now }

// Advance moves the clock.
func (r *Recorder) Advance(d time.Duration) { r.now = r.now.Add(d) }

// Events returns the events so far.
func (r *Recorder) Events() []audit.Event { return r.events }

// Source returns a Source that replays the events so far.
func (r *Recorder) Source() *Source { return NewSource(r.events) }

// Add appends a hand-made event, stamped with the clock if it has no time.
func (r *Recorder) Add(ev audit.Event) {
	if ev.Time.IsZero() {
		ev.Time = r.now
	}
	r.events = append(r.events, ev)
}

func (r *Recorder) proc(kind audit.EventKind, p Proc) audit.Event {
	return audit.Event{Kind: kind, Time: r.now, PID: p.PID, TID: p.PID, PPID: p.PPID, UID: p.UID, GID: p.GID,
		Comm: p.Comm, CgroupID: p.CgroupID}
}

// Exec records that p executed exe with argv args.
func (r *Recorder) Exec(p Proc, exe string, args ...string) {
	ev := r.proc(audit.EventExec, p)
	ev.Exe, ev.Args = exe, args
	ev.Start, ev.ParentStart = p.Start, p.ParentStart
	r.Add(ev)
}

// Exit records that p exited.
func (r *Recorder) Exit(p Proc) { r.Add(r.proc(audit.EventExit, p)) }

// Lost records that the kernel side dropped n records.
func (r *Recorder) Lost(n uint64) { r.Add(audit.Event{Kind: audit.EventLost, Lost: n}) }

// Connect records a connection from p to IMDS (IPv4, port 80).
func (r *Recorder) Connect(p Proc) *Conn {
	c := r.conn(p)
	ev := r.proc(audit.EventConnect, p)
	ev.Cookie, ev.Local, ev.Remote = c.Cookie, c.Local, c.Remote
	r.Add(ev)
	return c
}

// Preexisting returns a connection whose connect was not seen (opened
// before the agent started).
func (r *Recorder) Preexisting(p Proc) *Conn { return r.conn(p) }

func (r *Recorder) conn(p Proc) *Conn {
	r.cookie++
	r.port++
	return &Conn{r: r, p: p, Cookie: r.cookie,
		Local:  netip.AddrPortFrom(netip.MustParseAddr("10.0.0.5"), r.port),
		Remote: imdsfacts.AddrPortV4,
		// Arbitrary initial sequence numbers, one close to wrapping.
		sendSeq: uint32(r.cookie) * 7919, recvSeq: 1<<32 - 100}
}

// Conn is one recorded connection.
type Conn struct {
	r             *Recorder
	p             Proc
	Cookie        uint64
	Local, Remote netip.AddrPort
	sendSeq       uint32
	recvSeq       uint32
}

// SendSeq is the sequence number of the next byte Send will write.
func (c *Conn) SendSeq() uint32 { return c.sendSeq }

// Send records data leaving in one segment.
func (c *Conn) Send(data string) { c.SendPieces(data, len(data)) }

// SendPieces records data leaving in segments of the given sizes (the
// last size repeats until the data is sent).
func (c *Conn) SendPieces(data string, sizes ...int) {
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(data))
		if n <= 0 {
			panic(fmt.Sprintf("replay: segment size %d", n))
		}
		c.SendSegment(c.sendSeq, data[:n], uint32(n))
		c.sendSeq += uint32(n)
		data = data[n:]
	}
}

// SendSegment records one outgoing segment as given (retransmits, overlaps,
// captures shorter than wireLen) without moving SendSeq.
func (c *Conn) SendSegment(seq uint32, data string, wireLen uint32) {
	c.segment(audit.EventSend, seq, data, wireLen, 0)
}

// Skip moves SendSeq over n bytes that are never recorded (a lost segment).
func (c *Conn) Skip(n int) { c.sendSeq += uint32(n) }

// Recv records an answer segment that arrived with IP TTL ttl.
func (c *Conn) Recv(data string, ttl uint8) {
	c.segment(audit.EventRecv, c.recvSeq, data, uint32(len(data)), ttl)
	c.recvSeq += uint32(len(data))
}

func (c *Conn) segment(kind audit.EventKind, seq uint32, data string, wireLen uint32, ttl uint8) {
	ev := c.r.proc(kind, c.p)
	ev.Cookie, ev.Local, ev.Remote = c.Cookie, c.Local, c.Remote
	ev.Seq, ev.Data, ev.DataLen, ev.TTL = seq, []byte(data), wireLen, ttl
	c.r.Add(ev)
}

// Close records that the socket was released.
func (c *Conn) Close() {
	ev := c.r.proc(audit.EventClose, c.p)
	ev.Cookie = c.Cookie
	c.r.Add(ev)
}

// Source replays a fixed list of events, then returns io.EOF.
type Source struct {
	events []audit.Event
	i      int
}

// NewSource returns a Source over events.
func NewSource(events []audit.Event) *Source { return &Source{events: events} }

// Next returns the next event, io.EOF at the end, or ctx's error.
func (s *Source) Next(ctx context.Context) (audit.Event, error) {
	if err := ctx.Err(); err != nil {
		return audit.Event{}, err
	}
	if s.i >= len(s.events) {
		return audit.Event{}, io.EOF
	}
	s.i++
	return s.events[s.i-1], nil
}

// GetV1 returns an IMDSv1 request head (no token header).
func GetV1(path, userAgent string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + imdsfacts.IPv4 + "\r\nUser-Agent: " + userAgent + "\r\nAccept: */*\r\n\r\n"
}

// GetV2 returns an IMDSv2 request head carrying FakeToken.
func GetV2(path, userAgent string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + imdsfacts.IPv4 + "\r\nUser-Agent: " + userAgent +
		"\r\nX-aws-ec2-metadata-token: " + FakeToken + "\r\n\r\n"
}

// TokenPUT returns a token request head asking for ttl seconds.
func TokenPUT(ttl int, userAgent string) string {
	return fmt.Sprintf("PUT /latest/api/token HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"+
		"X-aws-ec2-metadata-token-ttl-seconds: %d\r\nContent-Length: 0\r\n\r\n", imdsfacts.IPv4, userAgent, ttl)
}

// Answer returns an answer head with a body of bodyLen bytes after it. The
// body of a 200 to a token PUT is FakeToken (cut or padded to bodyLen), so
// that tests can check bodies are never kept.
func Answer(status, bodyLen int) string {
	body := FakeToken
	for len(body) < bodyLen {
		body += "x"
	}
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: %d\r\nServer: EC2ws\r\n\r\n%s",
		status, statusText(status), bodyLen, body[:bodyLen])
}

func statusText(s int) string {
	switch s {
	case 200:
		return "OK"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	}
	return "Status"
}
