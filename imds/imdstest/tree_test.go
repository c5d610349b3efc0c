package imdstest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestMetadataValues(t *testing.T) {
	s := newServer(t, imdstest.Config{
		InstanceID: "i-0abc", Region: "eu-west-1", InstanceType: "m7g.large", AMIID: "ami-0def",
		LocalIPv4: "172.31.5.6", MAC: "0a:bb:cc:dd:ee:ff", IPv6: "2001:db8::5",
		SecurityGroups: []string{"web", "ssh"}, TargetLifecycleState: "InService",
	})
	tok := token(t, s, "60")
	mac := "/latest/meta-data/network/interfaces/macs/0a:bb:cc:dd:ee:ff/"
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/latest/meta-data/instance-id", 200, "i-0abc"},
		{"/latest/meta-data/ami-id", 200, "ami-0def"},
		{"/latest/meta-data/instance-type", 200, "m7g.large"},
		{"/latest/meta-data/local-ipv4", 200, "172.31.5.6"},
		{"/latest/meta-data/local-hostname", 200, "ip-172-31-5-6.eu-west-1.compute.internal"},
		{"/latest/meta-data/hostname", 200, "ip-172-31-5-6.eu-west-1.compute.internal"},
		{"/latest/meta-data/mac", 200, "0a:bb:cc:dd:ee:ff"},
		{"/latest/meta-data/ipv6", 200, "2001:db8::5"},
		{"/latest/meta-data/security-groups", 200, "web\nssh"},
		{"/latest/meta-data/placement/region", 200, "eu-west-1"},
		{"/latest/meta-data/placement/availability-zone", 200, "eu-west-1a"},
		{"/latest/meta-data/placement/", 200, "availability-zone\nregion"},
		{"/latest/meta-data/placement", 200, "availability-zone\nregion"},
		{"/latest/meta-data/services/partition", 200, "aws"},
		{"/latest/meta-data/autoscaling/target-lifecycle-state", 200, "InService"},
		{"/latest/meta-data/events/maintenance/scheduled", 200, "[]"},
		{"/latest/meta-data/network/interfaces/macs/", 200, "0a:bb:cc:dd:ee:ff/"},
		{mac + "local-ipv4s", 200, "172.31.5.6"},
		{mac + "ipv6s", 200, "2001:db8::5"},
		{mac + "device-number", 200, "0"},
		{mac + "owner-id", 200, "123456789012"},
		{mac + "vpc-id", 200, "vpc-0123456789abcdef0"},
		{"/latest/meta-data/instance-id/", 404, ""},
		{"/latest/meta-data/no-such-thing", 404, ""},
		{"/latest/meta-data//instance-id", 404, ""},
		{"/latest/meta-data/iam/info", 404, ""},
		{"/latest/meta-data/iam/", 404, ""},
		{"/latest/meta-data/tags/instance/", 404, ""},
		{"/latest/meta-data/spot/instance-action", 404, ""},
		{"/latest/meta-data/events/recommendations/rebalance", 404, ""},
		{"/latest/user-data", 404, ""},
		{"/latest/no-such-thing", 404, ""},
		{"/2021-07-15/meta-data/instance-id", 200, "i-0abc"},
		{"/2021-07-15/meta-data/placement/region", 200, "eu-west-1"},
		{"/1.0/meta-data/instance-id", 200, "i-0abc"},
		{"/2099-01-01/meta-data/instance-id", 404, ""},
		{"/nonsense/meta-data/instance-id", 404, ""},
		{"/latest", 200, "dynamic\nmeta-data"},
		{"/latest/", 200, "dynamic\nmeta-data"},
		{"/latest/dynamic/", 200, "instance-identity/"},
		{"/latest/dynamic/instance-identity/", 200, "document\npkcs7\nrsa2048\nsignature"},
		{"/latest/meta-data/events/", 200, "maintenance/\nrecommendations/"},
		{"/latest/meta-data/events/recommendations/", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			a := get(t, s, tok, tc.path)
			require.Equal(t, tc.status, a.status, a.body)
			if tc.status == 200 {
				assert.Equal(t, tc.body, a.body)
			}
		})
	}
}

func TestMetadataListing(t *testing.T) {
	s := newServer(t, imdstest.Config{RoleName: "app", TagsEnabled: true, UserData: []byte("#!/bin/sh\n")})
	tok := token(t, s, "60")

	root := get(t, s, tok, "/")
	require.Equal(t, 200, root.status)
	versions := lines(root.body)
	assert.Contains(t, versions, "2021-07-15")
	assert.Equal(t, "latest", versions[len(versions)-1])

	assert.Equal(t, "dynamic\nmeta-data\nuser-data", get(t, s, tok, "/latest/").body)

	md := get(t, s, tok, "/latest/meta-data/")
	require.Equal(t, 200, md.status)
	names := lines(md.body)
	for _, want := range []string{"ami-id", "hostname", "iam/", "instance-id", "instance-type",
		"local-hostname", "local-ipv4", "mac", "network/", "placement/", "events/", "tags/"} {
		assert.Contains(t, names, want)
	}
	assert.NotContains(t, names, "ipv6", "no IPv6 address configured")
	assert.NotContains(t, names, "spot/", "not a spot instance")
	assert.IsIncreasing(t, names, "sorted like IMDS")
	assert.NotContains(t, md.body, "\n\n")
	assert.False(t, bytes.HasSuffix([]byte(md.body), []byte("\n")), "no final newline")

	assert.Equal(t, md.body, get(t, s, tok, "/latest/meta-data").body, "directory without the slash lists too")
	assert.Equal(t, "info\nsecurity-credentials/", get(t, s, tok, "/latest/meta-data/iam/").body)
	assert.Equal(t, "app", get(t, s, tok, "/latest/meta-data/iam/security-credentials/").body)
}

func TestTags(t *testing.T) {
	tags := map[string]string{"Name": "web-1", "env": "prod", "bad/key": "x", "": "y"}
	on := newServer(t, imdstest.Config{TagsEnabled: true, Tags: tags})
	off := newServer(t, imdstest.Config{Tags: tags})
	empty := newServer(t, imdstest.Config{TagsEnabled: true})

	tests := []struct {
		name   string
		s      *imdstest.Server
		path   string
		status int
		body   string
	}{
		{"list", on, "/latest/meta-data/tags/instance/", 200, "Name\nenv"},
		{"list without slash", on, "/latest/meta-data/tags/instance", 200, "Name\nenv"},
		{"one", on, "/latest/meta-data/tags/instance/Name", 200, "web-1"},
		{"other", on, "/latest/meta-data/tags/instance/env", 200, "prod"},
		{"missing key", on, "/latest/meta-data/tags/instance/nope", 404, ""},
		{"key with slash is not served", on, "/latest/meta-data/tags/instance/bad/key", 404, ""},
		{"disabled list", off, "/latest/meta-data/tags/instance/", 404, ""},
		{"disabled key", off, "/latest/meta-data/tags/instance/Name", 404, ""},
		{"disabled parent", off, "/latest/meta-data/tags/", 404, ""},
		{"enabled without tags", empty, "/latest/meta-data/tags/instance/", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := get(t, tc.s, "", tc.path)
			assert.Equal(t, tc.status, a.status)
			if tc.status == 200 {
				assert.Equal(t, tc.body, a.body)
			}
		})
	}

	tags["Name"] = "changed after NewServer"
	assert.Equal(t, "web-1", get(t, on, "", "/latest/meta-data/tags/instance/Name").body, "config is copied")
}

func TestUserData(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte("#cloud-config\npackages: [jq]\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())

	tests := []struct {
		name   string
		data   []byte
		status int
	}{
		{"none", nil, 404},
		{"empty", []byte{}, 200},
		{"script", []byte("#!/bin/sh\necho hi\n"), 200},
		{"gzip stays gzip", gz.Bytes(), 200},
		{"binary", []byte{0, 1, 2, 0xff, '\n', 0xfe}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, imdstest.Config{UserData: tc.data})
			a := get(t, s, token(t, s, "60"), "/latest/user-data")
			require.Equal(t, tc.status, a.status)
			if tc.status == 200 {
				assert.Equal(t, string(tc.data), a.body)
			}
		})
	}
}

func TestSpotAndRebalanceNotices(t *testing.T) {
	clk := newClock()
	start := clk.Now()
	s := newServer(t, imdstest.Config{
		Now: clk.Now, SpotActionAfter: 10 * time.Minute, RebalanceAfter: 5 * time.Minute,
	})
	const spot = "/latest/meta-data/spot/instance-action"
	const rebalance = "/latest/meta-data/events/recommendations/rebalance"

	assert.Equal(t, "spot", get(t, s, "", "/latest/meta-data/instance-life-cycle").body)
	assert.Equal(t, 404, get(t, s, "", spot).status)
	assert.Equal(t, 404, get(t, s, "", rebalance).status)
	assert.Equal(t, "", get(t, s, "", "/latest/meta-data/spot/").body)

	clk.Advance(5 * time.Minute)
	a := get(t, s, "", rebalance)
	require.Equal(t, 200, a.status)
	var notice struct{ NoticeTime time.Time }
	require.NoError(t, json.Unmarshal([]byte(a.body), &notice))
	assert.Equal(t, start.Add(5*time.Minute), notice.NoticeTime)
	assert.Equal(t, "rebalance", get(t, s, "", "/latest/meta-data/events/recommendations/").body)
	assert.Equal(t, 404, get(t, s, "", spot).status)

	clk.Advance(5 * time.Minute)
	a = get(t, s, "", spot)
	require.Equal(t, 200, a.status)
	var action struct {
		Action string
		Time   time.Time
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &action))
	assert.Equal(t, "terminate", action.Action)
	assert.Equal(t, start.Add(12*time.Minute), action.Time, "two minutes' warning")
	assert.Equal(t, "2025-03-01T12:12:00Z", get(t, s, "", "/latest/meta-data/spot/termination-time").body)
	assert.Equal(t, "instance-action\ntermination-time", get(t, s, "", "/latest/meta-data/spot/").body)

	s.Update(func(c *imdstest.Config) { c.SpotAction = "stop" })
	require.NoError(t, json.Unmarshal([]byte(get(t, s, "", spot).body), &action))
	assert.Equal(t, "stop", action.Action)
	assert.Equal(t, 404, get(t, s, "", "/latest/meta-data/spot/termination-time").status)
}

func TestScheduledEvents(t *testing.T) {
	nb := time.Date(2025, 1, 21, 9, 0, 43, 0, time.UTC)
	s := newServer(t, imdstest.Config{ScheduledEvents: []imdstest.ScheduledEvent{{
		Code: "system-reboot", Description: "scheduled reboot", EventID: "instance-event-0d59937288b749b32",
		State: "active", NotBefore: nb, NotAfter: nb.Add(time.Hour),
	}}})
	a := get(t, s, "", "/latest/meta-data/events/maintenance/scheduled")
	require.Equal(t, http.StatusOK, a.status)
	var evs []map[string]string
	require.NoError(t, json.Unmarshal([]byte(a.body), &evs))
	require.Len(t, evs, 1)
	assert.Equal(t, map[string]string{
		"Code": "system-reboot", "Description": "scheduled reboot",
		"EventId": "instance-event-0d59937288b749b32", "State": "active",
		"NotBefore": "21 Jan 2025 09:00:43 GMT", "NotAfter": "21 Jan 2025 10:00:43 GMT",
	}, evs[0])
}
