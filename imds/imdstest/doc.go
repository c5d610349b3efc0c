// Package imdstest is an emulator of the EC2 instance metadata service (IMDS) for tests, demos
// and `imdsv2 mock`. It serves plain HTTP like the real service and answers the way the real
// service does in every respect a client can observe, so that client code can be tested without
// EC2:
//
//   - IMDSv2 session tokens: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
//     1..21600 gives a token and echoes the TTL; a missing, zero, too large or non-numeric TTL is
//     400; X-Forwarded-For is 403; a versioned token path (/2021-03-23/api/token) is 403; GET or
//     POST on the token path is 405 with "Allow: OPTIONS, PUT". Tokens expire on the Config.Now
//     clock.
//   - GETs: a valid token is 200, an invalid or expired one 401; no token is 401 with
//     HTTPTokens "required" and 200 (an IMDSv1 call, logged with TokenSent false) with "optional".
//     EndpointDisabled (HttpEndpoint=disabled) answers 403 to everything.
//   - The metadata tree under /latest/ and every dated version: meta-data (identity, placement,
//     network interface, IAM info and role credentials, tags, spot and rebalance notices on a
//     timer, scheduled events, Auto Scaling lifecycle state), user-data, and the signed instance
//     identity document. Unknown paths are 404; a directory lists its children one per line.
//   - The hop limit: answers to token PUTs leave with IP TTL (IPv6 hop limit) Config.HopLimit, so
//     that across a network namespace boundary a container two hops away never gets its token,
//     exactly as on EC2 (see hoplimit.go). On loopback this is invisible.
//   - Throttling (drop or 429) and injected faults (delay, reset, close, error status, hang) for
//     testing time-outs and retries, and a request log that never holds token values.
//
// It never issues a real AWS credential: role credentials are random strings whose access key id
// starts with FakeAccessKeyPrefix, and the identity document is signed with a test key made in
// memory (SigningCertificate).
//
// NewServer listens on 127.0.0.1 only. To serve the real addresses (169.254.169.254:80,
// [fd00:ec2::254]:80), create the server with NewUnstartedServer and call Serve with listeners
// inside a network namespace, as internal/testbed does; never on the host's own network.
//
// Options change while the server runs through Update, the way
// modify-instance-metadata-options changes a running instance.
package imdstest
