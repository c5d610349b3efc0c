package imdstest_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestZeroConfigDefaults(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	c := s.Config()
	assert.Equal(t, imdstest.TokensOptional, c.HTTPTokens)
	assert.Equal(t, 1, c.HopLimit)
	assert.Equal(t, "us-east-1", c.Region)
	assert.Equal(t, "us-east-1a", c.AvailabilityZone)
	assert.Equal(t, "ip-10-0-0-10.ec2.internal", c.LocalHostname)
	assert.Equal(t, 6*time.Hour, c.CredentialLifetime)
	assert.NotNil(t, c.Now)
	assert.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), s.URL())

	for _, tc := range []struct{ in, want int }{{-3, 1}, {0, 1}, {2, 2}, {64, 64}, {65, 64}} {
		s.Update(func(c *imdstest.Config) { c.HopLimit = tc.in })
		assert.Equal(t, tc.want, s.Config().HopLimit, "HopLimit %d", tc.in)
	}
}

func TestUpdateLive(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "600")
	const id = "/latest/meta-data/instance-id"
	assert.Equal(t, 200, get(t, s, "", id).status)

	s.Update(func(c *imdstest.Config) { c.HTTPTokens = imdstest.TokensRequired })
	assert.Equal(t, 401, get(t, s, "", id).status, "like modify-instance-metadata-options --http-tokens required")
	assert.Equal(t, 200, get(t, s, tok, id).status, "tokens survive the change")

	s.Update(func(c *imdstest.Config) { c.EndpointDisabled = true })
	assert.Equal(t, 403, get(t, s, tok, id).status)
	s.Update(func(c *imdstest.Config) { c.EndpointDisabled = false; c.InstanceID = "i-0new" })
	assert.Equal(t, "i-0new", get(t, s, tok, id).body)

	s.Update(func(c *imdstest.Config) { c.TagsEnabled = true; c.Tags = map[string]string{"k": "v"} })
	assert.Equal(t, "v", get(t, s, tok, "/latest/meta-data/tags/instance/k").body)
	s.Update(func(c *imdstest.Config) { c.Tags["k"] = "changed inside Update" })
	assert.Equal(t, "changed inside Update", get(t, s, tok, "/latest/meta-data/tags/instance/k").body)
	cfg := s.Config()
	cfg.Tags["k"] = "changed on a copy"
	assert.Equal(t, "changed inside Update", get(t, s, tok, "/latest/meta-data/tags/instance/k").body)
}

func TestUpdateConcurrent(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "600")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			s.Update(func(c *imdstest.Config) {
				c.HTTPTokens = []string{"optional", "required"}[i%2]
				c.InstanceID = fmt.Sprintf("i-%d", i)
			})
			runtime.Gosched()
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 25 {
				a := get(t, s, "", "/latest/meta-data/instance-id")
				assert.Contains(t, []int{200, 401}, a.status)
				b := get(t, s, tok, "/latest/meta-data/instance-id")
				assert.Equal(t, 200, b.status)
				assert.True(t, strings.HasPrefix(b.body, "i-"), b.body)
				_ = s.Requests()
				_ = s.Config()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, "i-199", get(t, s, tok, "/latest/meta-data/instance-id").body, "last update wins")
}

func TestRequestLog(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "60")
	req, err := http.NewRequest("GET", s.URL()+"/latest/meta-data/ami-id", nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", "curl/8.5.0")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	resp, err := client.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	get(t, s, tok, "/latest/meta-data/nope")
	do(t, s, "PUT", "/latest/api/token", imdstest.HeaderTokenTTL, "60", "X-Forwarded-For", "192.0.2.1")

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	want := []struct {
		method, path string
		status       int
		tokenSent    bool
		forwarded    bool
		v1           bool
	}{
		{"PUT", "/latest/api/token", 200, false, false, false},
		{"GET", "/latest/meta-data/ami-id", 200, false, true, true},
		{"GET", "/latest/meta-data/nope", 404, true, false, false},
		{"PUT", "/latest/api/token", 403, false, true, false},
	}
	for i, w := range want {
		r := reqs[i]
		assert.Equal(t, w.method, r.Method, i)
		assert.Equal(t, w.path, r.Path, i)
		assert.Equal(t, w.status, r.Status, i)
		assert.Equal(t, w.tokenSent, r.TokenSent, i)
		assert.Equal(t, w.forwarded, r.Forwarded, i)
		assert.Equal(t, w.v1, r.IMDSv1(), i)
		assert.Equal(t, netip.MustParseAddr("127.0.0.1"), r.Remote.Addr())
		assert.NotZero(t, r.Remote.Port())
		assert.False(t, r.Time.IsZero())
	}
	assert.Equal(t, "curl/8.5.0", reqs[1].UserAgent)
	assert.NotContains(t, fmt.Sprintf("%+v %#v", reqs, reqs), tok, "token values are never logged")

	reqs[0].Path = "mutated copy"
	assert.Equal(t, "/latest/api/token", s.Requests()[0].Path, "Requests returns a copy")
	s.ResetRequests()
	assert.Empty(t, s.Requests())
}

func TestRequestLogBounded(t *testing.T) {
	for _, limit := range []int{1, 5, 100} {
		s := newServer(t, imdstest.Config{RequestLogLimit: limit})
		h := s.Handler()
		for i := range 3*limit + 2 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/latest/meta-data/x%d", i), nil))
			reqs := s.Requests()
			require.LessOrEqual(t, len(reqs), limit)
			require.Equal(t, fmt.Sprintf("/latest/meta-data/x%d", i), reqs[len(reqs)-1].Path, "newest kept")
		}
		assert.GreaterOrEqual(t, len(s.Requests()), limit*9/10, "only the oldest tenth is dropped")
	}
	assert.Equal(t, imdstest.MaxLoggedRequests, imdstest.NewUnstartedServer(imdstest.Config{}).Config().RequestLogLimit)
}

func TestHandlerMountedElsewhere(t *testing.T) {
	s := imdstest.NewUnstartedServer(imdstest.Config{InstanceID: "i-0mounted"})
	assert.Empty(t, s.URL(), "not serving yet")
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(s.Close)

	put, err := http.NewRequest("PUT", hs.URL+"/latest/api/token", nil)
	require.NoError(t, err)
	put.Header.Set(imdstest.HeaderTokenTTL, "60")
	resp, err := client.Do(put)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, 200, resp.StatusCode, "token answers work without the hop limit")

	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/latest/meta-data/instance-id", nil))
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "i-0mounted", rec.Body.String())
}

// TestReadHeaderTimeout: a connection that sends no header block is closed after
// Config.ReadHeaderTimeout (default DefaultReadHeaderTimeout), unlogged.
func TestReadHeaderTimeout(t *testing.T) {
	assert.Equal(t, imdstest.DefaultReadHeaderTimeout, imdstest.NewUnstartedServer(imdstest.Config{}).Config().ReadHeaderTimeout)
	s := newServer(t, imdstest.Config{ReadHeaderTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /latest/meta-data/ HTTP/1.1\r\n") // and never the end
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute))) // a hang guard, not a measurement
	_, err = io.ReadAll(c)
	require.NoError(t, err, "the server closes the connection (EOF), it does not leave it hanging")
	assert.Empty(t, s.Requests())
}

// A follower sees every request exactly once, with its final status, long after the bounded
// log has started dropping its oldest entries; after stop it sees none.
func TestFollowSeesEachRequestOnce(t *testing.T) {
	const limit, n = 100, 1050
	s := newServer(t, imdstest.Config{RequestLogLimit: limit})
	h := s.Handler()
	seen := map[string]int{}
	var statuses []int
	stop := s.Follow(func(r imdstest.Request) {
		seen[r.Path]++
		statuses = append(statuses, r.Status)
	})
	for i := range n {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/latest/meta-data/x%d", i), nil))
	}
	require.LessOrEqual(t, len(s.Requests()), limit)
	require.Len(t, seen, n)
	for p, c := range seen {
		require.Equal(t, 1, c, p)
	}
	require.Len(t, statuses, n)
	assert.Equal(t, http.StatusNotFound, statuses[0])
	stop()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/latest/meta-data/after-stop", nil))
	assert.Len(t, seen, n, "followed after stop")
}
