package imdstest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

type roleCreds struct {
	Code            string
	Message         string
	LastUpdated     time.Time
	Type            string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      time.Time
}

func fetchCreds(t *testing.T, s *imdstest.Server, role string) roleCreds {
	t.Helper()
	a := get(t, s, "", "/latest/meta-data/iam/security-credentials/"+role)
	require.Equal(t, 200, a.status, a.body)
	var c roleCreds
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&c))
	return c
}

func TestRoleCredentialsRotate(t *testing.T) {
	clk := newClock()
	s := newServer(t, imdstest.Config{RoleName: "app-role", Now: clk.Now})

	c1 := fetchCreds(t, s, "app-role")
	assert.Equal(t, "Success", c1.Code)
	assert.Equal(t, "AWS-HMAC", c1.Type)
	assert.True(t, strings.HasPrefix(c1.AccessKeyID, imdstest.FakeAccessKeyPrefix), c1.AccessKeyID)
	assert.Len(t, c1.AccessKeyID, 20)
	assert.Len(t, c1.SecretAccessKey, 40)
	assert.Contains(t, c1.Token, "FAKE")
	assert.Equal(t, clk.Now(), c1.LastUpdated)
	assert.Equal(t, clk.Now().Add(6*time.Hour), c1.Expiration, "default lifetime")

	clk.Advance(6*time.Hour - imdstest.CredentialRefreshBefore - time.Second)
	assert.Equal(t, c1, fetchCreds(t, s, "app-role"), "same credentials until the refresh margin")

	clk.Advance(time.Second)
	c2 := fetchCreds(t, s, "app-role")
	assert.NotEqual(t, c1.AccessKeyID, c2.AccessKeyID, "rotated five minutes before expiry")
	assert.NotEqual(t, c1.Token, c2.Token)
	assert.Equal(t, clk.Now(), c2.LastUpdated)
	assert.True(t, c2.Expiration.After(c1.Expiration))
	assert.True(t, clk.Now().Before(c1.Expiration), "old set still valid at the rotation")

	clk.Advance(10 * time.Hour)
	c3 := fetchCreds(t, s, "app-role")
	assert.True(t, c3.Expiration.After(clk.Now()), "never serves expired credentials")
}

func TestRoleCredentialsLifetimeAndFailure(t *testing.T) {
	clk := newClock()
	s := newServer(t, imdstest.Config{RoleName: "r", CredentialLifetime: 15 * time.Minute, Now: clk.Now})
	c := fetchCreds(t, s, "r")
	assert.Equal(t, clk.Now().Add(15*time.Minute), c.Expiration)

	s.Update(func(cfg *imdstest.Config) { cfg.CredentialCode = "AssumeRoleUnauthorizedAccess" })
	f := fetchCreds(t, s, "r")
	assert.Equal(t, "AssumeRoleUnauthorizedAccess", f.Code, "failure arrives as 200 with Code")
	assert.Empty(t, f.AccessKeyID)
	assert.Empty(t, f.Token)
	assert.NotEmpty(t, f.Message)

	s.Update(func(cfg *imdstest.Config) { cfg.CredentialCode = ""; cfg.RoleName = "other" })
	assert.Equal(t, 404, get(t, s, "", "/latest/meta-data/iam/security-credentials/r").status)
	o := fetchCreds(t, s, "other")
	assert.NotEqual(t, c.AccessKeyID, o.AccessKeyID, "new role, new credentials")
	assert.Equal(t, "other", get(t, s, "", "/latest/meta-data/iam/security-credentials").body)

	s.Update(func(cfg *imdstest.Config) { cfg.RoleName = "" })
	assert.Equal(t, 404, get(t, s, "", "/latest/meta-data/iam/").status, "profile removed")
}

func TestIAMInfo(t *testing.T) {
	s := newServer(t, imdstest.Config{RoleName: "app-role", InstanceProfileName: "app-profile",
		AccountID: "111122223333", Region: "cn-north-1"})
	a := get(t, s, "", "/latest/meta-data/iam/info")
	require.Equal(t, 200, a.status)
	var info struct {
		Code               string
		LastUpdated        time.Time
		InstanceProfileArn string
		InstanceProfileID  string `json:"InstanceProfileId"`
	}
	require.NoError(t, json.Unmarshal([]byte(a.body), &info))
	assert.Equal(t, "Success", info.Code)
	assert.False(t, info.LastUpdated.IsZero())
	assert.Equal(t, "arn:aws-cn:iam::111122223333:instance-profile/app-profile", info.InstanceProfileArn)
	assert.Regexp(t, `^AIPA[A-Z0-9]{17}$`, info.InstanceProfileID)
	assert.Equal(t, info.InstanceProfileID, func() string {
		var again struct {
			InstanceProfileID string `json:"InstanceProfileId"`
		}
		require.NoError(t, json.Unmarshal([]byte(get(t, s, "", "/latest/meta-data/iam/info").body), &again))
		return again.InstanceProfileID
	}(), "stable")
}
