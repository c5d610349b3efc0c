package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/testbed"
	"github.com/imdsv2/imdsv2/ready"
)

// wireRequest is one request of a generated case, as the client script sends it.
type wireRequest struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Headers [][2]string `json:"headers"` // in order; the value "@TOKEN" is replaced by a session token
	Body    []string    `json:"body,omitempty"`
	// Chunked sends Body as chunks (Transfer-Encoding: chunked), else with Content-Length.
	Chunked bool `json:"chunked,omitempty"`
}

// wireCase is one connection: its requests, pipelined (all written, then all answers read)
// or one after the other, each written in pieces of the given sizes.
type wireCase struct {
	Requests  []wireRequest `json:"requests"`
	Pipelined bool          `json:"pipelined"`
	Splits    []int         `json:"splits"`
	// V1 says a request is a tokenless GET of an AWS metadata path: the verdict must not be READY.
	V1 bool `json:"-"`
}

// propertyClient sends a wireCase (the JSON file argv[1]) over one raw connection to IMDS. A token, when
// a header asks for one, comes from a PUT on a connection of its own first.
const propertyClient = `import json, socket, sys, urllib.request as u
c = json.load(open(sys.argv[1]))
tok = None
if any(v == "@TOKEN" for r in c["requests"] for _, v in (r["headers"] or [])):
    tok = u.urlopen(u.Request("http://169.254.169.254/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=60).read().decode()
    if not tok:
        sys.exit("no token")
def render(r, last):
    lines = ["%s %s HTTP/1.1" % (r["method"], r["path"]), "Host: 169.254.169.254"]
    for k, v in r["headers"] or []:
        lines.append("%s: %s" % (k, tok if v == "@TOKEN" else v))
    body = b""
    if r.get("body"):
        if r.get("chunked"):
            lines.append("Transfer-Encoding: chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p.encode()) for p in r["body"]) + b"0\r\n\r\n"
        else:
            body = "".join(r["body"]).encode()
            lines.append("Content-Length: %d" % len(body))
    if last:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
def send(s, data):
    splits, i, k = c["splits"] or [len(data)], 0, 0
    while i < len(data):
        n = splits[k % len(splits)]; k += 1
        s.sendall(data[i:i+n]); i += n
try:
    s = socket.create_connection(("169.254.169.254", 80), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reqs = c["requests"]
    if c["pipelined"]:
        send(s, b"".join(render(r, i == len(reqs) - 1) for i, r in enumerate(reqs)))
        while s.recv(65536):
            pass
    else:
        f = s.makefile("rb")
        for i, r in enumerate(reqs):
            send(s, render(r, i == len(reqs) - 1))
            status = f.readline()
            length, chunked = 0, False
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            f.read(length)
    s.close()
except Exception as e:  # the agent's view is under test, not this client's luck
    print("client: %r" % e)
`

var (
	awsPaths   = []string{"/latest/meta-data/instance-id", "/latest/meta-data/", "/2021-07-15/meta-data/instance-id", "/latest/dynamic/instance-identity/document", "/", "/latest/meta-data/placement/region"}
	otherPaths = []string{"/metadata/instance?api-version=2021-02-01", "/computeMetadata/v1/instance/id", "/opc/v2/instance/", "/openstack/latest/meta_data.json"}
	clouds     = [][2]string{{"Metadata-Flavor", "Google"}, {"Metadata", "true"}, {"Metadata-Flavor", "ibm"}, {"Authorization", "Bearer Oracle"}}
)

// randomCase draws one connection's worth of requests: methods, AWS and other clouds' paths,
// other clouds' headers on both, token headers in any case and place, header blocks from a few
// bytes to tens of KiB, chunked bodies, pipelining, writes split anywhere.
func randomCase(rng *rand.Rand) wireCase {
	var c wireCase
	n := 1 + rng.IntN(3)
	c.Pipelined = rng.IntN(2) == 0
	for range n {
		r := wireRequest{Method: "GET", Path: awsPaths[rng.IntN(len(awsPaths))]}
		token := false
		switch k := rng.IntN(7); k {
		case 0, 1: // IMDSv1, sometimes with another cloud's header (IMDS ignores it)
			if k == 1 {
				r.Headers = append(r.Headers, clouds[rng.IntN(len(clouds))])
			}
		case 2, 3: // IMDSv2
			token = true
		case 4: // a probe for another cloud
			r.Path = otherPaths[rng.IntN(len(otherPaths))]
			r.Headers = append(r.Headers, clouds[rng.IntN(len(clouds))])
		case 5: // a token PUT
			r.Method, r.Path = "PUT", "/latest/api/token"
			r.Headers = append(r.Headers, [2]string{caseOf(rng, "X-aws-ec2-metadata-token-ttl-seconds"), "60"})
		case 6: // a body, chunked or not, on a method IMDS does not serve
			r.Method = "POST"
			r.Body = []string{strings.Repeat("b", 1+rng.IntN(300)), strings.Repeat("c", rng.IntN(3000))}
			r.Chunked = rng.IntN(2) == 0
		}
		if rng.IntN(3) == 0 {
			r.Headers = append(r.Headers, [2]string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
		}
		if rng.IntN(3) == 0 {
			size := []int{100, 1500, 3000, 9000, 30000, 60000}[rng.IntN(6)]
			r.Headers = append(r.Headers, [2]string{caseOf(rng, "baggage"), strings.Repeat("k=v,", size/4)})
		}
		if token {
			at := rng.IntN(len(r.Headers) + 1)
			r.Headers = append(r.Headers[:at], append([][2]string{{caseOf(rng, "X-aws-ec2-metadata-token"), "@TOKEN"}}, r.Headers[at:]...)...)
		}
		if r.Method == "GET" && !token && !strings.HasPrefix(r.Path, "/metadata") && !strings.HasPrefix(r.Path, "/computeMetadata") &&
			!strings.HasPrefix(r.Path, "/opc") && !strings.HasPrefix(r.Path, "/openstack") && !rootPing(r) {
			c.V1 = true
		}
		c.Requests = append(c.Requests, r)
	}
	if rng.IntN(2) == 0 {
		for range 1 + rng.IntN(4) {
			c.Splits = append(c.Splits, 1+rng.IntN([]int{8, 200, 4000}[rng.IntN(3)]))
		}
	}
	return c
}

// rootPing says r is another cloud's library asking "/" with its own header (a probe, not
// IMDSv1: the root holds no metadata, see httpreq's rootProbeCloud).
func rootPing(r wireRequest) bool {
	if r.Path != "/" {
		return false
	}
	for _, h := range r.Headers {
		if h == clouds[0] || h == clouds[1] || h == clouds[2] {
			return true
		}
	}
	return false
}

func caseOf(rng *rand.Rand, h string) string {
	switch rng.IntN(3) {
	case 0:
		return strings.ToLower(h)
	case 1:
		return strings.ToUpper(h)
	}
	return h
}

// switchboard hands the agent's events to the auditor of the case under test, so that every
// case is judged alone; each case's auditor starts with the agent's EventAttached, as if it
// had watched the test cgroup from the start.
type switchboard struct {
	mu       sync.Mutex
	cur      *audit.Auditor
	attached *audit.Event
}

func (s *switchboard) run(ctx context.Context, src audit.Source) error {
	for {
		ev, err := src.Next(ctx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if ev.Kind == audit.EventAttached {
			cp := ev
			s.attached = &cp
		}
		if s.cur != nil {
			s.cur.Handle(ev)
		}
		s.mu.Unlock()
	}
}

func (s *switchboard) next(t *testing.T) *audit.Auditor {
	t.Helper()
	a, err := audit.New(audit.Options{TokenAnswerTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(outcomeLimit)
	for {
		s.mu.Lock()
		if s.attached != nil {
			ev := *s.attached
			ev.Time = time.Now()
			a.Handle(ev)
			s.cur = a
			s.mu.Unlock()
			return a
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the agent reported no EventAttached")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The verdict invariant against real packets: random request shapes sent through the emulator
// with the agent attached; whenever a tokenless GET of an AWS path was sent (and answered),
// the verdict is not READY. Bounded: propertyCases cases, each in one short process.
func TestVerdictInvariantOnTheWire(t *testing.T) {
	const propertyCases = 40
	h := newAgentHarness(t)
	sb := &switchboard{}
	h.consume(t, sb.run)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IMDSV2_PROPERTY_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (IMDSV2_PROPERTY_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0x1d5))
	tally := map[string]int{}
	for i := range propertyCases {
		c := randomCase(rng)
		spec, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "case.json")
		if err := os.WriteFile(file, spec, 0o600); err != nil {
			t.Fatal(err)
		}
		a := sb.next(t)
		cmd, out := h.run(t, testbed.Instance, true, "python3", "-c", propertyClient, file)
		settle(t, a)
		s := a.Snapshot()
		r := ready.Evaluate(ready.Input{Identity: &ready.Identity{InstanceID: "i-0prop"}, Summary: &s, Source: "live",
			Scope: &ready.Scope{Cgroup: h.cg.Path(), ID: h.cg.ID()}, MinWatch: time.Nanosecond})
		tally[fmt.Sprintf("v1=%v %s", c.V1, r.Verdict)]++
		if c.V1 && r.Verdict == ready.Ready {
			t.Fatalf("case %d (pid %d): a tokenless GET of an AWS path was sent, verdict READY\nrequests %v\ncase %s\nclient %s",
				i, cmd.Process.Pid, s.Requests, abbreviate(spec), out)
		}
		if c.V1 && s.Requests[audit.ClassIMDSv1] == 0 {
			t.Logf("case %d: IMDSv1 sent but not classified as such (verdict %s, uncertain %v): %s", i, r.Verdict,
				codes(r.Uncertain), abbreviate(spec))
		}
	}
	t.Logf("verdicts: %v", tally)
	if tally["v1=false READY"] == 0 && tally["v1=false UNDECIDED"]+tally["v1=false NOT READY"] > 3 {
		t.Errorf("no case without IMDSv1 was READY: the property holds only vacuously (%v)", tally)
	}
}

// settle waits until the case's requests are resolved and nothing new arrived for a moment.
func settle(t *testing.T, a *audit.Auditor) {
	t.Helper()
	deadline := time.Now().Add(outcomeLimit)
	var last audit.Summary
	quiet := 0
	for quiet < 6 {
		s := a.Snapshot()
		if a.Pending() == 0 && fmt.Sprint(s.Events) == fmt.Sprint(last.Events) {
			quiet++
		} else {
			quiet = 0
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("the case did not settle within %v: %d pending", outcomeLimit, a.Pending())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func abbreviate(b []byte) string {
	s := string(b)
	if len(s) > 600 {
		return s[:300] + fmt.Sprintf("...(%d bytes)...", len(s)-600) + s[len(s)-300:]
	}
	return s
}
