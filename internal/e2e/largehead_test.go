package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// largeHeadPython sends one GET whose header block is about size bytes (filler tracing headers
// of about 200 bytes, the token header, if any, in the middle) in many small writes: each line
// in two pieces, with Nagle off, so that the block crosses many packets and lines are cut
// across them. It prints the answer's status code.
const largeHeadPython = `
import socket, sys
# largehead caller
path, size, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
head = ["GET %s HTTP/1.1" % path, "Host: 169.254.169.254", "User-Agent: largehead-python"]
fill = []
used = sum(len(l) + 2 for l in head) + 2 + (len("X-aws-ec2-metadata-token: ") + len(token) + 2 if token else 0)
i = 0
while used < size:
    n = min(200, max(1, size - used - 16))
    line = "tracestate-%d: %s" % (i, "v" * n)
    fill.append(line)
    used += len(line) + 2
    i += 1
if token:
    fill.insert(len(fill) // 2, "X-aws-ec2-metadata-token: " + token)
s = socket.create_connection(("169.254.169.254", 80), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for line in head + fill:
    b = (line + "\r\n").encode()
    s.sendall(b[:len(b) // 2])
    s.sendall(b[len(b) // 2:])
s.sendall(b"\r\n")
answer = b""
while b"\r\n\r\n" not in answer:
    chunk = s.recv(4096)
    if not chunk:
        break
    answer += chunk
print(answer.split(b"\r\n", 1)[0].decode())
s.close()
`

// curlHeaders returns curl -H arguments adding filler tracing headers of about 1000 bytes to a
// header block of about size bytes in all (curl's own lines included); the token header goes
// first when tokenFirst is set, last otherwise. curl writes the whole block at once.
func curlHeaders(size int, token string, tokenFirst bool) []string {
	var args []string
	tok := "X-aws-ec2-metadata-token: " + token
	if token != "" && tokenFirst {
		args = append(args, "-H", tok)
	}
	used := 150 + len(tok) // request line, Host, User-Agent, Accept, the empty line
	for i := 0; used < size; i++ {
		n := min(1000, max(1, size-used-16))
		line := fmt.Sprintf("baggage-%d: %s", i, strings.Repeat("v", n))
		args = append(args, "-H", line)
		used += len(line) + 2
	}
	if token != "" && !tokenFirst {
		args = append(args, "-H", tok)
	}
	return args
}

// TestLargeHeaderBlocks: GETs with header blocks of 3, 20 and 60 KiB (tracing headers), written
// at once by curl or in hundreds of small writes by python3, from the instance and from a
// container, are classified imdsv1 or imdsv2 as sent, never incomplete; a 100 KiB block is
// incomplete unless a token header is in its first 64 KiB.
func TestLargeHeaderBlocks(t *testing.T) {
	h := newHarness(t)
	self := os.Getpid()
	const path = "/latest/meta-data/instance-id"

	// A real token, fetched from the instance (a container's PUT answer dies at hop limit 1).
	_, token := h.run(t, testbed.Instance, true, "curl", "-sS", "-m", "60", "-X", "PUT",
		"-H", "X-aws-ec2-metadata-token-ttl-seconds: 600", base+"/latest/api/token")
	if token == "" || strings.ContainsAny(token, " \r\n") {
		t.Fatalf("token PUT answered %q", token)
	}

	type caller struct {
		name string
		args func(size int, token string) []string
		exe  string
		cmd  string
	}
	callers := []caller{
		{"curl", func(size int, token string) []string {
			// The URL first: the kernel keeps the first 2 KiB of a command line.
			return append([]string{"-sS", "-m", "60", "-o", "/dev/null", base + path}, curlHeaders(size, token, false)...)
		}, "curl", base + path},
		{"python3", func(size int, token string) []string {
			return []string{"-c", largeHeadPython, path, strconv.Itoa(size), token}
		}, "python", "largehead caller"},
	}
	for _, ns := range []testbed.NS{testbed.Instance, testbed.Container} {
		for _, size := range []int{3 << 10, 20 << 10, 60 << 10} {
			for _, withToken := range []bool{false, true} {
				for _, c := range callers {
					tok, class := "", audit.ClassIMDSv1
					if withToken {
						tok, class = token, audit.ClassIMDSv2
					}
					t.Run(fmt.Sprintf("%s %s %d KiB %s", ns, c.name, size>>10, class), func(t *testing.T) {
						cmd, _ := h.run(t, ns, true, c.name, c.args(size, tok)...)
						rs := h.byPID(t, cmd.Process.Pid, 1)
						check(t, rs[0], cmd.Process.Pid, want{class: class, method: "GET", path: path, status: 200,
							exe: c.exe, cmd: c.cmd, parent: self})
					})
				}
			}
		}
	}

	// Over the limit: the first 64 KiB decide. No token there: incomplete, never imdsv1 or
	// imdsv2 by guess; a token header among them: imdsv2.
	over := []struct {
		name  string
		args  []string
		class audit.Class
	}{
		{"curl no token", append([]string{"-sS", "-m", "60", "-o", "/dev/null", base + path}, curlHeaders(100<<10, "", false)...),
			audit.ClassIncomplete},
		{"curl token last", append([]string{"-sS", "-m", "60", "-o", "/dev/null", base + path}, curlHeaders(100<<10, token, false)...),
			audit.ClassIncomplete},
		{"curl token first", append([]string{"-sS", "-m", "60", "-o", "/dev/null", base + path}, curlHeaders(100<<10, token, true)...),
			audit.ClassIMDSv2},
	}
	for _, tt := range over {
		t.Run("100 KiB "+tt.name, func(t *testing.T) {
			cmd, _ := h.run(t, testbed.Instance, true, "curl", tt.args...)
			rs := h.byPID(t, cmd.Process.Pid, 1)
			r := rs[0]
			if r.Class != tt.class || !r.Incomplete || r.Method != "GET" || r.Path != path {
				t.Errorf("record %s: want class %s, incomplete, GET %s", describe(rs), tt.class, path)
			}
		})
	}

	t.Run("nothing lost", func(t *testing.T) {
		if s := h.auditor.Snapshot(); s.LostEvents != 0 || h.agent.Lost() != 0 {
			t.Errorf("lost events: summary %d, agent %d", s.LostEvents, h.agent.Lost())
		}
	})
}

// TestOtherCloudHeadersOnAWSPath: curl with another cloud's metadata header reading an AWS path
// gets its answer from IMDS (which ignores the header) and is IMDSv1; the same header on that
// cloud's own path is a probe.
func TestOtherCloudHeadersOnAWSPath(t *testing.T) {
	h := newHarness(t)
	self := os.Getpid()
	const path = "/latest/meta-data/instance-id"
	for _, hdr := range []string{"Metadata-Flavor: Google", "Metadata: true", "Authorization: Bearer Oracle"} {
		t.Run(hdr, func(t *testing.T) {
			cmd, _ := h.run(t, testbed.Instance, true, "curl", "-sS", "-m", "60", "-H", hdr, base+path)
			rs := h.byPID(t, cmd.Process.Pid, 1)
			// The header's name stays in the command line; a secret-looking value (Bearer ...) is redacted.
			name, _, _ := strings.Cut(hdr, " ")
			check(t, rs[0], cmd.Process.Pid, want{class: audit.ClassIMDSv1, method: "GET", path: path, status: 200,
				exe: "curl", cmd: name, parent: self})
		})
	}
	t.Run("GCP path", func(t *testing.T) {
		cmd, _ := h.run(t, testbed.Instance, true, "curl", "-sS", "-m", "60", "-H", "Metadata-Flavor: Google",
			base+"/computeMetadata/v1/instance/id")
		rs := h.byPID(t, cmd.Process.Pid, 1)
		if r := rs[0]; r.Class != audit.ClassProbe || r.Cloud != "gcp" {
			t.Errorf("record %s: want a probe for gcp", describe(rs))
		}
	})
}
