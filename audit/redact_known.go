package audit

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/url"
	"strings"
	"sync"
)

// Redaction by knowledge: every value the auditor sees in an
// X-aws-ec2-metadata-token header is remembered, and scrubbed wherever it
// appears later (a request path, a User-Agent, a command line, a parent's
// command line), whatever its shape. Values are never kept: each is stored as
// an HMAC-SHA256 under a key drawn at random when the auditor starts, plus a
// 64-bit rolling hash under a random base that finds candidate positions in
// one pass per distinct length. The rolling hash only locates; a match counts
// when the HMAC agrees.

const (
	// maxKnownTokens bounds the remembered tokens; the least recently seen
	// goes first. SDKs reuse a token for its lifetime (up to 6 hours), so a
	// host has few live tokens at a time.
	maxKnownTokens = 1024
	// Bounds on a header value worth remembering. Real tokens are 56
	// characters and more; a short value would make scrubbing erase ordinary
	// text (a client could send "X-aws-ec2-metadata-token: latest" to hide
	// its paths).
	minKnownTokenLen = 20
	maxKnownTokenLen = 512
)

type knownToken struct {
	roll uint64
	mac  [sha256.Size]byte
	n    int
}

// knownTokens is the remembered set. The zero value is not usable: use
// newKnownTokens. It is safe for concurrent use.
type knownTokens struct {
	mu      sync.Mutex
	mac     hash.Hash
	base    uint64
	byRoll  map[uint64][]*list.Element // rolling hash -> entries
	lru     *list.List                 // of *knownToken, most recently seen first
	lengths map[int]int                // distinct lengths -> how many entries
}

func newKnownTokens() *knownTokens {
	var seed [40]byte
	_, _ = rand.Read(seed[:]) // never returns an error since Go 1.24
	return &knownTokens{
		mac:     hmac.New(sha256.New, seed[:32]),
		base:    binary.LittleEndian.Uint64(seed[32:]) | 1,
		byRoll:  make(map[uint64][]*list.Element),
		lru:     list.New(),
		lengths: make(map[int]int),
	}
}

// learn remembers the token value v (the caller may reuse v afterwards),
// with its percent-encoded spellings, which is how it appears in a path or a
// query when a script escapes it.
func (k *knownTokens) learn(v []byte) {
	if !plausibleToken(v) {
		return
	}
	s := string(v)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.add(s)
	for _, e := range []string{url.PathEscape(s), url.QueryEscape(s)} {
		if e != s && len(e) <= maxKnownTokenLen {
			k.add(e)
		}
	}
}

// plausibleToken says whether v may be a token worth remembering: long
// enough, visible ASCII without spaces, and not plain text (two of upper
// case, lower case, digits).
func plausibleToken(v []byte) bool {
	if len(v) < minKnownTokenLen || len(v) > maxKnownTokenLen {
		return false
	}
	var upper, lower, digit bool
	for _, c := range v {
		switch {
		case c <= ' ' || c >= 0x7f:
			return false
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	n := 0
	for _, b := range []bool{upper, lower, digit} {
		if b {
			n++
		}
	}
	return n >= 2
}

func (k *knownTokens) add(s string) {
	t := knownToken{roll: k.rollHash(s), mac: k.sum(s), n: len(s)}
	if e := k.find(t.roll, t.mac); e != nil {
		k.lru.MoveToFront(e)
		return
	}
	if k.lru.Len() >= maxKnownTokens {
		k.remove(k.lru.Back())
	}
	e := k.lru.PushFront(&t)
	k.byRoll[t.roll] = append(k.byRoll[t.roll], e)
	k.lengths[t.n]++
}

func (k *knownTokens) remove(e *list.Element) {
	t := e.Value.(*knownToken)
	k.lru.Remove(e)
	same := k.byRoll[t.roll]
	for i, x := range same {
		if x == e {
			same = append(same[:i], same[i+1:]...)
			break
		}
	}
	if len(same) == 0 {
		delete(k.byRoll, t.roll)
	} else {
		k.byRoll[t.roll] = same
	}
	if k.lengths[t.n]--; k.lengths[t.n] == 0 {
		delete(k.lengths, t.n)
	}
}

func (k *knownTokens) find(roll uint64, mac [sha256.Size]byte) *list.Element {
	for _, e := range k.byRoll[roll] {
		if e.Value.(*knownToken).mac == mac {
			return e
		}
	}
	return nil
}

func (k *knownTokens) sum(s string) [sha256.Size]byte {
	k.mac.Reset()
	k.mac.Write([]byte(s))
	var out [sha256.Size]byte
	k.mac.Sum(out[:0])
	return out
}

func (k *knownTokens) rollHash(s string) uint64 {
	var h uint64
	for i := 0; i < len(s); i++ {
		h = h*k.base + uint64(s[i])
	}
	return h
}

// scrub replaces every remembered token in s with Redacted, at any position.
func (k *knownTokens) scrub(s string) string {
	if k == nil || len(s) < minKnownTokenLen {
		return s
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.lengths) == 0 {
		return s
	}
	// Marks the bytes to replace; tokens of different lengths may overlap.
	var hit []bool
	for n := range k.lengths {
		if n > len(s) {
			continue
		}
		pow := uint64(1) // base^(n-1)
		for range n - 1 {
			pow *= k.base
		}
		h := k.rollHash(s[:n])
		for i := 0; ; i++ {
			if _, ok := k.byRoll[h]; ok && k.find(h, k.sum(s[i:i+n])) != nil {
				if hit == nil {
					hit = make([]bool, len(s))
				}
				for j := i; j < i+n; j++ {
					hit[j] = true
				}
			}
			if i+n >= len(s) {
				break
			}
			h = (h-uint64(s[i])*pow)*k.base + uint64(s[i+n])
		}
	}
	if hit == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !hit[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(Redacted)
		for i < len(s) && hit[i] {
			i++
		}
	}
	return b.String()
}
