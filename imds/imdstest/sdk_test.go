package imdstest_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// sdkClient is the AWS SDK's IMDS client pointed at the emulator on loopback, never at the
// default endpoint.
func sdkClient(t *testing.T, s *imdstest.Server, fallback aws.Ternary) *sdkimds.Client {
	t.Helper()
	require.NotEmpty(t, s.URL())
	return sdkimds.New(sdkimds.Options{
		Endpoint:       s.URL(),
		EnableFallback: fallback,
		HTTPClient:     &http.Client{Timeout: 30 * time.Second},
	})
}

func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSDKClient(t *testing.T) {
	for _, tokens := range []string{imdstest.TokensOptional, imdstest.TokensRequired} {
		t.Run(tokens, func(t *testing.T) {
			clk := newClock()
			s := newServer(t, imdstest.Config{
				HTTPTokens: tokens, Now: clk.Now,
				InstanceID: "i-0sdk", Region: "eu-central-1", InstanceType: "m6i.large", AMIID: "ami-0sdk",
				AccountID: "444455556666", LocalIPv4: "10.1.2.3", RoleName: "sdk-role",
				UserData: []byte("#!/bin/bash\necho from user data\n"),
			})
			c := sdkClient(t, s, aws.FalseTernary)
			ctx := sdkCtx(t)

			md, err := c.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: "instance-id"})
			require.NoError(t, err)
			id, err := io.ReadAll(md.Content)
			require.NoError(t, err)
			require.NoError(t, md.Content.Close())
			assert.Equal(t, "i-0sdk", string(id))

			region, err := c.GetRegion(ctx, nil)
			require.NoError(t, err)
			assert.Equal(t, "eu-central-1", region.Region)

			info, err := c.GetIAMInfo(ctx, nil)
			require.NoError(t, err)
			assert.Equal(t, "Success", info.Code)
			assert.Equal(t, "arn:aws:iam::444455556666:instance-profile/sdk-role", info.InstanceProfileArn)
			assert.Equal(t, clk.Now(), info.LastUpdated)

			doc, err := c.GetInstanceIdentityDocument(ctx, nil)
			require.NoError(t, err)
			assert.Equal(t, "i-0sdk", doc.InstanceID)
			assert.Equal(t, "eu-central-1", doc.Region)
			assert.Equal(t, "eu-central-1a", doc.AvailabilityZone)
			assert.Equal(t, "m6i.large", doc.InstanceType)
			assert.Equal(t, "ami-0sdk", doc.ImageID)
			assert.Equal(t, "444455556666", doc.AccountID)
			assert.Equal(t, "10.1.2.3", doc.PrivateIP)
			assert.Equal(t, "x86_64", doc.Architecture)
			assert.Equal(t, clk.Now(), doc.PendingTime)

			ud, err := c.GetUserData(ctx, nil)
			require.NoError(t, err)
			body, err := io.ReadAll(ud.Content)
			require.NoError(t, err)
			require.NoError(t, ud.Content.Close())
			assert.Equal(t, "#!/bin/bash\necho from user data\n", string(body))

			_, err = c.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: "no-such-path"})
			assert.Error(t, err, "404 is an error for the SDK")

			puts, v1 := 0, 0
			for _, r := range s.Requests() {
				if r.Method == http.MethodPut {
					puts++
					assert.Equal(t, 200, r.Status)
				}
				if r.IMDSv1() {
					v1++
				}
				assert.Contains(t, r.UserAgent, "aws-sdk-go-v2")
			}
			assert.Equal(t, 1, puts, "one token, cached by the SDK")
			assert.Zero(t, v1, "the SDK only sends IMDSv2")
		})
	}
}

func TestSDKRetriesAfter401(t *testing.T) {
	s := newServer(t, imdstest.Config{HTTPTokens: imdstest.TokensRequired})
	c := sdkClient(t, s, aws.FalseTernary)
	ctx := sdkCtx(t)
	_, err := c.GetRegion(ctx, nil)
	require.NoError(t, err)

	s.InvalidateTokens() // the SDK's cached token is now refused with 401
	s.ResetRequests()
	region, err := c.GetRegion(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, "us-east-1", region.Region)
	var statuses []int
	for _, r := range s.Requests() {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{401, 200, 200}, statuses, "GET refused, new token, GET again")
}

func TestSDKFallsBackToIMDSv1WhenTokenRefused(t *testing.T) {
	// IMDS-FACTS section 3: a token PUT answered 403/404/405 makes the SDK use IMDSv1.
	s := newServer(t, imdstest.Config{})
	s.InjectFault(imdstest.Fault{Method: http.MethodPut, PathPrefix: "/latest/api/token",
		Kind: imdstest.FaultStatus, Status: http.StatusForbidden})
	c := sdkClient(t, s, aws.UnknownTernary)
	region, err := c.GetRegion(sdkCtx(t), nil)
	require.NoError(t, err)
	assert.Equal(t, "us-east-1", region.Region)

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, 403, reqs[0].Status)
	assert.True(t, reqs[1].IMDSv1(), "the emulator sees the fallback as an IMDSv1 call")

	strict := sdkClient(t, s, aws.FalseTernary)
	_, err = strict.GetRegion(sdkCtx(t), nil)
	assert.Error(t, err, "fallback disabled: the refused token is an error")
}
