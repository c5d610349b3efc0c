package e2e

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/imdsv2/imdsv2/audit/sdk/sdktest"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/internal/testbed"
)

// Captures of real clients (issue 13): what each client sends to IMDS, head by head, as the
// emulator reads it. The fingerprints of audit/sdk are tested against the stored captures;
// these tests make them anew with -update-captures, and in CI compare what the clients send
// now with what is stored.
var updateCaptures = flag.Bool("update-captures", false, "rewrite the captures of real clients in audit/sdk/testdata/captures")

// capturesDir is where the captures are stored, relative to this package.
const capturesDir = "../../audit/sdk/testdata/captures"

// maxHeads bounds a head log: load tests send many requests and none of them keeps the heads.
const maxHeads = 4096

// headLog records the request heads every connection of a listener carries, in the order the
// server reads them.
type headLog struct {
	mu    sync.Mutex
	heads []string
	// byConn names the connection of each head (its accept number).
	byConn []int
	conns  int
}

func (l *headLog) add(conn int, head string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.heads) < maxHeads {
		l.heads = append(l.heads, head)
		l.byConn = append(l.byConn, conn)
	}
}

// mark returns the number of heads so far, for since.
func (l *headLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.heads)
}

// since returns the heads recorded after mark.
func (l *headLog) since(mark int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.heads[mark:])
}

// recordingListener hands out connections whose reads are copied into a headLog.
type recordingListener struct {
	net.Listener
	log *headLog
}

func (rl *recordingListener) Accept() (net.Conn, error) {
	c, err := rl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rl.log.mu.Lock()
	rl.log.conns++
	id := rl.log.conns
	rl.log.mu.Unlock()
	return &recordingConn{Conn: c, log: rl.log, id: id}, nil
}

// recordingConn splits what the client sends into request heads. It passes the socket through
// (syscall.Conn), so the emulator still sets the hop limit of token answers on it.
type recordingConn struct {
	net.Conn
	log  *headLog
	id   int
	buf  []byte
	skip int64 // body bytes still to come
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.feed(p[:n])
	return n, err
}

func (c *recordingConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

func (c *recordingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *recordingConn) feed(b []byte) {
	c.buf = append(c.buf, b...)
	for {
		if c.skip > 0 {
			n := min(c.skip, int64(len(c.buf)))
			c.buf, c.skip = c.buf[n:], c.skip-n
		}
		end := bytes.Index(c.buf, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.buf) > 64<<10 {
				c.log.add(c.id, string(c.buf)) // no end in sight: keep what came
				c.buf = nil
			}
			return
		}
		head := string(c.buf[:end+4])
		c.buf = c.buf[end+4:]
		c.log.add(c.id, head)
		c.skip = contentLength(head)
	}
}

func contentLength(head string) int64 {
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if name, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(name, "Content-Length") {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// serveRecorded is Bed.ServeIMDS with the listeners wrapped in a head log.
func serveRecorded(bed *testbed.Bed, srv *imdstest.Server) (*headLog, error) {
	log := &headLog{}
	for _, a := range []struct{ network, addr string }{
		{"tcp4", imdsfacts.AddrPortV4.String()},
		{"tcp6", imdsfacts.AddrPortV6.String()},
	} {
		ln, err := bed.Listen(testbed.IMDS, a.network, a.addr)
		if err != nil {
			return nil, err
		}
		go srv.Serve(&recordingListener{Listener: ln, log: log}) //nolint:errcheck // returns when the bed closes the listener
	}
	return log, nil
}

// captureBed is the bed and the emulator, with a head log, for captures made without the agent.
func captureBed(t *testing.T, cfg imdstest.Config) (*testbed.Bed, *imdstest.Server, *headLog) {
	t.Helper()
	testbed.Require(t)
	bed := testbed.NewForTest(t, testbed.Config{})
	srv := imdstest.NewUnstartedServer(cfg)
	t.Cleanup(srv.Close)
	log, err := serveRecorded(bed, srv)
	if err != nil {
		t.Fatal(err)
	}
	return bed, srv, log
}

// makingCaptures says whether this run (re)makes captures: with -update-captures, or in CI.
func makingCaptures(t *testing.T) {
	t.Helper()
	skipInVM(t)
	if !*updateCaptures && !privtest.InCI() {
		t.Skip("captures of real clients are made with -update-captures (and compared in CI)")
	}
}

// skipInVM skips tests of real clients inside make test-vm's VM: it has no network for the npm
// registry or the Go module proxy, and naming clients is user space, which the kernel under the
// VM does not change; make test runs them on the host.
func skipInVM(t *testing.T) {
	t.Helper()
	if privtest.InTestVM() {
		t.Skip("real clients run on the host (make test): the test VM has no network for the registries, and naming them is user space")
	}
}

// keepCapture writes c with -update-captures; otherwise (CI) it compares the distinct heads c
// holds with the stored capture's: a client that now sends something else must be captured again
// and its fingerprint checked.
func keepCapture(t *testing.T, c *sdktest.Capture) {
	t.Helper()
	for i, r := range c.Requests {
		c.Requests[i] = sdktest.Redact(r)
	}
	if len(c.Requests) == 0 {
		t.Fatalf("%s: the client sent nothing", c.FileName())
	}
	if *updateCaptures {
		if err := sdktest.Write(capturesDir, c); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d requests)", c.FileName(), len(c.Requests))
		return
	}
	stored, err := sdktest.Load(capturesDir)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(stored, func(s sdktest.Capture) bool { return s.FileName() == c.FileName() })
	if i < 0 {
		// A system package (Debian's curl, node) may have moved on: compare with the capture
		// of the same client and API at another version, and say so.
		i = slices.IndexFunc(stored, func(s sdktest.Capture) bool {
			return s.Client == c.Client && s.API == c.API && s.Where == c.Where
		})
		if i < 0 {
			t.Fatalf("no stored capture %s: run the test with -update-captures", c.FileName())
		}
		t.Logf("%s is stored as %s (%s); run -update-captures to capture this version", c.Source, stored[i].FileName(), stored[i].Source)
	}
	if got, want := distinct(c.Requests), distinct(stored[i].Requests); !slices.Equal(got, want) {
		t.Errorf("%s sends other heads than its stored capture (run -update-captures and check its fingerprint):\ngot  %q\nwant %q",
			c.FileName(), got, want)
	}
}

// distinct returns the heads sorted, once each, with the machine's and the runtime's versions
// masked (runtimeVersions).
func distinct(heads []string) []string {
	out := make([]string, len(heads))
	for i, h := range heads {
		out[i] = runtimeVersions.ReplaceAllString(h, "${1}*")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// runtimeVersions matches what a User-Agent says of the machine and the Go runtime rather than of
// the client: the kernel release (botocore's "Linux/6.1.0-18-amd64") and Go's version (aws-sdk-go's
// "go1.26.8", v2's "lang/go#1.26.8"). A capture keeps them as sent; the comparison ignores them, so
// that CI on another kernel or Go release compares the clients, not the machine.
var runtimeVersions = regexp.MustCompile(`(Linux/|\bgo|lang/go#)[0-9][^ ;)\r]*`)

// relArgs reduces the paths of files the test made to their base names, so that captures do
// not depend on temporary directories.
func relArgs(args []string, dirs ...string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		for _, d := range dirs {
			if d != "" && strings.HasPrefix(a, d+string(filepath.Separator)) {
				out[i] = filepath.Base(a)
			}
		}
	}
	return out
}

// debianSource returns "debian:<package>=<version>" for an installed Debian package: where a
// captured client came from.
func debianSource(t *testing.T, pkg string) string {
	t.Helper()
	return "debian:" + pkg + "=" + dpkgVersion(t, pkg)
}

// captureCommand runs argv in ns of a fresh bed and returns the heads the emulator read.
func captureCommand(t *testing.T, cfg imdstest.Config, ns testbed.NS, env []string, argv ...string) []string {
	t.Helper()
	bed, _, log := captureBed(t, cfg)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := bed.Run(ns, cmd); err != nil {
		t.Logf("%q in %s: %v\n%s", argv, ns, err, out.String())
	}
	return log.since(0)
}

// TestCaptureDebianClients captures Debian's curl and python3 urllib reading metadata with and
// without a token, so that the fingerprints are tested against more than node.
func TestCaptureDebianClients(t *testing.T) {
	makingCaptures(t)
	curl, py := "/usr/bin/curl", debPython
	for _, p := range []string{curl, py} {
		if _, err := os.Stat(p); err != nil {
			privtest.Unavailable(t, p+" is not installed: "+err.Error())
		}
	}
	curlVersion, curlSource := debianVersion(t, "curl"), debianSource(t, "curl")
	pyPkg := "python" + pythonVersion(t)
	pyVersion, pySource := debianVersion(t, pyPkg), debianSource(t, pyPkg)
	const tokenScript = `import urllib.request as u
t = u.urlopen(u.Request("http://169.254.169.254/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"}), timeout=5).read().decode()
print(u.urlopen(u.Request("http://169.254.169.254/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": t}), timeout=5).read().decode())`
	const plainScript = `import urllib.request as u
print(u.urlopen("http://169.254.169.254/latest/meta-data/instance-id", timeout=5).read().decode())`
	cases := []struct {
		c    sdktest.Capture
		argv []string
	}{
		{sdktest.Capture{Client: "curl", Version: curlVersion, Source: curlSource, API: "token"},
			[]string{curl, "-sS", "-m", "5", "-H", "X-aws-ec2-metadata-token: " + "$TOKEN", base + "/latest/meta-data/instance-id"}},
		{sdktest.Capture{Client: "curl", Version: curlVersion, Source: curlSource, API: "no-token"},
			[]string{curl, "-sS", "-m", "5", base + "/latest/meta-data/instance-id"}},
		{sdktest.Capture{Client: "python-urllib", Version: pyVersion, Source: pySource, API: "token"},
			[]string{py, "-c", tokenScript}},
		{sdktest.Capture{Client: "python-urllib", Version: pyVersion, Source: pySource, API: "no-token"},
			[]string{py, "-c", plainScript}},
	}
	for _, tc := range cases {
		t.Run(tc.c.FileName(), func(t *testing.T) {
			c := tc.c
			c.Where, c.Exe = "instance, hop limit 1", tc.argv[0]
			argv := tc.argv
			if c.Client == "curl" && c.API == "token" {
				// curl's token dance is two invocations in a shell, as scripts write it.
				argv = []string{"/bin/sh", "-c", `TOKEN=$(curl -sS -m 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" ` +
					base + `/latest/api/token) && curl -sS -m 5 -H "X-aws-ec2-metadata-token: $TOKEN" ` + base + `/latest/meta-data/instance-id`}
			}
			c.Argv = argv
			c.Requests = captureCommand(t, imdstest.Config{HopLimit: 1}, testbed.Instance, nil, argv...)
			keepCapture(t, &c)
		})
	}
}

// The recorder splits what a connection carries into heads however the bytes arrive, skipping
// bodies, and records them as sent.
func TestRecordingConnSplitsHeads(t *testing.T) {
	const stream = "PUT /latest/api/token HTTP/1.1\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 5\r\n\r\n" +
		"hello" + "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
	for _, step := range []int{1, 7, len(stream)} {
		log := &headLog{}
		c := &recordingConn{log: log, id: 1}
		for i := 0; i < len(stream); i += step {
			c.feed([]byte(stream[i:min(i+step, len(stream))]))
		}
		got := log.since(0)
		want := []string{stream[:strings.Index(stream, "hello")], stream[strings.Index(stream, "GET"):]}
		if !slices.Equal(got, want) {
			t.Errorf("fed %d bytes at a time: %q, want %q", step, got, want)
		}
	}
}

// The comparison with a stored capture ignores the kernel release and the Go release a
// User-Agent carries (CI runs on other machines), and nothing of the client itself.
func TestCaptureComparisonIgnoresTheMachine(t *testing.T) {
	const boto = "GET / HTTP/1.1\r\nUser-Agent: Botocore/1.29.27 Python/3.11.2 Linux/%s awscrt/1.0.0.dev0\r\n\r\n"
	const gov1 = "GET / HTTP/1.1\r\nUser-Agent: aws-sdk-go/%s (go%s; linux; amd64)\r\n\r\n"
	const gov2 = "GET / HTTP/1.1\r\nUser-Agent: aws-sdk-go-v2/%s ua/2.1 os/linux lang/go#%s md/GOOS#linux\r\n\r\n"
	same := func(a, b string) bool { return slices.Equal(distinct([]string{a}), distinct([]string{b})) }
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{fmt.Sprintf(boto, "6.18.44-fc-v1045"), fmt.Sprintf(boto, "6.1.0-18-amd64"), true},
		{fmt.Sprintf(gov1, "1.55.8", "1.26.8"), fmt.Sprintf(gov1, "1.55.8", "1.24.1"), true},
		{fmt.Sprintf(gov2, "1.48.0", "1.26.8"), fmt.Sprintf(gov2, "1.48.0", "1.25.0"), true},
		{fmt.Sprintf(gov1, "1.55.8", "1.26.8"), fmt.Sprintf(gov1, "1.55.9", "1.26.8"), false},
		{fmt.Sprintf(gov2, "1.48.0", "1.26.8"), fmt.Sprintf(gov2, "1.49.0", "1.26.8"), false},
		{fmt.Sprintf(boto, "6.1.0"), strings.Replace(fmt.Sprintf(boto, "6.1.0"), "1.29.27", "1.29.28", 1), false},
	} {
		if got := same(tc.a, tc.b); got != tc.same {
			t.Errorf("%q and %q compare the same: %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
