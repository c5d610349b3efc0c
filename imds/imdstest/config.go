package imdstest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Values of Config.HTTPTokens, named after the instance option HttpTokens.
const (
	// TokensOptional answers tokenless GETs (IMDSv1) as well as GETs with a valid token.
	TokensOptional = "optional"
	// TokensRequired answers tokenless GETs with 401, as an instance with HttpTokens=required does.
	TokensRequired = "required"
)

// MaxTokenTTL is the largest token lifetime, in seconds, that IMDS grants (6 hours).
const MaxTokenTTL = 21600

// Config describes the emulated instance and its metadata options. The zero value is a usable
// instance: HttpTokens optional, endpoint enabled, hop limit 1, no instance profile, no user data,
// tags disabled, and the identity values listed on each field.
//
// A Config given to NewServer or changed through Server.Update is copied; later changes to maps
// or slices the caller still holds do not reach the server.
type Config struct {
	// HTTPTokens is "optional" (default, also for "") or "required", case-insensitive. Any other
	// value is treated as "required": a test should never get IMDSv1 answers it did not ask for.
	HTTPTokens string
	// EndpointDisabled emulates HttpEndpoint=disabled: every request is answered 403.
	EndpointDisabled bool
	// HopLimit is HttpPutResponseHopLimit, the IP TTL (IPv6 hop limit) of answers to token PUTs.
	// Default 1; values below 1 become 1 and values above 64 become 64, the limits AWS accepts.
	HopLimit int

	// TagsEnabled emulates InstanceMetadataTags=enabled; without it meta-data/tags/ is 404.
	TagsEnabled bool
	// Tags are the instance tags served under meta-data/tags/instance/. Keys that are empty or
	// contain "/" are left out, since IMDS cannot serve them as a path segment.
	Tags map[string]string

	// InstanceID defaults to "i-0123456789abcdef0".
	InstanceID string
	// Region defaults to "us-east-1".
	Region string
	// AvailabilityZone defaults to Region + "a".
	AvailabilityZone string
	// InstanceType defaults to "t3.micro".
	InstanceType string
	// AMIID defaults to "ami-0123456789abcdef0".
	AMIID string
	// AccountID defaults to "123456789012" (the owner in the identity document and the role ARN).
	AccountID string
	// Architecture defaults to "x86_64".
	Architecture string
	// LocalIPv4 defaults to "10.0.0.10". It is only data: the emulator never sends to it.
	LocalIPv4 string
	// LocalHostname defaults to "ip-10-0-0-10.ec2.internal" (".<region>.compute.internal"
	// outside us-east-1), derived from LocalIPv4.
	LocalHostname string
	// Hostname defaults to LocalHostname.
	Hostname string
	// MAC of the primary interface, defaults to "0e:12:34:56:78:9a".
	MAC string
	// IPv6 is the instance's IPv6 address; "" (default) means none, and meta-data/ipv6 is 404.
	IPv6 string
	// InterfaceID, SubnetID, VPCID default to fixed fake ids ("eni-...", "subnet-...", "vpc-...").
	InterfaceID, SubnetID, VPCID string
	// SubnetCIDR and VPCCIDR default to "10.0.0.0/24" and "10.0.0.0/16".
	SubnetCIDR, VPCCIDR string
	// SecurityGroups defaults to ["default"].
	SecurityGroups []string

	// RoleName is the IAM role of the instance profile; "" (default) means no profile, and
	// meta-data/iam/ is 404.
	RoleName string
	// InstanceProfileName defaults to RoleName.
	InstanceProfileName string
	// CredentialLifetime is how long served role credentials stay valid, default 6h. New
	// credentials replace them CredentialRefreshBefore before they expire, as on EC2.
	CredentialLifetime time.Duration
	// CredentialCode is the Code of the credentials document; "" means "Success". Any other value
	// emulates the failure IMDS reports as a 200 answer, e.g. "AssumeRoleUnauthorizedAccess";
	// the document then carries no keys.
	CredentialCode string

	// UserData is served raw at /latest/user-data (gzip bytes stay gzip); nil means 404.
	UserData []byte

	// SpotActionAfter, when > 0, makes meta-data/spot/instance-action appear that long after the
	// server started (on the Now clock), announcing SpotAction two minutes later.
	SpotActionAfter time.Duration
	// SpotAction is "terminate" (default), "stop" or "hibernate".
	SpotAction string
	// RebalanceAfter, when > 0, makes meta-data/events/recommendations/rebalance appear that long
	// after the server started.
	RebalanceAfter time.Duration
	// ScheduledEvents is served as meta-data/events/maintenance/scheduled; nil means "[]".
	ScheduledEvents []ScheduledEvent
	// TargetLifecycleState is meta-data/autoscaling/target-lifecycle-state; "" means the path is
	// 404 (the instance is not in an Auto Scaling group).
	TargetLifecycleState string

	// Throttle limits the request rate; the zero value does not throttle.
	Throttle Throttle

	// RequestLogLimit bounds the request log (Server.Requests); when it is full, the oldest tenth
	// is dropped. Default MaxLoggedRequests.
	RequestLogLimit int

	// ReadHeaderTimeout bounds the time from accepting a connection to the end of the request's
	// header block; a connection that takes longer is closed unanswered and unlogged. Default
	// 10 s (DefaultReadHeaderTimeout). Tests that start many processes on a starved machine (a VM
	// without KVM) raise it: the server itself may not run for that long. It is read once, when
	// the server is created.
	ReadHeaderTimeout time.Duration

	// Now is the clock for token and credential expiry, notice timers, throttling and the request
	// log. Default time.Now. Tests that move time by hand must make it safe for concurrent use.
	Now func() time.Time
}

// ScheduledEvent is one entry of meta-data/events/maintenance/scheduled.
type ScheduledEvent struct {
	Code        string    // e.g. "system-reboot", "instance-stop"
	Description string    // free text
	EventID     string    // "instance-event-..."
	State       string    // "active", "completed" or "canceled"
	NotBefore   time.Time // formatted as IMDS does: "2 Jan 2006 15:04:05 GMT"
	NotAfter    time.Time // zero: omitted
}

// ThrottleMode says what a throttled request gets.
type ThrottleMode int

const (
	// ThrottleDrop leaves the request unanswered until the client gives up or the server closes,
	// which is what clients of the real service mostly see (dropped packets, time-outs).
	ThrottleDrop ThrottleMode = iota
	// Throttle429 answers 429 Too Many Requests, which has also been reported.
	Throttle429
	// ThrottleClose closes the connection without an answer.
	ThrottleClose
)

// String returns the mode's name.
func (m ThrottleMode) String() string {
	switch m {
	case ThrottleDrop:
		return "drop"
	case Throttle429:
		return "429"
	case ThrottleClose:
		return "close"
	}
	return "ThrottleMode(" + strconv.Itoa(int(m)) + ")"
}

// Throttle is a token bucket over all requests, refilled on the Config.Now clock, so that a test
// with a frozen clock gets exactly Burst requests through.
type Throttle struct {
	// RequestsPerSecond is the refill rate; <= 0 disables throttling.
	RequestsPerSecond float64
	// Burst is the bucket size; < 1 means 1.
	Burst int
	// Mode is what a request over the limit gets; default ThrottleDrop, as on EC2.
	Mode ThrottleMode
}

// CredentialRefreshBefore is how long before expiry the emulator replaces role credentials; AWS
// documents that new credentials are available at least five minutes before the old ones expire.
const CredentialRefreshBefore = 5 * time.Minute

// normalized returns a deep copy of c with every default filled in.
func (c Config) normalized() Config {
	n := c
	n.Tags = maps.Clone(c.Tags)
	n.SecurityGroups = slices.Clone(c.SecurityGroups)
	n.UserData = slices.Clone(c.UserData)
	n.ScheduledEvents = slices.Clone(c.ScheduledEvents)

	switch strings.ToLower(strings.TrimSpace(c.HTTPTokens)) {
	case "", TokensOptional:
		n.HTTPTokens = TokensOptional
	default:
		n.HTTPTokens = TokensRequired
	}
	n.HopLimit = min(max(c.HopLimit, 1), 64)
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&n.InstanceID, "i-0123456789abcdef0")
	def(&n.Region, "us-east-1")
	def(&n.AvailabilityZone, n.Region+"a")
	def(&n.InstanceType, "t3.micro")
	def(&n.AMIID, "ami-0123456789abcdef0")
	def(&n.AccountID, "123456789012")
	def(&n.Architecture, "x86_64")
	def(&n.LocalIPv4, "10.0.0.10")
	domain := n.Region + ".compute.internal"
	if n.Region == "us-east-1" {
		domain = "ec2.internal"
	}
	def(&n.LocalHostname, "ip-"+strings.ReplaceAll(n.LocalIPv4, ".", "-")+"."+domain)
	def(&n.Hostname, n.LocalHostname)
	def(&n.MAC, "0e:12:34:56:78:9a")
	def(&n.InterfaceID, "eni-0123456789abcdef0")
	def(&n.SubnetID, "subnet-0123456789abcdef0")
	def(&n.VPCID, "vpc-0123456789abcdef0")
	def(&n.SubnetCIDR, "10.0.0.0/24")
	def(&n.VPCCIDR, "10.0.0.0/16")
	if len(n.SecurityGroups) == 0 {
		n.SecurityGroups = []string{"default"}
	}
	def(&n.InstanceProfileName, n.RoleName)
	if n.CredentialLifetime <= 0 {
		n.CredentialLifetime = 6 * time.Hour
	}
	def(&n.SpotAction, "terminate")
	if n.Throttle.Burst < 1 {
		n.Throttle.Burst = 1
	}
	if n.RequestLogLimit <= 0 {
		n.RequestLogLimit = MaxLoggedRequests
	}
	if n.ReadHeaderTimeout <= 0 {
		n.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	return n
}
