// Package imds reads EC2 instance metadata with IMDSv2 session tokens, over IPv4
// (169.254.169.254) or IPv6 ([fd00:ec2::254]), and tells the caller, in the error text, what went
// wrong and how to fix it.
//
// # Use
//
//	c, err := imds.New(imds.Options{}) // the zero Options works
//	if err != nil { ... }
//	region, err := c.Region(ctx)
//
// A Client is safe for concurrent use and should be shared: it holds one session token and a pool
// of keep-alive connections. Typed accessors cover the common paths (InstanceID, Region,
// AvailabilityZone, InstanceType, IdentityDocument, IAMRole, IAMCredentials, UserData, Tags, Tag,
// SpotInstanceAction, RebalanceRecommendation, ScheduledEvents). Get and List read any other path
// under /latest/meta-data/ (Get(ctx, "instance-id"), as the AWS SDK's GetMetadata; a leading "/"
// is ignored), and Dynamic and ListDynamic any path under /latest/dynamic/.
//
// # Session tokens
//
// Every request carries a session token obtained with PUT /latest/api/token. The token lives
// Options.TokenTTL (default and maximum 6 hours) and is renewed shortly before it expires, by one
// PUT however many goroutines need it at that moment. A GET answered 401 (the token was revoked,
// for example by an instance stop and start) drops the token and is retried once with a new one.
// Token values never appear in errors, logs or fmt output.
//
// # No IMDSv1 unless asked for
//
// The client never sends a tokenless (IMDSv1) request unless Options.AllowIMDSv1 is set. Even then
// it falls back only for the call whose token request failed in a way that older instances or
// container set-ups produce (403, 404 or 405 to the PUT, or the hop-limit time-out), reports the
// fallback through Options.OnFallback and Client.Fallbacks, and tries a token again on the next
// call: the fallback is never remembered. AWS_EC2_METADATA_V1_DISABLED=true in the environment
// forbids the fallback even when AllowIMDSv1 is set. This differs from the AWS SDKs, which switch
// to IMDSv1 silently and for the rest of the client's life.
//
// # Time-outs
//
// IMDS answers in well under a millisecond, so anything slow is a failure, and the client says
// which one quickly instead of hanging:
//
//   - Options.DialTimeout (250 ms): no TCP connection in that time means nothing is listening: not
//     on EC2, or IMDS is cut off (ErrUnreachable). Refused and unroutable connections fail at once.
//   - Options.TokenTimeout (1 s): the connection was accepted and the token request sent, but no
//     answer came. This is the signature of an instance whose HttpPutResponseHopLimit is 1 while
//     the caller sits behind a container bridge: IMDS's answer is dropped one hop short
//     (ErrHopLimit). The client tells this apart from an unreachable service by what happened on
//     the connection (net/http/httptrace), never by sending a tokenless request. It is not
//     retried, since the answer would not come on a retry either.
//   - Options.RequestTimeout (500 ms): one GET attempt. Time-outs, 429 and 5xx answers and broken
//     connections are retried, at most Options.MaxAttempts (3) times in all, with jittered
//     exponential back-off. Attempts that all time out are ErrTimeout (IMDS drops requests over
//     its rate limit, so often throttling, but not reported as ErrThrottled, which is for 429).
//   - Options.Timeout (1.5 s): the whole call, token included, when ctx has no deadline (running
//     out of it before any answer is ErrTimeout too). With a deadline on ctx, the deadline
//     governs instead.
//
// So with default options and no deadline on ctx, every failure is reported within 1.5 s. The
// time-outs count time the process could run: a timer that fires late because the process was
// frozen (a paused VM, a CPU quota) waits once more, up to 100 ms, so that a connection or
// answer that arrived meanwhile is not misreported as a failure.
//
// # Environment
//
// New reads these variables (through Options.Getenv, os.Getenv by default); a field set in
// Options wins over its variable:
//
//   - AWS_EC2_METADATA_DISABLED=true: every call fails with ErrDisabled, without any traffic.
//   - AWS_EC2_METADATA_SERVICE_ENDPOINT: the endpoint URL, e.g. http://[fd00:ec2::254].
//   - AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: IPv4 (default), IPv6, or Auto (IPv4 first, IPv6 when
//     IPv4 is refused or has no route; the endpoint that worked is remembered).
//   - AWS_EC2_METADATA_V1_DISABLED=true: no IMDSv1 fallback, whatever Options.AllowIMDSv1 says.
//
// # Redirects
//
// IMDS never redirects, so the client never follows a redirect, on any request: a 3xx answer
// fails with ErrRedirect, which names the status and the host the redirect pointed at, and
// nothing (no session token either) is sent to that host. This holds for an Options.HTTPClient
// too: the client uses a copy of it whose redirect policy refuses redirects (the caller's own
// client is left as it is). A custom RoundTripper that follows redirects by itself is beyond
// the client's reach; net/http's transports do not.
//
// # Errors
//
// Every error returned by a Client method is an *Error. Test its class with errors.Is against the
// sentinels (ErrUnreachable, ErrDisabled, ErrHopLimit, ErrTokenRefused, ErrNotFound,
// ErrThrottled, ErrTimeout, ErrServer, ErrTooLarge, ErrMalformed, ErrTagsNotEnabled, ErrRedirect, ...), or get the details
// (Kind, Op, Path, Endpoint, StatusCode) with errors.As. The text names the problem and the fix.
//
// # Dependencies, and the AWS SDK for Go v2
//
// The package imports the standard library and golang.org/x/sync only (a test checks it), so
// importing it pulls in nothing else. Its adapters to the AWS SDK for Go v2 live in
// github.com/imdsv2/imdsv2/imds/awssdk: NewCredentialsProvider (an aws.CredentialsProvider) and
// NewMetadataClient (the GetMetadataAPIClient interface of credentials/ec2rolecreds), so that SDK
// clients use this package's token handling and errors.
package imds
