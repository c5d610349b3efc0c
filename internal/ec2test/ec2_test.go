//go:build ec2

package ec2test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// onEC2 skips unless the user said, with IMDSV2_TEST_ON_EC2=1, that this is an EC2 instance.
func onEC2(t *testing.T) {
	t.Helper()
	if os.Getenv("IMDSV2_TEST_ON_EC2") != "1" {
		t.Skip("real-EC2 test: set IMDSV2_TEST_ON_EC2=1 on an EC2 instance to run it; elsewhere it " +
			"would send requests to 169.254.169.254")
	}
}

// newClient is a client of the real service with the default options and the environment.
func newClient(t *testing.T) *imds.Client {
	t.Helper()
	c, err := imds.New(imds.Options{})
	require.NoError(t, err)
	return c
}

// TestClientReads reads every typed accessor and the generic calls from the real service. What
// an instance may lack (user data, a role, tags in metadata, notices) may be missing, with the
// error the documentation promises.
func TestClientReads(t *testing.T) {
	onEC2(t)
	ctx := context.Background()
	c := newClient(t)

	id, err := c.InstanceID(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(id, "i-"), id)
	region, err := c.Region(ctx)
	require.NoError(t, err)
	az, err := c.AvailabilityZone(ctx)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(az, region), "zone %s in region %s", az, region)
	typ, err := c.InstanceType(ctx)
	require.NoError(t, err)

	doc, err := c.IdentityDocument(ctx)
	require.NoError(t, err)
	assert.Equal(t, id, doc.InstanceID)
	assert.Equal(t, region, doc.Region)
	assert.Equal(t, az, doc.AvailabilityZone)
	assert.Equal(t, typ, doc.InstanceType)

	// Get and List are relative to /latest/meta-data/, a leading "/" included.
	for _, p := range []string{"instance-id", "/instance-id"} {
		b, err := c.Get(ctx, p)
		require.NoError(t, err, p)
		assert.Equal(t, id, string(b), p)
	}
	top, err := c.List(ctx, "")
	require.NoError(t, err)
	assert.Contains(t, top, "instance-id")
	assert.Contains(t, top, "placement/")
	_, err = c.Get(ctx, "no-such-path-imdsv2-test")
	assert.ErrorIs(t, err, imds.ErrNotFound)

	dyn, err := c.ListDynamic(ctx, "")
	require.NoError(t, err)
	assert.Contains(t, dyn, "instance-identity/")
	raw, err := c.Dynamic(ctx, "instance-identity/document")
	require.NoError(t, err)
	assert.Equal(t, doc.Raw, raw)

	_, err = c.UserData(ctx)
	assert.True(t, err == nil || errors.Is(err, imds.ErrNotFound), "user data: %v", err)
	role, err := c.IAMRole(ctx)
	if err == nil {
		cr, err := c.IAMCredentials(ctx)
		require.NoError(t, err)
		assert.Equal(t, role, cr.RoleName)
		assert.Equal(t, "Success", cr.Code)
		assert.True(t, cr.Expiration.After(time.Now()), "credentials expire %v", cr.Expiration)
	} else {
		assert.ErrorIs(t, err, imds.ErrNotFound)
	}
	_, err = c.Tags(ctx)
	assert.True(t, err == nil || errors.Is(err, imds.ErrTagsNotEnabled), "tags: %v", err)
	_, err = c.SpotInstanceAction(ctx)
	assert.NoError(t, err)
	_, err = c.RebalanceRecommendation(ctx)
	assert.NoError(t, err)
	_, err = c.ScheduledEvents(ctx)
	assert.NoError(t, err)
	assert.Zero(t, c.Fallbacks())
	t.Logf("instance %s, %s in %s", id, typ, az)
}

// exchange is one raw request of the protocol in IMDS-FACTS.md section 1.
type exchange struct {
	name   string
	method string
	path   string
	ttl    string // X-aws-ec2-metadata-token-ttl-seconds, "" for none
	token  string // "valid" for a fresh token, "" for none, anything else sent as it is
	xff    bool   // with X-Forwarded-For
}

// answer is what the service said to an exchange, the parts the comparison looks at.
type answer struct {
	Status int
	TTL    string // the echoed TTL header
	Allow  string
}

// TestEmulatorAgreesWithIMDS sends the same protocol requests to the real service and to the
// emulator and reports every difference: this is how the emulator's fidelity (and the facts
// marked unverified, such as 405 with Allow on GET /latest/api/token) are checked. No request is
// tokenless except token PUTs.
func TestEmulatorAgreesWithIMDS(t *testing.T) {
	onEC2(t)
	emu := imdstest.NewServer(imdstest.Config{})
	t.Cleanup(emu.Close)
	exchanges := []exchange{
		{name: "token, TTL 21600", method: http.MethodPut, path: "/latest/api/token", ttl: "21600"},
		{name: "token, TTL 1", method: http.MethodPut, path: "/latest/api/token", ttl: "1"},
		{name: "token, no TTL", method: http.MethodPut, path: "/latest/api/token"},
		{name: "token, TTL 0", method: http.MethodPut, path: "/latest/api/token", ttl: "0"},
		{name: "token, TTL 21601", method: http.MethodPut, path: "/latest/api/token", ttl: "21601"},
		{name: "token, TTL not a number", method: http.MethodPut, path: "/latest/api/token", ttl: "ten"},
		{name: "token through a proxy", method: http.MethodPut, path: "/latest/api/token", ttl: "60", xff: true},
		{name: "token, versioned path", method: http.MethodPut, path: "/2021-03-23/api/token", ttl: "60"},
		{name: "GET on the token path", method: http.MethodGet, path: "/latest/api/token", token: "valid"},
		{name: "POST on the token path", method: http.MethodPost, path: "/latest/api/token", token: "valid"},
		{name: "GET with a token", method: http.MethodGet, path: "/latest/meta-data/instance-id", token: "valid"},
		{name: "GET a listing", method: http.MethodGet, path: "/latest/meta-data/", token: "valid"},
		{name: "GET an unknown path", method: http.MethodGet, path: "/latest/meta-data/no-such-path-imdsv2", token: "valid"},
		{name: "GET with an invalid token", method: http.MethodGet, path: "/latest/meta-data/instance-id",
			token: "AQAEAinvalidinvalidinvalidinvalidinvalidinvalidinvalid=="},
		{name: "GET no spot notice", method: http.MethodGet, path: "/latest/meta-data/spot/instance-action", token: "valid"},
		{name: "GET the identity document", method: http.MethodGet, path: "/latest/dynamic/instance-identity/document", token: "valid"},
	}
	real, fake := send(t, imds.EndpointIPv4, exchanges), send(t, emu.URL(), exchanges)
	for i, ex := range exchanges {
		assert.Equal(t, real[i], fake[i], "%s %s (%s): IMDS answered %+v, the emulator %+v",
			ex.method, ex.path, ex.name, real[i], fake[i])
	}
}

// send makes the exchanges with base, in order, and returns the answers.
func send(t *testing.T, base string, exchanges []exchange) []answer {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	token := func() string {
		req, err := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
		require.NoError(t, err)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "token from %s", base)
		return string(b)
	}()
	out := make([]answer, 0, len(exchanges))
	for _, ex := range exchanges {
		req, err := http.NewRequest(ex.method, base+ex.path, nil)
		require.NoError(t, err)
		if ex.ttl != "" {
			req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", ex.ttl)
		}
		switch ex.token {
		case "":
		case "valid":
			req.Header.Set("X-aws-ec2-metadata-token", token)
		default:
			req.Header.Set("X-aws-ec2-metadata-token", ex.token)
		}
		if ex.xff {
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
		}
		resp, err := hc.Do(req)
		require.NoError(t, err, "%s %s", ex.method, ex.path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, answer{Status: resp.StatusCode, TTL: resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"),
			Allow: resp.Header.Get("Allow")})
	}
	return out
}

// TestDoctor runs imdsv2 doctor and imdsv2 get, built from this tree, on the instance.
func TestDoctor(t *testing.T) {
	onEC2(t)
	bin := filepath.Join(t.TempDir(), "imdsv2")
	build := exec.Command("go", "build", "-o", bin, "github.com/imdsv2/imdsv2/cmd/imdsv2")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	var stdout, stderr bytes.Buffer
	doctor := exec.Command(bin, "doctor", "--output", "json")
	doctor.Stdout, doctor.Stderr = &stdout, &stderr
	require.NoError(t, doctor.Run(), "imdsv2 doctor: %s%s", stdout.String(), stderr.String())
	var rep struct {
		Status   string `json:"status"`
		Identity struct {
			InstanceID string `json:"instance_id"`
		} `json:"identity"`
		Problems []string `json:"problems"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	assert.Equal(t, "healthy", rep.Status, "problems: %v", rep.Problems)

	id, err := newClient(t).InstanceID(context.Background())
	require.NoError(t, err)
	assert.Equal(t, id, rep.Identity.InstanceID)

	for _, p := range []string{"instance-id", "meta-data/instance-id"} {
		got, err := exec.Command(bin, "get", p).Output()
		require.NoError(t, err, "imdsv2 get %s", p)
		assert.Equal(t, id+"\n", string(got), "imdsv2 get %s", p)
	}
}
