// Package ec2test holds tests that run on a real EC2 instance, behind the build tag ec2, so that
// a user on EC2 can check the client, imdsv2 doctor and the emulator (imds/imdstest) against the
// real service. They never run in CI or on a machine that is not an instance: they send requests
// to 169.254.169.254. Run them on an instance (as any user; the AWS CLI is not needed) with
//
//	IMDSV2_TEST_ON_EC2=1 go test -tags ec2 -count=1 -v ./internal/ec2test/
//
// The variable is a second lock: built with the tag but without it, every test skips. The tests
// send IMDSv2 requests only (no tokenless GET), so they do not show up as IMDSv1 use.
//
// They live in a package of their own because the test binaries of imds and cmd/imdsv2 run, as
// root, in a private network namespace with only loopback (internal/netguard), from which the
// real service cannot be reached.
package ec2test
