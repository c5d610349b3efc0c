package imdstest

import (
	"crypto/rand"
	"sync"
	"time"
)

// FakeAccessKeyPrefix starts every access key id the emulator issues, so that a leaked one is
// recognisable at a glance. Real temporary keys start with "ASIA".
const FakeAccessKeyPrefix = "ASIAEMULATOR"

// credentials are one set of fake role credentials.
type credentials struct {
	role                       string
	accessKeyID, secret, token string
	lastUpdated, expiration    time.Time
	issuedFor                  time.Duration // lifetime they were issued with
}

// credStore hands out the current credentials and replaces them before they expire.
type credStore struct {
	mu  sync.Mutex
	cur credentials
}

// get returns the credentials valid at now for role, issuing new ones when there are none for
// role, when the lifetime changed, when the refresh margin before expiry is reached, or when the
// clock went backwards past their issue time.
func (cs *credStore) get(role string, lifetime time.Duration, now time.Time) credentials {
	margin := min(CredentialRefreshBefore, lifetime/2)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.cur
	if c.role != role || c.issuedFor != lifetime || !now.Before(c.expiration.Add(-margin)) ||
		now.Before(c.lastUpdated) {
		c = credentials{
			role:        role,
			accessKeyID: FakeAccessKeyPrefix + randomText(8, upperDigits),
			secret:      "imdstest/fake/" + randomText(26, base64Chars),
			token:       "IMDSTEST-FAKE-SESSION-TOKEN-" + randomText(96, base64Chars),
			lastUpdated: now.UTC().Truncate(time.Second),
			issuedFor:   lifetime,
		}
		c.expiration = c.lastUpdated.Add(lifetime)
		cs.cur = c
	}
	return c
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// randomText returns n random characters of alphabet (whose length divides 256).
func randomText(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never returns an error since Go 1.24
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// addIAM adds iam/info and iam/security-credentials/<role> to the meta-data tree.
func (s *Server) addIAM(md *node, c *Config) {
	role, code, lifetime := c.RoleName, c.CredentialCode, c.CredentialLifetime
	profileARN := "arn:" + partition(c.Region) + ":iam::" + c.AccountID + ":instance-profile/" +
		c.InstanceProfileName
	profileID := "AIPAEMULATOR" + stableID(c.InstanceProfileName)
	md.add("iam/info", func(now time.Time) ([]byte, bool) {
		cr := s.creds.get(role, lifetime, now)
		return prettyJSON(
			kv{"Code", "Success"},
			kv{"LastUpdated", imdsTime(cr.lastUpdated)},
			kv{"InstanceProfileArn", profileARN},
			kv{"InstanceProfileId", profileID},
		), true
	})
	md.add("iam/security-credentials/"+role, func(now time.Time) ([]byte, bool) {
		cr := s.creds.get(role, lifetime, now)
		if code != "" && code != "Success" {
			return prettyJSON(
				kv{"Code", code},
				kv{"Message", "imdstest: emulated failure " + code + " for role " + role},
				kv{"LastUpdated", imdsTime(cr.lastUpdated)},
			), true
		}
		return prettyJSON(
			kv{"Code", "Success"},
			kv{"LastUpdated", imdsTime(cr.lastUpdated)},
			kv{"Type", "AWS-HMAC"},
			kv{"AccessKeyId", cr.accessKeyID},
			kv{"SecretAccessKey", cr.secret},
			kv{"Token", cr.token},
			kv{"Expiration", imdsTime(cr.expiration)},
		), true
	})
}

// stableID derives a 9-character upper-case id from s, so that ids stay the same across
// requests without being stored.
func stableID(s string) string {
	sum := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		sum = (sum ^ uint64(s[i])) * 1099511628211
	}
	b := make([]byte, 9)
	for i := range b {
		b[i] = upperDigits[sum%32]
		sum /= 32
	}
	return string(b)
}
