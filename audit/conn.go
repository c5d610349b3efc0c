package audit

import (
	"net/netip"
	"time"

	"github.com/imdsv2/imdsv2/audit/httpreq"
	"github.com/imdsv2/imdsv2/audit/reasm"
	"github.com/imdsv2/imdsv2/audit/sdk"
)

// maxQueued bounds the requests awaiting answers on one connection
// (pipelining); beyond it the oldest is resolved without an answer.
const maxQueued = 64

// conn is one tracked socket.
type conn struct {
	cookie        uint64
	id            identity
	local, remote netip.AddrPort
	last          time.Time
	queue         []*Record // requests awaiting their answers, oldest first
	proc          *Process  // attribution, made at the first request
	// payloadSeen says, per direction (reasm.Send, reasm.Recv), that payload was seen.
	payloadSeen [2]bool
}

// getConn returns the connection of ev, creating it. A connection first seen
// through its payload was opened before the auditor saw it.
func (a *Auditor) getConn(ev Event, t time.Time, connect bool) *conn {
	c := a.conns[ev.Cookie]
	if c == nil {
		if len(a.conns) >= a.opts.MaxConnections {
			a.dropIdlest(t)
		}
		c = &conn{cookie: ev.Cookie, id: eventIdentity(ev)}
		c.id.preexisting = !connect
		a.conns[ev.Cookie] = c
	}
	if ev.Remote.IsValid() {
		c.remote = ev.Remote
	}
	if ev.Local.IsValid() {
		c.local = ev.Local
	}
	c.last = t
	return c
}

func (a *Auditor) dropIdlest(t time.Time) {
	var idlest *conn
	for _, c := range a.conns {
		if idlest == nil || c.last.Before(idlest.last) {
			idlest = c
		}
	}
	if idlest != nil {
		a.closeConn(idlest.cookie, t)
	}
}

func (a *Auditor) connect(ev Event, t time.Time) {
	if ev.Cookie == 0 {
		return
	}
	c := a.getConn(ev, t, true)
	// A connect after payload (events reordered) still names the owner.
	c.id = eventIdentity(ev)
}

func (a *Auditor) payload(ev Event, t time.Time) {
	if ev.Cookie == 0 {
		return
	}
	c := a.getConn(ev, t, false)
	dir := reasm.Send
	if ev.Kind == EventRecv {
		dir = reasm.Recv
	}
	// A connection seen from its connect starts each direction at a head.
	atStart := !c.id.preexisting && !c.payloadSeen[dir]
	c.payloadSeen[dir] = true
	seg := reasm.Segment{Seq: ev.Seq, Data: ev.Data, WireLen: ev.DataLen, Time: t, TTL: ev.TTL, AtStart: atStart}
	a.asm.Add(reasm.Key{Cookie: ev.Cookie, Dir: dir}, seg, func(h reasm.Head) { a.onHead(c, h) })
}

func (a *Auditor) onHead(c *conn, h reasm.Head) {
	t := h.Time
	if t.IsZero() {
		t = a.clock.Now().UTC()
	}
	if h.Key.Dir == reasm.Send {
		a.onRequest(c, h, t)
	} else {
		a.onAnswer(c, h, t)
	}
}

// onRequest parses, classifies and attributes a request head and queues it
// for its answer. The head bytes are not kept: they may hold a token.
func (a *Auditor) onRequest(c *conn, h reasm.Head, t time.Time) {
	req, err := &h.Request, h.ParseErr // parsed once, by the reassembler
	cl := httpreq.Classify(req)
	if err != nil && req.Method == "" {
		cl = httpreq.Classification{Class: ClassIncomplete}
		if !h.Truncated && len(h.Data) > 0 {
			cl.Class = ClassOther // complete but not HTTP
		}
	}
	r := &Record{Type: RecordRequest, Time: t, Class: cl.Class, Cloud: cl.Cloud,
		Method: clean(req.Method, 16), Path: clean(redactText(req.Path, a.known), maxPathBytes), Remote: remoteString(c.remote),
		UserAgent: clean(redactText(req.UserAgent, a.known), maxUABytes), Forwarded: req.Forwarded,
		Incomplete: h.Truncated || h.TooLarge || (req.Method != "" && !req.Complete), Cookie: c.cookie}
	r.tokenSent = req.HasToken
	if req.TokenTTL > 0 {
		r.TokenTTL = req.TokenTTL
	}
	if c.proc == nil {
		p := a.attribute(c.id, c.local, c.remote, t)
		c.proc = &p
		if c.id.pid == 0 {
			// Found from /proc (a connection older than the agent): the pid now names the
			// connection's owner for process exits and unanswered PUTs too.
			c.id.pid = p.PID
		}
	}
	r.Process = *c.proc
	if r.Method != "" {
		// Without a User-Agent the header shape and the executable name the client.
		shape := sdk.Shape{Method: r.Method, Proto: clean(req.Proto, 8), Headers: clean(redactText(req.Headers, a.known), httpreq.MaxShapeBytes),
			TokenTTL: req.TokenTTL, Connection: clean(redactText(req.Connection, a.known), httpreq.MaxShapeValueBytes),
			Accept: clean(redactText(req.Accept, a.known), httpreq.MaxShapeValueBytes)}
		info := sdk.IdentifyRequest(r.UserAgent, shape, sdk.Sender{Exe: r.Process.Exe, Comm: r.Process.Comm})
		r.SDK = &info
	}
	if cl.Class == ClassIMDSv1 && a.pendingPUTs(c.id.pid, t) {
		// The process gave up waiting for a token and asks without one.
		r.AfterUnansweredPUT = true
	}
	if len(c.queue) >= maxQueued {
		a.resolve(c, c.queue[0], false)
		c.queue = c.queue[1:]
	}
	c.queue = append(c.queue, r)
}

// pendingPUTs says whether pid has a token PUT that has waited for its answer
// at least fallbackMinWait at t, on any connection, or had one go unanswered
// recently: an IMDSv1 request of pid now is an SDK falling back. The PUT
// stays pending: an answer that still comes makes it slow, not unanswered.
func (a *Auditor) pendingPUTs(pid uint32, t time.Time) bool {
	if at, ok := a.unansweredAt[pid]; ok && t.Sub(at) < fallbackWindow {
		return true
	}
	for _, c := range a.conns {
		if c.id.pid != pid {
			continue
		}
		for _, r := range c.queue {
			if isTokenPUT(r) && t.Sub(r.Time) >= a.fallbackMinWait() {
				return true
			}
		}
	}
	return false
}

// fallbackWindow is how long after an unanswered token PUT an IMDSv1 request
// of the same process counts as its fallback.
const fallbackWindow = time.Minute

// fallbackMinWait is how long a token PUT must have waited before an IMDSv1
// request of the same process marks it unanswered: SDKs fall back only after
// their own time-out (hundreds of milliseconds at least), while a program
// may well run a v1 and a v2 client side by side.
func (a *Auditor) fallbackMinWait() time.Duration {
	return min(a.opts.TokenAnswerTimeout, 250*time.Millisecond)
}

// maxUnansweredPIDs bounds the memory of recent unanswered token PUTs.
const maxUnansweredPIDs = 4096

func isTokenPUT(r *Record) bool { return isTokenPUTClass(r.Class) }

func isTokenPUTClass(c Class) bool { return c == ClassTokenPUT || c == ClassTokenPUTProxied }

// onAnswer pairs an answer head with the oldest request awaiting one.
func (a *Auditor) onAnswer(c *conn, h reasm.Head, t time.Time) {
	resp, err := &h.Response, h.ParseErr // parsed once, by the reassembler
	if err == nil && resp.Status < 200 {
		return // 100 Continue and friends precede the real answer
	}
	if len(c.queue) == 0 {
		// The server answered a request not complete here: its missing
		// bytes will not come.
		a.asm.Flush(reasm.Key{Cookie: c.cookie, Dir: reasm.Send}, func(h reasm.Head) { a.onHead(c, h) })
	}
	if len(c.queue) == 0 {
		a.agg.unpaired++
		return
	}
	r := c.queue[0]
	c.queue = c.queue[1:]
	if err == nil {
		r.Status = resp.Status
	}
	r.AnsweredAt = t
	if !r.tokenSent && r.Status >= 200 && r.Status < 300 && (r.Class == ClassOther || r.Class == ClassProbe) {
		// IMDS served this without a token, whatever it looked like (a request line it
		// took although the parser did not, a dot-segment path under another cloud's
		// prefix): that is IMDSv1, by the answer.
		r.Class, r.Cloud = ClassIMDSv1, ""
	}
	if isTokenPUT(r) && r.Status == 200 && h.TTL != 0 {
		// Only a token answer is sent with the hop limit as its TTL.
		r.HopLimit = h.TTL
	}
	if isTokenPUT(r) && t.Sub(r.Time) > a.opts.SlowTokenAnswer {
		r.Slow = true
	}
	a.resolve(c, r, false)
}

// resolve finishes a request: counted in the aggregate and sent out.
func (a *Auditor) resolve(c *conn, r *Record, unanswered bool) {
	if unanswered && isTokenPUT(r) {
		r.Unanswered = true
		if len(a.unansweredAt) < maxUnansweredPIDs {
			a.unansweredAt[c.id.pid] = r.Time
		}
	}
	a.scrubKnown(r)
	a.agg.add(r)
	a.out = append(a.out, *r)
}

// closeConn resolves everything pending on a connection and forgets it.
func (a *Auditor) closeConn(cookie uint64, t time.Time) {
	c := a.conns[cookie]
	if c == nil {
		a.asm.Close(reasm.Key{Cookie: cookie, Dir: reasm.Send}, nil)
		a.asm.Close(reasm.Key{Cookie: cookie, Dir: reasm.Recv}, nil)
		return
	}
	emit := func(h reasm.Head) { a.onHead(c, h) }
	a.asm.Close(reasm.Key{Cookie: cookie, Dir: reasm.Send}, emit)
	a.asm.Close(reasm.Key{Cookie: cookie, Dir: reasm.Recv}, emit)
	for _, r := range c.queue {
		a.resolve(c, r, true)
	}
	c.queue = nil
	delete(a.conns, cookie)
}

// processExit forgets the connections of an exited process (its sockets are
// closed with it) and marks its exec record.
func (a *Auditor) processExit(pid uint32, t time.Time) {
	a.execs.exit(pid, t)
	for cookie, c := range a.conns {
		if c.id.pid == pid {
			a.closeConn(cookie, t)
		}
	}
}

// expire applies the time-outs at now; token PUTs wait for their answer until
// seenUpTo, the time up to which every event has been handled.
func (a *Auditor) expire(now, seenUpTo time.Time) {
	deadline := seenUpTo.Add(-a.opts.TokenAnswerTimeout)
	idle := now.Add(-a.opts.IdleTimeout)
	for cookie, c := range a.conns {
		for len(c.queue) > 0 && isTokenPUT(c.queue[0]) && c.queue[0].Time.Before(deadline) {
			a.resolve(c, c.queue[0], true)
			c.queue = c.queue[1:]
		}
		if c.last.Before(idle) {
			a.closeConn(cookie, now)
		}
	}
	a.asm.Expire(idle, nil)
	a.execs.prune(idle)
	for pid, at := range a.unansweredAt {
		if now.Sub(at) > fallbackWindow {
			delete(a.unansweredAt, pid)
		}
	}
}

func remoteString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
