package reasm

import (
	"bytes"
	"testing"
)

// FuzzReassemble cuts a byte stream into segments at fuzzer-chosen points,
// reorders, duplicates, drops and truncates some of them, and checks that
// nothing panics, that every byte handed out is the true byte at its sequence
// number, that the bounds hold, and that nothing stays buffered after Close.
// With plan empty the segments arrive in order, whole, and every request head
// of the stream must come out.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte(put1+"BODY"+get1+get2), []byte{}, uint32(0))
	f.Add([]byte(get1+get2+get1), []byte{3, 200, 17, 9, 4, 250, 1, 0, 90}, uint32(1<<32-20))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 x\r\n\r\n"), []byte{5, 5, 5}, uint32(7))
	f.Fuzz(func(t *testing.T, stream, plan []byte, isn uint32) {
		if len(stream) > 4096 || len(plan) > 256 {
			return
		}
		cfg := Config{MaxHeadBytes: 512, MaxPending: 4, MaxStreamBytes: 1024, MaxStreams: 2, MaxTotalBytes: 2048}
		a := New(cfg)
		dir := Send
		if bytes.HasPrefix(stream, []byte("HTTP/")) {
			dir = Recv
		}
		k := Key{Cookie: 1, Dir: dir}
		var heads int
		check := func(h Head) {
			if h.Key != k {
				return
			}
			heads++
			off := h.Seq - isn
			if uint64(off)+uint64(len(h.Data)) > uint64(len(stream)) || !bytes.Equal(stream[off:off+uint32(len(h.Data))], h.Data) {
				t.Fatalf("head at %d is not the stream's bytes: %q", off, h.Data)
			}
			if len(h.Data) > cfg.MaxHeadBytes {
				t.Fatalf("head over the bound: %d", len(h.Data))
			}
		}
		segs := cut(stream, plan, isn)
		for i, s := range segs {
			a.Add(k, s, check)
			if i%3 == 0 { // another stream competes for memory
				a.Add(Key{Cookie: uint64(2 + i%3)}, Segment{Seq: uint32(i), Data: []byte("GET /x")}, check)
			}
			if st := a.Stats(); st.Bytes > cfg.MaxTotalBytes || st.Streams > cfg.MaxStreams {
				t.Fatalf("bounds: %+v", st)
			}
		}
		a.Close(k, check)
		for c := uint64(2); c < 5; c++ {
			a.Close(Key{Cookie: c}, check)
		}
		if st := a.Stats(); st.Bytes != 0 || st.Streams != 0 {
			t.Fatalf("left after close: %+v", st)
		}
		if len(plan) == 0 && bytes.HasPrefix(stream, []byte(get1)) && heads == 0 {
			t.Fatal("no head from a stream that starts with a request")
		}
	})
}

// cut splits stream into segments following plan: each plan byte gives a
// segment length (1..64) and, from its high bits, a mutation.
func cut(stream, plan []byte, isn uint32) []Segment {
	var segs []Segment
	pos := 0
	for i := 0; pos < len(stream); i++ {
		n, op := 64, byte(0)
		if len(plan) > 0 {
			p := plan[i%len(plan)]
			n, op = int(p&63)+1, p>>6
		}
		n = min(n, len(stream)-pos)
		s := Segment{Seq: isn + uint32(pos), Data: stream[pos : pos+n], WireLen: uint32(n)}
		switch op {
		case 1: // duplicate
			segs = append(segs, s)
		case 2: // capture cut short
			s.Data = s.Data[:n/2]
		case 3: // swap with the previous one
			if len(segs) > 0 {
				segs = append(segs, segs[len(segs)-1])
				segs[len(segs)-2] = s
				pos += n
				continue
			}
		}
		if len(plan) > 0 && i%17 == 16 { // dropped
			pos += n
			continue
		}
		segs = append(segs, s)
		pos += n
	}
	return segs
}
