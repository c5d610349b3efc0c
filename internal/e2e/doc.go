// Package e2e holds the end-to-end test of the auditor (issue 3, "Checked by"): the eBPF agent
// attached to a cgroup the test creates, the user-space auditor reading it, and real clients
// (curl, python3, this project's imdsv2 binary, aws-sdk-go-v2, hand-written HTTP) calling the
// emulator at the real IMDS addresses inside the network-namespace test bed. TestRealClients runs
// clients nobody here wrote (Debian's botocore, awscli, cloud-init, requests; aws-sdk-go v1 and v2
// from the Go module proxy, built from testdata/goclients) and checks who the auditor says called
// and what it advises.
//
// It has no API; everything is in its tests. Run it as root:
//
//	CI=true go test -count=1 ./internal/e2e/
//
// Outside CI it skips with a reason when root, curl or python3 is missing.
//
// Real clients (issue 13): the AWS SDK for JavaScript v2 and v3 are installed from the npm
// registry at pinned versions into the user's cache (IMDSV2_TEST_CACHE overrides it), npm
// running in the namespace the test binary started in; an unreachable registry skips, and fails
// in CI. Their request heads, Debian's curl's and python3 urllib's, and those of TestRealClients'
// clients (which send a User-Agent, so that no fingerprint may take them) are captured as test
// data for audit/sdk's fingerprints (audit/sdk/testdata/captures):
//
//	go test -count=1 -run 'TestCapture' -update-captures ./internal/e2e/
//
// rewrites them; in CI the same tests compare what the clients send now with what is stored.
// captureCommand and keepCapture are the machinery for a capture of another client.
package e2e
