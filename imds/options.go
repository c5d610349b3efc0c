package imds

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// Environment variables New reads, the same ones the AWS SDKs honour.
const (
	// EnvDisabled set to "true" (any case) makes every call fail with ErrDisabled.
	EnvDisabled = "AWS_EC2_METADATA_DISABLED"
	// EnvEndpoint is the endpoint URL, e.g. "http://169.254.169.254".
	EnvEndpoint = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
	// EnvEndpointMode is "IPv4", "IPv6" or "Auto" (any case).
	EnvEndpointMode = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
	// EnvV1Disabled set to "true" (any case) forbids the IMDSv1 fallback.
	EnvV1Disabled = "AWS_EC2_METADATA_V1_DISABLED"
)

// The IMDS endpoints (http://169.254.169.254 and http://[fd00:ec2::254]).
const (
	// EndpointIPv4 is IMDS on its IPv4 link-local address.
	EndpointIPv4 = imdsfacts.EndpointIPv4
	// EndpointIPv6 is IMDS on its IPv6 address (Nitro instances with HttpProtocolIpv6=enabled).
	EndpointIPv6 = imdsfacts.EndpointIPv6
)

// Defaults of the Options fields.
const (
	DefaultTokenTTL       = 6 * time.Hour // the most IMDS grants
	DefaultDialTimeout    = 250 * time.Millisecond
	DefaultTokenTimeout   = time.Second
	DefaultRequestTimeout = 500 * time.Millisecond
	DefaultTimeout        = 1500 * time.Millisecond
	DefaultMaxAttempts    = 3
	DefaultMaxBodyBytes   = 1 << 20
)

// MaxTokenTTL is the longest session token lifetime IMDS grants.
const MaxTokenTTL = 21600 * time.Second

// EndpointMode chooses the IMDS address family when no endpoint URL is given.
type EndpointMode uint8

const (
	// EndpointModeUnset leaves the choice to AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, else IPv4.
	EndpointModeUnset EndpointMode = iota
	// EndpointModeIPv4 uses http://169.254.169.254.
	EndpointModeIPv4
	// EndpointModeIPv6 uses http://[fd00:ec2::254].
	EndpointModeIPv6
	// EndpointModeAuto tries IPv4 first and IPv6 when IPv4 is refused or has no route, and keeps
	// using whichever answered.
	EndpointModeAuto
)

// String returns the name used in AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE.
func (m EndpointMode) String() string {
	switch m {
	case EndpointModeUnset:
		return "unset"
	case EndpointModeIPv4:
		return "IPv4"
	case EndpointModeIPv6:
		return "IPv6"
	case EndpointModeAuto:
		return "Auto"
	}
	return "EndpointMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseEndpointMode parses "IPv4", "IPv6" or "Auto", in any case.
func ParseEndpointMode(s string) (EndpointMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ipv4":
		return EndpointModeIPv4, nil
	case "ipv6":
		return EndpointModeIPv6, nil
	case "auto":
		return EndpointModeAuto, nil
	}
	return EndpointModeUnset, errors.New("imds: endpoint mode " + strconv.Quote(s) +
		" is not one of IPv4, IPv6, Auto")
}

// Options configure a Client. The zero value works: IPv4 endpoint, 6-hour tokens, no IMDSv1,
// and failures reported within 1.5 s.
//
// Precedence: a field set to a non-zero value wins over its environment variable, which wins over
// the default. Boolean fields can only be switched on here; to keep the environment from
// switching something on, give a Getenv that does not return it. The one exception is
// AWS_EC2_METADATA_V1_DISABLED=true, which overrides AllowIMDSv1: the environment can forbid
// IMDSv1 but never allow it.
type Options struct {
	// Endpoint is the base URL of the service, such as "http://169.254.169.254" or an emulator's
	// URL. A path in it is kept as a prefix. When set (here or by the variable), EndpointMode is
	// ignored. Default: AWS_EC2_METADATA_SERVICE_ENDPOINT, else chosen by EndpointMode.
	Endpoint string

	// EndpointMode picks the endpoint when Endpoint is empty.
	// Default: AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, else EndpointModeIPv4.
	EndpointMode EndpointMode

	// Disabled makes every call fail with ErrDisabled without sending anything.
	// Default: AWS_EC2_METADATA_DISABLED=true, else false.
	Disabled bool

	// TokenTTL is the lifetime asked for each session token, 1 s to 6 h, in whole seconds (a
	// fraction is dropped). Out of range is an error from New. Default 6 h (DefaultTokenTTL). The
	// token is renewed when less than a tenth of it (at most one minute) is left.
	TokenTTL time.Duration

	// AllowIMDSv1 lets a call fall back to a tokenless request when its token request is refused
	// with 403, 404 or 405 or hits the hop-limit time-out. Each fallback is reported to OnFallback
	// and counted by Client.Fallbacks; the next call tries a token again.
	// Default false; AWS_EC2_METADATA_V1_DISABLED=true forces false.
	AllowIMDSv1 bool

	// OnFallback, if set, is called (synchronously, before the tokenless request) for every
	// IMDSv1 fallback. Default nil.
	OnFallback func(Fallback)

	// HTTPClient sends the requests. Its Timeout and transport settings then apply instead of
	// DialTimeout; the other time-outs still apply. Its CheckRedirect does not: the client uses a
	// copy that never follows a redirect (ErrRedirect). It should not use a proxy: IMDS refuses
	// to issue tokens through one. Default: a client of this package's own with keep-alive
	// connections and no proxy.
	HTTPClient *http.Client

	// DialTimeout bounds name resolution and TCP connect. Default 250 ms (DefaultDialTimeout).
	DialTimeout time.Duration

	// TokenTimeout is how long a token request waits for its answer once it has been sent.
	// Default 1 s (DefaultTokenTimeout). Expiry is reported as ErrHopLimit.
	TokenTimeout time.Duration

	// RequestTimeout bounds one attempt of a GET, connecting included; an attempt that times out
	// is retried. Default 500 ms (DefaultRequestTimeout).
	RequestTimeout time.Duration

	// Timeout bounds a whole call, token request and retries included, when the caller's context
	// has no deadline. Default 1.5 s (DefaultTimeout). It should be at least
	// DialTimeout+TokenTimeout, or the hop limit is reported as a time-out.
	Timeout time.Duration

	// MaxAttempts is how many times one request is tried when it fails with a 5xx or 429 answer, a
	// time-out or a broken connection. Default 3 (DefaultMaxAttempts); 1 disables retries.
	MaxAttempts int

	// MaxBodyBytes bounds an answer (user data after decompression too); larger answers fail with
	// ErrTooLarge. Default 1 MiB (DefaultMaxBodyBytes). IMDS itself limits user data to 16 KiB.
	MaxBodyBytes int64

	// UserAgent is sent with every request. Default "imdsv2-go".
	UserAgent string

	// Getenv looks up environment variables. Default os.Getenv. A function returning "" makes
	// the client ignore the environment.
	Getenv func(string) string
}

// hooks are the seams of this package's tests, kept out of Options: the clock for token expiry,
// the dialer of the default transport, and the endpoints of EndpointModeAuto. New uses none.
type hooks struct {
	now  func() time.Time
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	auto []string
}

// Fallback describes one IMDSv1 fallback, for Options.OnFallback.
type Fallback struct {
	// Op is the Client method that fell back: "InstanceID", "Get", "UserData", ...
	Op string
	// Path is the URL path of the GET that goes out without a token,
	// e.g. "/latest/meta-data/instance-id".
	Path string
	// Endpoint is the base URL the request goes to.
	Endpoint string
	// Reason is the token request's error (ErrHopLimit or ErrTokenRefused/ErrDisabled).
	Reason error
}

// String says what fell back and why, e.g. "InstanceID: GET /latest/meta-data/instance-id at
// http://169.254.169.254 without a token (IMDSv1), because imds: PUT ...".
func (f Fallback) String() string {
	s := f.Op + ": GET " + f.Path + " at " + f.Endpoint + " without a token (IMDSv1)"
	if f.Reason != nil {
		s += ", because " + f.Reason.Error()
	}
	return s
}

// endpoint is one parsed base URL.
type endpoint struct {
	scheme, host string
	prefix       string         // path prefix without trailing slash, usually ""
	base         string         // scheme://host+prefix, for messages
	addr         netip.AddrPort // host as a literal address and port, if it is one (to detect proxies)
}

func parseEndpoint(raw string) (endpoint, error) {
	// Messages show the URL without its user information: a password there must not end up in
	// a log (RedactURL). A URL that has any is refused before it is parsed, since the parser's
	// own errors can quote pieces of it.
	shown := strconv.Quote(RedactURL(raw))
	if shown != strconv.Quote(raw) {
		return endpoint{}, errors.New("imds: endpoint " + shown +
			" contains user information (user:password@), which IMDS does not take; remove it")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return endpoint{}, errors.New("imds: endpoint " + shown + " is not a URL: " + netCause(err).Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, errors.New("imds: endpoint " + shown + " must start with http:// or https://")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, errors.New("imds: endpoint " + shown +
			" must be scheme://host[:port][/prefix], without user, query or fragment")
	}
	ep := endpoint{scheme: u.Scheme, host: u.Host, prefix: strings.TrimRight(u.Path, "/")}
	ep.base = ep.scheme + "://" + ep.host + ep.prefix
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		port := u.Port()
		if port == "" {
			port = "80"
			if u.Scheme == "https" {
				port = "443"
			}
		}
		if n, err := strconv.ParseUint(port, 10, 16); err == nil {
			ep.addr = netip.AddrPortFrom(a.Unmap(), uint16(n))
		}
	}
	return ep, nil
}

// config is Options resolved against the environment and defaults.
type config struct {
	endpoints    []endpoint // one, or two in Auto mode (IPv4 first)
	mode         EndpointMode
	disabled     string // why calls are disabled, "" if they are not
	ttl          time.Duration
	allowV1      bool
	v1EnvBlocked bool
	onFallback   func(Fallback)
	dialTimeout  time.Duration
	tokenTimeout time.Duration
	reqTimeout   time.Duration
	timeout      time.Duration
	maxAttempts  int
	maxBody      int64
	userAgent    string
	now          func() time.Time
}

func envTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// resolve checks o, then resolves it against the defaults, the environment and the endpoint
// choice, in that order.
func resolve(o Options, h hooks) (config, error) {
	if err := validate(o); err != nil {
		return config{}, err
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := withDefaults(o, h)
	applyEnvironment(&cfg, o, getenv)
	var err error
	cfg.endpoints, cfg.mode, err = chooseEndpoints(o, h, getenv)
	if err != nil {
		return config{}, err
	}
	return cfg, nil
}

// validate refuses Options fields out of range; the environment is checked where it is read.
func validate(o Options) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DialTimeout", o.DialTimeout}, {"TokenTimeout", o.TokenTimeout},
		{"RequestTimeout", o.RequestTimeout}, {"Timeout", o.Timeout}} {
		if d.v < 0 {
			return errors.New("imds: Options." + d.name + " is negative")
		}
	}
	if o.MaxAttempts < 0 {
		return errors.New("imds: Options.MaxAttempts is negative")
	}
	if o.MaxBodyBytes < 0 {
		return errors.New("imds: Options.MaxBodyBytes is negative")
	}
	if ttl := o.TokenTTL.Truncate(time.Second); o.TokenTTL != 0 && (ttl < time.Second || ttl > MaxTokenTTL) {
		return errors.New("imds: Options.TokenTTL " + o.TokenTTL.String() +
			" is outside the range IMDS accepts, 1s to 6h (21600 s)")
	}
	if o.EndpointMode > EndpointModeAuto {
		return errors.New("imds: Options.EndpointMode " + o.EndpointMode.String() + " is not valid")
	}
	return nil
}

// withDefaults is the configuration of valid Options before the environment: each zero field
// replaced by its default.
func withDefaults(o Options, h hooks) config {
	cfg := config{
		allowV1:      o.AllowIMDSv1,
		onFallback:   o.OnFallback,
		dialTimeout:  orDefault(o.DialTimeout, DefaultDialTimeout),
		tokenTimeout: orDefault(o.TokenTimeout, DefaultTokenTimeout),
		reqTimeout:   orDefault(o.RequestTimeout, DefaultRequestTimeout),
		timeout:      orDefault(o.Timeout, DefaultTimeout),
		ttl:          orDefault(o.TokenTTL.Truncate(time.Second), DefaultTokenTTL),
		maxAttempts:  o.MaxAttempts,
		maxBody:      o.MaxBodyBytes,
		userAgent:    o.UserAgent,
		now:          h.now,
	}
	if cfg.maxAttempts == 0 {
		cfg.maxAttempts = DefaultMaxAttempts
	}
	if cfg.maxBody == 0 {
		cfg.maxBody = DefaultMaxBodyBytes
	}
	if cfg.userAgent == "" {
		cfg.userAgent = "imdsv2-go"
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return cfg
}

// applyEnvironment applies AWS_EC2_METADATA_DISABLED and AWS_EC2_METADATA_V1_DISABLED, which can
// switch things off but never on.
func applyEnvironment(cfg *config, o Options, getenv func(string) string) {
	switch {
	case o.Disabled:
		cfg.disabled = "Options.Disabled is set"
	case envTrue(getenv(EnvDisabled)):
		cfg.disabled = EnvDisabled + "=true is set in this process's environment"
	}
	if envTrue(getenv(EnvV1Disabled)) {
		cfg.v1EnvBlocked = true
		cfg.allowV1 = false
	}
}

// chooseEndpoints picks the endpoints: the URL of Options.Endpoint or
// AWS_EC2_METADATA_SERVICE_ENDPOINT if there is one, else the address of the endpoint mode
// (Options.EndpointMode, else AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, else IPv4). The mode
// returned is EndpointModeUnset when a URL was given.
func chooseEndpoints(o Options, h hooks, getenv func(string) string) ([]endpoint, EndpointMode, error) {
	raw, source := o.Endpoint, "Options.Endpoint"
	if raw == "" {
		raw, source = strings.TrimSpace(getenv(EnvEndpoint)), EnvEndpoint
	}
	mode := o.EndpointMode
	if mode == EndpointModeUnset {
		if v := strings.TrimSpace(getenv(EnvEndpointMode)); v != "" {
			m, err := ParseEndpointMode(v)
			if err != nil {
				return nil, 0, errors.New("imds: " + EnvEndpointMode + "=" + strconv.Quote(v) +
					" is not one of IPv4, IPv6, Auto")
			}
			mode = m
		}
	}
	var raws []string
	switch {
	case raw != "":
		raws, mode = []string{raw}, EndpointModeUnset
	case mode == EndpointModeIPv6:
		raws = []string{EndpointIPv6}
	case mode == EndpointModeAuto:
		raws = []string{EndpointIPv4, EndpointIPv6}
		if h.auto != nil {
			raws = h.auto
		}
	default:
		raws, mode = []string{EndpointIPv4}, EndpointModeIPv4
	}
	eps := make([]endpoint, 0, len(raws))
	for _, r := range raws {
		ep, err := parseEndpoint(r)
		if err != nil && raw != "" {
			return nil, 0, errors.New(err.Error() + " (from " + source + ")")
		}
		if err != nil {
			return nil, 0, err
		}
		eps = append(eps, ep)
	}
	return eps, mode, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
