package imdstest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header names of the IMDSv2 session protocol.
const (
	HeaderTokenTTL = "X-aws-ec2-metadata-token-ttl-seconds"
	HeaderToken    = "X-aws-ec2-metadata-token"
)

// Tokens have the shape of real IMDSv2 session tokens (IMDS-FACTS.md): 40 bytes, URL-safe base64
// with padding, 56 characters that begin "AQAE" and end "==". The first four bytes are fixed,
// the other 36 (288 bits) come from crypto/rand, so tokens stay unique and unguessable. Code
// that redacts tokens is thereby tested against what real clients carry; clients must still
// treat them as opaque.
const (
	tokenRandomBytes = 36
	tokenLen         = 56 // base64 of len(tokenMagic)+tokenRandomBytes bytes, padded
)

// tokenMagic is the fixed start of every token; base64 turns it into "AQAEA".
var tokenMagic = [...]byte{0x01, 0x00, 0x04, 0x00}

// maxTokenHeader bounds what the emulator looks at in a token header; anything longer cannot be
// one of its tokens.
const maxTokenHeader = 256

var (
	errTTLMissing = errors.New("token TTL header missing")
	errTTLSyntax  = errors.New("token TTL is not a decimal number")
	errTTLRange   = errors.New("token TTL outside 1..21600")
)

// parseTTL parses the value of X-aws-ec2-metadata-token-ttl-seconds: a decimal integer from 1 to
// 21600, leading zeros allowed. Signs, spaces and fractions are refused: whether the real service
// tolerates any of them is unverified, and refusing them keeps clients honest.
func parseTTL(v string) (int, error) {
	if v == "" {
		return 0, errTTLMissing
	}
	n, tooLarge := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, errTTLSyntax
		}
		if n = n*10 + int(c-'0'); n > MaxTokenTTL {
			n, tooLarge = 0, true // keep scanning: a syntax error still counts as one
		}
	}
	if tooLarge || n < 1 {
		return 0, errTTLRange
	}
	return n, nil
}

// wellFormedToken reports whether v could be a token this emulator issued: the issued length,
// the fixed start, the URL-safe base64 alphabet and the padding. Anything else is refused before
// the token table is consulted.
func wellFormedToken(v string) bool {
	if len(v) != tokenLen || v[:4] != "AQAE" || v[tokenLen-2:] != "==" {
		return false
	}
	for i := 0; i < tokenLen-2; i++ {
		c := v[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// tokenTable holds issued tokens and their expiry on the Config.Now clock.
type tokenTable struct {
	mu     sync.Mutex
	tokens map[string]time.Time
}

// pruneAt is the table size at which expired tokens are swept; hardCap bounds it for clients
// that ask for a new token per request with long TTLs.
const (
	pruneAt = 4096
	hardCap = 65536
)

func (t *tokenTable) issue(now time.Time, ttl time.Duration) string {
	var raw [len(tokenMagic) + tokenRandomBytes]byte
	copy(raw[:], tokenMagic[:])
	_, _ = rand.Read(raw[len(tokenMagic):]) // never returns an error since Go 1.24
	tok := base64.URLEncoding.EncodeToString(raw[:])

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tokens == nil {
		t.tokens = make(map[string]time.Time)
	}
	if len(t.tokens) >= pruneAt {
		for k, exp := range t.tokens {
			if !now.Before(exp) {
				delete(t.tokens, k)
			}
		}
		for k := range t.tokens {
			if len(t.tokens) < hardCap {
				break
			}
			delete(t.tokens, k)
		}
	}
	t.tokens[tok] = now.Add(ttl)
	return tok
}

// valid reports whether tok was issued and has not expired at now.
func (t *tokenTable) valid(tok string, now time.Time) bool {
	if !wellFormedToken(tok) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.tokens[tok]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		delete(t.tokens, tok)
		return false
	}
	return true
}

func (t *tokenTable) reset() {
	t.mu.Lock()
	t.tokens = nil
	t.mu.Unlock()
}

// serveToken answers a request on the token path /latest/api/token. Every answer to a PUT, error
// or not, goes out with the hop limit.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *state) {
	switch r.Method {
	case http.MethodPut:
	case http.MethodOptions:
		// Unverified: IMDS's 405 names OPTIONS as allowed, so OPTIONS gets the same Allow
		// header and an empty 200.
		w.Header().Set("Allow", "OPTIONS, PUT")
		writeBody(w, http.StatusOK, nil)
		return
	default:
		w.Header().Set("Allow", "OPTIONS, PUT")
		writeStatus(w, http.StatusMethodNotAllowed)
		return
	}
	// A proxy in the path adds X-Forwarded-For; IMDS refuses to hand a token through one.
	if len(r.Header.Values("X-Forwarded-For")) > 0 {
		s.writeTokenAnswer(w, r, st, http.StatusForbidden, nil)
		return
	}
	vals := r.Header.Values(HeaderTokenTTL)
	if len(vals) != 1 {
		s.writeTokenAnswer(w, r, st, http.StatusBadRequest, nil)
		return
	}
	ttl, err := parseTTL(vals[0])
	if err != nil {
		s.writeTokenAnswer(w, r, st, http.StatusBadRequest, nil)
		return
	}
	tok := s.tokens.issue(st.cfg.Now(), time.Duration(ttl)*time.Second)
	w.Header().Set(HeaderTokenTTL, strconv.Itoa(ttl))
	s.writeTokenAnswer(w, r, st, http.StatusOK, []byte(tok))
}
