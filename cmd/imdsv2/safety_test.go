package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// newStealServer starts a server on 127.0.0.2 that a hostile endpoint redirects to, and counts
// what reaches it.
func newStealServer(t *testing.T) (host string, hits *atomic.Int32) {
	t.Helper()
	hits = &atomic.Int32{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("stolen"))
	}))
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	require.NoError(t, err)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String(), hits
}

// TestGetRefusesRedirects: `imdsv2 get` against an endpoint that issues a token and redirects the
// token PUT or the GET elsewhere exits 1 with the redirect error, prints nothing on stdout, and
// the other host gets nothing.
func TestGetRefusesRedirects(t *testing.T) {
	noEnv(t)
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, method := range []string{http.MethodPut, http.MethodGet} {
			t.Run(method+"/"+strconv.Itoa(code), func(t *testing.T) {
				host, hits := newStealServer(t)
				srv := imdstest.NewServer(imdstest.Config{})
				t.Cleanup(srv.Close)
				srv.InjectFault(imdstest.Fault{Method: method, Kind: imdstest.FaultRedirect, Status: code,
					Location: "http://thief:hunter2@" + host + "/steal"})

				exit, out, errOut := cli(t, "get", "--endpoint", srv.URL(), "--timeout=1m", "meta-data/instance-id")
				assert.Equal(t, exitFail, exit)
				assert.Empty(t, out)
				assert.Regexp(t, `^imdsv2 get: imds: `+method+` /latest/[a-z/-]+ at `+srv.URL()+`: answered `+
					strconv.Itoa(code)+` [A-Za-z ]+ to host "`+host+`" \("http://\[redacted\]@`+host+
					`/steal"\): IMDS never redirects`, errOut)
				assert.NotContains(t, errOut, "hunter2")

				_, res := getJSON(t, srv.URL(), "meta-data/instance-id")
				require.NotNil(t, res.Error)
				assert.Equal(t, "redirect", res.Error.Kind)
				assert.Nil(t, res.Value)
				assert.Zero(t, hits.Load(), "the redirect target got a request")
			})
		}
	}
}

// TestDoctorRefusesRedirects: doctor's IMDSv2 reads and its one IMDSv1 probe follow no redirect.
func TestDoctorRefusesRedirects(t *testing.T) {
	noEnv(t)
	host, hits := newStealServer(t)
	srv := imdstest.NewServer(imdstest.Config{HTTPTokens: imdstest.TokensOptional})
	t.Cleanup(srv.Close)
	srv.InjectFault(imdstest.Fault{Method: http.MethodGet, Kind: imdstest.FaultRedirect, Status: 302,
		Location: "http://" + host + "/steal"})
	code, rep, out := doctorJSON(t, "--endpoint="+srv.URL(), "--probe-v1")
	assert.Equal(t, exitFail, code, out)
	require.Len(t, rep.Endpoints, 1)
	assert.Equal(t, "redirect", rep.Endpoints[0].Status)
	assert.Contains(t, rep.Endpoints[0].Message, `to host "`+host+`"`)
	require.NotNil(t, rep.IMDSv1)
	assert.False(t, rep.IMDSv1.Accepted)
	assert.Equal(t, 302, rep.IMDSv1.StatusCode)
	assert.Contains(t, rep.IMDSv1.Meaning, "not followed")
	assert.Zero(t, hits.Load(), "the redirect target got a request")
}

// TestEndpointPasswordNeverShown: an endpoint URL with user information is refused, and no output
// of get, doctor or ready repeats the password, whether it came by flag or by environment.
// Every endpoint is on loopback, and each refusal happens before anything is sent.
func TestEndpointPasswordNeverShown(t *testing.T) {
	const password = "Pa55w0rdInTheURL"
	srv := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing may connect: a request reaching this port would be refused, not answered
	endpoints := []string{
		"http://admin:" + password + "@127.0.0.1:" + port,
		"http://" + password + "@127.0.0.1:" + port,
		"http://admin:" + password + "@127.0.0.1:" + port + "/prefix?q=1#f",
		"http://admin:" + password + "@[::1", // does not parse
		"http://admin:" + password + "/x@127.0.0.1:" + port,
		"http://admin:1#" + password + "@127.0.0.1:" + port,
		"admin:" + password + "@127.0.0.1:" + port, // no scheme
		"//admin:" + password + "@127.0.0.1:" + port,
	}
	for i, ep := range endpoints {
		for _, tc := range []struct {
			name string
			env  bool
			args []string
		}{
			{"get-flag", false, []string{"get", "--endpoint", ep, "meta-data/instance-id"}},
			{"get-flag-json", false, []string{"get", "--output=json", "--endpoint=" + ep, "meta-data/instance-id"}},
			{"get-env", true, []string{"get", "meta-data/instance-id"}},
			{"doctor-flag", false, []string{"doctor", "--endpoint", ep}},
			{"doctor-flag-json", false, []string{"doctor", "--output=json", "--endpoint", ep}},
			// doctor checks the endpoint of its flag, else the IMDS addresses; it does not read the
			// variable, so here the variable must leak nowhere while doctor checks a loopback emulator.
			{"doctor-env", true, []string{"doctor", "--endpoint", srv.URL()}},
			// ready has no --endpoint flag. Its identity read takes the endpoint from the variable,
			// and a URL with user information is refused before any request.
			{"ready-env", true, []string{"ready", "--scan=false", "--duration=1s"}},
			{"ready-env-json", true, []string{"ready", "--output=json", "--scan=false", "--duration=1s"}},
		} {
			t.Run(tc.name+"/"+strconv.Itoa(i), func(t *testing.T) {
				noEnv(t)
				if tc.env {
					t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep)
				}
				code, out, errOut := cli(t, tc.args...)
				assert.NotContains(t, out+errOut, password)
				if tc.name != "doctor-env" {
					assert.Equal(t, exitUsage, code, "stdout %q, stderr %q", out, errOut)
					assert.Contains(t, out+errOut, "endpoint")
				}
			})
		}
	}
}

// TestGetControlCharacters: `imdsv2 get` hands a script the value as IMDS sent it, and shows a
// person at a terminal control characters escaped (unless --raw).
func TestGetControlCharacters(t *testing.T) {
	noEnv(t)
	const userData = "#!/bin/sh\n\techo \x1b[2J\x1b]0;title\x07\xff\n"
	srv := imdstest.NewServer(imdstest.Config{UserData: []byte(userData)})
	t.Cleanup(srv.Close)

	code, out, errOut := cli(t, "get", "--endpoint", srv.URL(), "--timeout=1m", "user-data")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, userData, out, "a pipe or a file gets the bytes unchanged")

	var b bytes.Buffer
	printGetText(&b, getResult{ValueBase64: []byte(userData)}, true)
	assert.Equal(t, "#!/bin/sh\n\techo \\x1b[2J\\x1b]0;title\\x07\\xff\n\n", b.String())
	b.Reset()
	text := "a\x1b[31mb\u202ec"
	printGetText(&b, getResult{Value: &text}, true)
	assert.Equal(t, "a\\x1b[31mb\\u202ec\n", b.String())

	// The decision: a terminal escapes, anything else does not. A file is not a terminal.
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f))
	code = run(context.Background(), []string{"get", "--endpoint", srv.URL(), "--timeout=1m", "--raw", "user-data"}, f, io.Discard)
	require.Equal(t, exitOK, code)
	got, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.Equal(t, userData, string(got))
}

// TestGetEscapesOnTerminal runs `imdsv2 get` with its stdout on a pseudo-terminal.
func TestGetEscapesOnTerminal(t *testing.T) {
	noEnv(t)
	master, slave := openPTY(t)
	srv := imdstest.NewServer(imdstest.Config{UserData: []byte("echo \x1b[2J\x07done\n")})
	t.Cleanup(srv.Close)
	require.True(t, isTerminal(slave))
	for _, tc := range []struct {
		raw  bool
		want string
	}{{false, "echo \\x1b[2J\\x07done\r\n"}, {true, "echo \x1b[2J\x07done\r\n"}} {
		args := []string{"get", "--endpoint", srv.URL(), "--timeout=1m", "--raw=" + strconv.FormatBool(tc.raw), "user-data"}
		code := run(context.Background(), args, slave, io.Discard)
		require.Equal(t, exitOK, code)
		// The line discipline turns "\n" into "\r\n". The deadline only guards against a hang.
		_ = master.SetReadDeadline(time.Now().Add(time.Minute))
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.HasSuffix(got, []byte("\r\n")) {
			n, err := master.Read(buf)
			require.NoError(t, err)
			got = append(got, buf[:n]...)
		}
		assert.Equal(t, tc.want, string(got))
	}
}

// openPTY opens a pseudo-terminal pair, closed when the test ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err)
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { slave.Close() })
	return master, slave
}
