package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
