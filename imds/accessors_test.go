package imds

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTypedAccessors(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{
		InstanceID: "i-0abc", Region: "eu-west-1", AvailabilityZone: "eu-west-1b", InstanceType: "m7g.large",
		TagsEnabled: true, Tags: map[string]string{"Name": "web-1", "team cost": "42"},
		RoleName: "app-role", UserData: []byte("#!/bin/sh\necho hi\n"),
	})
	c := newTestClient(t, srv, relaxed)
	ctx := context.Background()

	for _, tc := range []struct {
		get  func(context.Context) (string, error)
		want string
	}{
		{c.InstanceID, "i-0abc"}, {c.Region, "eu-west-1"}, {c.AvailabilityZone, "eu-west-1b"},
		{c.InstanceType, "m7g.large"}, {c.IAMRole, "app-role"},
	} {
		got, err := tc.get(ctx)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}

	keys, err := c.Tags(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"Name", "team cost"}, keys)
	v, err := c.Tag(ctx, "team cost")
	require.NoError(t, err)
	assert.Equal(t, "42", v)
	_, err = c.Tag(ctx, "Missing")
	require.ErrorIs(t, err, ErrNotFound)
	require.NotErrorIs(t, err, ErrTagsNotEnabled)
	assert.Contains(t, err.Error(), `"Missing"`)
	_, err = c.Tag(ctx, "a/b")
	require.ErrorIs(t, err, ErrInvalidArgument)

	ud, err := c.UserData(ctx)
	require.NoError(t, err)
	assert.Equal(t, "#!/bin/sh\necho hi\n", string(ud))

	top, err := c.List(ctx, "")
	require.NoError(t, err)
	assert.Contains(t, top, "instance-id")
	assert.Contains(t, top, "placement/")
	place, err := c.List(ctx, "placement")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"availability-zone", "region"}, place)

	// Get is relative to /latest/meta-data/, a leading "/" included (it used to mean the root).
	for _, p := range []string{"placement/region", "/placement/region"} {
		b, err := c.Get(ctx, p)
		require.NoError(t, err, p)
		assert.Equal(t, "eu-west-1", string(b), p)
	}
	_, err = c.Get(ctx, "/latest/meta-data/placement/region")
	require.ErrorIs(t, err, ErrNotFound, "a root-relative path is read under meta-data/")
	dyn, err := c.ListDynamic(ctx, "")
	require.NoError(t, err)
	assert.Contains(t, dyn, "instance-identity/")
	ids, err := c.ListDynamic(ctx, "/instance-identity")
	require.NoError(t, err)
	assert.Contains(t, ids, "document")

	cr, err := c.IAMCredentials(ctx)
	require.NoError(t, err)
	assert.Equal(t, "app-role", cr.RoleName)
	assert.Equal(t, "Success", cr.Code)
	assert.Regexp(t, "^"+imdstest.FakeAccessKeyPrefix, cr.AccessKeyID)
	assert.NotEmpty(t, cr.SecretAccessKey)
	assert.NotEmpty(t, cr.Token)
	assert.True(t, cr.Expiration.After(cr.LastUpdated))

	requireNoIMDSv1(t, srv)
}

func TestUserDataGzipAndMissing(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{UserData: gzipBytes([]byte("compressed!"))})
	c := newTestClient(t, srv, relaxed)
	ud, err := c.UserData(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "compressed!", string(ud))

	srv.Update(func(cfg *imdstest.Config) { cfg.UserData = nil })
	_, err = c.UserData(context.Background())
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "no user data")
}

func TestIdentityDocumentAndSignature(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{InstanceID: "i-0def", Region: "ap-south-1", AccountID: "210987654321"})
	c := newTestClient(t, srv, relaxed)
	ctx := context.Background()

	doc, err := c.IdentityDocument(ctx)
	require.NoError(t, err)
	assert.Equal(t, "i-0def", doc.InstanceID)
	assert.Equal(t, "ap-south-1", doc.Region)
	assert.Equal(t, "210987654321", doc.AccountID)
	assert.Equal(t, "t3.micro", doc.InstanceType)
	assert.False(t, doc.PendingTime.IsZero())
	assert.NotEmpty(t, doc.Raw)

	cert := srv.SigningCertificate()
	require.NotNil(t, cert)
	vdoc, err := c.VerifiedIdentityDocument(ctx, cert)
	require.NoError(t, err)
	assert.Equal(t, doc.Raw, vdoc.Raw)

	other := foreignCert(t)
	_, err = c.VerifiedIdentityDocument(ctx, other)
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "do not trust it")

	_, err = c.VerifiedIdentityDocument(ctx, nil)
	require.ErrorIs(t, err, ErrInvalidArgument)

	// A document changed by one byte must not verify.
	sig, err := c.Dynamic(ctx, "instance-identity/signature")
	require.NoError(t, err)
	require.NoError(t, VerifyIdentitySignature(doc.Raw, sig, cert))
	tampered := append([]byte(nil), doc.Raw...)
	tampered[len(tampered)/2] ^= 1
	require.ErrorIs(t, VerifyIdentitySignature(tampered, sig, cert), ErrBadSignature)
	require.ErrorIs(t, VerifyIdentitySignature(doc.Raw, []byte("!!not base64!!"), cert), ErrMalformed)
	requireNoIMDSv1(t, srv)
}

func TestNoticesOnTimer(t *testing.T) {
	clock := newFakeClock()
	srv := newEmulator(t, imdstest.Config{
		Now: clock.Now, SpotActionAfter: time.Minute, SpotAction: "stop", RebalanceAfter: 30 * time.Second,
		ScheduledEvents: []imdstest.ScheduledEvent{{Code: "system-reboot", Description: "scheduled reboot",
			EventID: "instance-event-0123", State: "active",
			NotBefore: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}},
	})
	c := newTestClient(t, srv, relaxed)
	ctx := context.Background()

	a, err := c.SpotInstanceAction(ctx)
	require.NoError(t, err)
	assert.Nil(t, a, "no interruption yet")
	r, err := c.RebalanceRecommendation(ctx)
	require.NoError(t, err)
	assert.Nil(t, r)

	clock.Advance(2 * time.Minute)
	a, err = c.SpotInstanceAction(ctx)
	require.NoError(t, err)
	require.NotNil(t, a)
	assert.Equal(t, "stop", a.Action)
	assert.False(t, a.Time.IsZero())
	r, err = c.RebalanceRecommendation(ctx)
	require.NoError(t, err)
	require.NotNil(t, r)
	assert.False(t, r.NoticeTime.IsZero())

	evs, err := c.ScheduledEvents(ctx)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "system-reboot", evs[0].Code)
	assert.Equal(t, "instance-event-0123", evs[0].EventID)
	assert.Equal(t, time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), evs[0].NotBefore)
	assert.True(t, evs[0].NotAfter.IsZero())
	requireNoIMDSv1(t, srv)
}

// TestMalformedAnswers serves broken bodies on specific paths (the emulator answers the rest) and
// checks that each accessor returns ErrMalformed naming the path, and never panics.
func TestMalformedAnswers(t *testing.T) {
	emu := newEmulator(t, imdstest.Config{RoleName: "r", TagsEnabled: true})
	bodies := map[string]string{
		pathIdentityDocument:     `{"instanceId": "i-1", "region": `,
		pathRoles:                "r\x00\n",
		pathSpotAction:           `{"action": "stop", "time": "soon"}`,
		pathRebalance:            `[]`,
		pathScheduled:            `[{"NotBefore": "yesterday"}]`,
		pathInstanceID:           "<html>oops</html>",
		pathRegion:               "",
		pathAZ:                   "us-east-1a\x1b[2J",
		pathInstanceType:         "t3.micro\u202e",
		pathTags:                 "<html>\n",
		"/latest/meta-data/x/":   "a\n\nb",
		pathIdentitySignature:    "%%%",
		"/latest/meta-data/json": `{"a":1} trailing`,
	}
	c := overrideClient(t, emu, bodies)
	ctx := context.Background()

	for _, tc := range []struct {
		path string
		call func() error
	}{
		{pathIdentityDocument, func() error { _, err := c.IdentityDocument(ctx); return err }},
		{pathRoles, func() error { _, err := c.IAMRole(ctx); return err }},
		{pathSpotAction, func() error { _, err := c.SpotInstanceAction(ctx); return err }},
		{pathRebalance, func() error { _, err := c.RebalanceRecommendation(ctx); return err }},
		{pathScheduled, func() error { _, err := c.ScheduledEvents(ctx); return err }},
		{pathInstanceID, func() error { _, err := c.InstanceID(ctx); return err }},
		{pathRegion, func() error { _, err := c.Region(ctx); return err }},
		{pathAZ, func() error { _, err := c.AvailabilityZone(ctx); return err }},
		{pathInstanceType, func() error { _, err := c.InstanceType(ctx); return err }},
		{pathTags, func() error { _, err := c.Tags(ctx); return err }},
		{"/latest/meta-data/x/", func() error { _, err := c.List(ctx, "x"); return err }},
	} {
		err := tc.call()
		require.ErrorIs(t, err, ErrMalformed, tc.path)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, tc.path, e.Path)
		assert.Contains(t, err.Error(), tc.path)
	}

	// The credentials document: Code Success but keys missing.
	c = overrideClient(t, emu, map[string]string{pathRoles + "r": `{"Code":"Success","AccessKeyId":"AKIA"}`})
	_, err := c.IAMCredentials(ctx)
	require.ErrorIs(t, err, ErrMalformed)
	assert.NotContains(t, err.Error(), "AKIA")
}

// overrideClient returns a client of a server that answers GETs of the paths in bodies with
// those bodies and everything else through emu.
func overrideClient(t *testing.T, emu *imdstest.Server, bodies map[string]string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := bodies[r.URL.Path]; ok && r.Method == http.MethodGet {
			_, _ = w.Write([]byte(b))
			return
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o := Options{Endpoint: srv.URL, Getenv: noEnv}
	relaxed(&o)
	c, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { closeIdle(c) })
	return c
}

func foreignCert(t *testing.T) *x509.Certificate {
	t.Helper()
	cert, err := imdstest.ForeignCertificate()
	require.NoError(t, err)
	return cert
}
