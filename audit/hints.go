package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// ReadyHints is what the aggregate says about enforcing IMDSv2
// (HttpTokens=required): who would break, and what the hop limit looks like.
// A readiness verdict is built on it elsewhere.
type ReadyHints struct {
	// Complete is false when the audit may have missed or failed to classify
	// a request: events lost, sockets evicted, byte gaps, requests only
	// partly captured, answers with no request. (Callers beyond the table's
	// bound do not make it false: the totals count them.)
	Complete bool `json:"complete"`
	// IMDSv1Callers would get 401 under HttpTokens=required.
	IMDSv1Callers []Hint `json:"imdsv1_callers"`
	// UnansweredTokenPUTs are callers whose token PUTs got no answer (the
	// hop-limit symptom); they break, or fall back to IMDSv1.
	UnansweredTokenPUTs []Hint `json:"unanswered_token_puts"`
	// FailedTokenPUTs are callers whose token PUTs were refused (403 through
	// a proxy, 400 bad TTL, ...).
	FailedTokenPUTs []Hint `json:"failed_token_puts"`
	// SlowTokenAnswers are callers whose token answers came, late
	// (Options.SlowTokenAnswer): SDKs with short time-outs gave up first.
	SlowTokenAnswers []Hint `json:"slow_token_answers"`
	// IPv6Callers used the IPv6 endpoint.
	IPv6Callers []Hint `json:"ipv6_callers"`
	// ObservedHopLimits are the TTLs token answers arrived with.
	ObservedHopLimits []HopLimit `json:"observed_hop_limits"`
	// IncompleteRequests could not be told v1 from v2.
	IncompleteRequests uint64 `json:"incomplete_requests"`
	LostEvents         uint64 `json:"lost_events"`
}

// Hint is one caller that needs attention, with what to do.
type Hint struct {
	Class    Class     `json:"class"`
	Process  Process   `json:"process"`
	Count    uint64    `json:"count"`
	LastSeen time.Time `json:"last_seen"`
	Answers  Answers   `json:"answers,omitempty"`
	SDK      *sdk.Info `json:"sdk,omitempty"`
	// Paths are the caller's most used paths (at most three).
	Paths []string `json:"paths,omitempty"`
	// FellBack says the caller went on with IMDSv1 after its token PUT got
	// no answer (it works now, and breaks under HttpTokens=required).
	FellBack bool `json:"fell_back_to_imdsv1,omitempty"`
	// Unanswered is, for an unanswered-PUT hint, how many of Count got no answer.
	Unanswered uint64 `json:"unanswered,omitempty"`
	// MaxAnswerDelayMillis is, for a slow token answer, the longest wait.
	MaxAnswerDelayMillis int64 `json:"max_token_answer_delay_ms,omitempty"`
	// Aggregated: the caller stands for several command lines (Caller.Aggregated).
	Aggregated bool   `json:"aggregated,omitempty"`
	Advice     string `json:"advice"`
}

// HopLimit is how many token answers arrived with a TTL, split by whether
// the caller runs in a network namespace of its own. In the host's network
// namespace the TTL is the instance's HttpPutResponseHopLimit; each bridge
// on the way takes one off.
type HopLimit struct {
	HopLimit uint8 `json:"hop_limit"`
	// InContainer: the caller runs in a container or pod (by its cgroup).
	InContainer bool `json:"in_container"`
	// OtherNetwork: the caller's socket was in a network namespace of its
	// own (Process.OtherNetwork), so the TTL is not the instance's setting.
	OtherNetwork bool `json:"other_network"`
	// HostNetwork: the kernel saw the caller's socket in the host's network
	// namespace (Process.HostNetwork), so the TTL is the instance's setting
	// even for a caller in a container.
	HostNetwork  bool   `json:"host_network,omitempty"`
	TokenAnswers uint64 `json:"token_answers"`
}

// processFacts is what every caller entry of one process (its executable,
// command line and container) says together: its most specific identity and
// what it did on the wire.
type processFacts struct {
	sdk        *sdk.Info
	askedToken bool   // sent a token PUT
	unanswered uint64 // token PUTs that got no answer
	refusal    int    // the most frequent refusal status of its token PUTs
	slow       uint64 // token answers that came late
	answered   uint64 // token PUTs answered 200
}

func gatherProcesses(callers []Caller) map[callerKey]*processFacts {
	procs := make(map[callerKey]*processFacts)
	for i := range callers {
		c := &callers[i]
		k := keyOf("", &c.Process)
		f := procs[k]
		if f == nil {
			f = &processFacts{}
			procs[k] = f
		}
		if sdk.MoreSpecific(c.SDK, f.sdk) {
			f.sdk = c.SDK
		}
		if isTokenPUTClass(c.Class) {
			f.askedToken = true
			f.unanswered += c.Unanswered
			f.slow += c.SlowAnswers
			f.answered += c.Answers[200]
			if st := c.Answers.Refusal(); st != 0 && f.refusal == 0 {
				f.refusal = st
			}
		}
	}
	return procs
}

// identifyProcesses gives every caller entry its process's identity where that
// names the program better than the entry's own requests did, so that the
// callers table names cloud-init for its crawl GETs that say python-requests.
// UserAgent stays what the entry's own requests sent.
func identifyProcesses(callers []Caller) {
	procs := gatherProcesses(callers)
	for i := range callers {
		callers[i].SDK = identityOf(&callers[i], procs[keyOf("", &callers[i].Process)])
	}
}

// identityOf is who a caller entry is: its own requests' identity, unless its
// process named itself more specifically elsewhere (an agent over the HTTP
// library underneath). A process that speaks as two SDKs keeps each entry's.
func identityOf(c *Caller, f *processFacts) *sdk.Info {
	if sdk.MoreSpecific(f.sdk, c.SDK) {
		return f.sdk
	}
	return c.SDK
}

// readyHints gathers, per caller entry, the hints a verdict is built on: IMDSv1 callers,
// token PUTs unanswered, refused or answered late, IPv6 callers (one per process), and the hop
// limits token answers arrived with.
func readyHints(s *Summary) ReadyHints {
	h := ReadyHints{
		IMDSv1Callers: []Hint{}, UnansweredTokenPUTs: []Hint{}, FailedTokenPUTs: []Hint{}, SlowTokenAnswers: []Hint{},
		IPv6Callers: []Hint{}, IncompleteRequests: s.Requests[ClassIncomplete],
		LostEvents: s.LostEvents,
	}
	h.Complete = s.LostEvents == 0 && s.Reassembly.Evictions == 0 && s.Reassembly.Gaps == 0 &&
		h.IncompleteRequests == 0 && s.UnpairedAnswers == 0
	fellBack := fellBackProcesses(s.Callers)
	ipv6 := make(map[callerKey]bool)
	procs := gatherProcesses(s.Callers)
	for i := range s.Callers {
		c := &s.Callers[i]
		k := keyOf("", &c.Process)
		facts := procs[k]
		hint := newHint(c, facts)
		if c.IPv6 && !ipv6[k] {
			ipv6[k] = true
			h.IPv6Callers = append(h.IPv6Callers, hint)
		}
		switch c.Class {
		case ClassIMDSv1:
			hint.Advice = v1Advice(c, facts)
			h.IMDSv1Callers = append(h.IMDSv1Callers, hint)
		case ClassTokenPUT, ClassTokenPUTProxied:
			h.addTokenHints(hint, c, fellBack[k])
		}
	}
	h.ObservedHopLimits = observedHopLimits(s.Callers)
	return h
}

// newHint is a caller entry as a hint, without advice yet.
func newHint(c *Caller, facts *processFacts) Hint {
	hint := Hint{Class: c.Class, Process: c.Process, Count: c.Count, LastSeen: c.LastSeen, Answers: c.Answers,
		SDK: identityOf(c, facts), Aggregated: c.Aggregated}
	for _, p := range c.Paths[:min(3, len(c.Paths))] {
		hint.Paths = append(hint.Paths, p.Path)
	}
	return hint
}

// fellBackProcesses are the processes that sent IMDSv1 requests after a token PUT of theirs got
// no answer.
func fellBackProcesses(callers []Caller) map[callerKey]bool {
	fellBack := make(map[callerKey]bool)
	for i := range callers {
		if c := &callers[i]; c.Class == ClassIMDSv1 && c.AfterUnansweredPUT > 0 {
			fellBack[keyOf("", &c.Process)] = true
		}
	}
	return fellBack
}

// addTokenHints adds a token PUT caller's hints: its PUTs unanswered, refused, answered late.
func (h *ReadyHints) addTokenHints(hint Hint, c *Caller, fellBack bool) {
	if c.Unanswered > 0 {
		u := hint
		u.FellBack = fellBack
		u.Unanswered = c.Unanswered
		u.Advice = unansweredAdvice(c, u.FellBack)
		h.UnansweredTokenPUTs = append(h.UnansweredTokenPUTs, u)
	}
	if status := failedStatus(c); status != 0 {
		f := hint
		f.Advice = failedAdvice(c, status)
		h.FailedTokenPUTs = append(h.FailedTokenPUTs, f)
	}
	if c.SlowAnswers > 0 {
		sl := hint
		sl.MaxAnswerDelayMillis = c.MaxAnswerDelayMillis
		sl.Advice = slowAdvice(c)
		h.SlowTokenAnswers = append(h.SlowTokenAnswers, sl)
	}
}

// observedHopLimits counts the token answers by the TTL they arrived with and where their
// caller ran, lowest TTL first.
func observedHopLimits(callers []Caller) []HopLimit {
	hops := make(map[HopLimit]uint64)
	for i := range callers {
		c := &callers[i]
		if !isTokenPUTClass(c.Class) {
			continue
		}
		for ttl, n := range c.HopLimits {
			if ttl > 0 {
				hops[HopLimit{HopLimit: ttl, InContainer: c.Process.InContainer(),
					OtherNetwork: c.Process.OtherNetwork, HostNetwork: c.Process.HostNetwork}] += n
			}
		}
	}
	out := []HopLimit{}
	for k, n := range hops {
		k.TokenAnswers = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b HopLimit) int {
		if a.HopLimit != b.HopLimit {
			return int(a.HopLimit) - int(b.HopLimit)
		}
		if a.OtherNetwork != b.OtherNetwork {
			return boolRank(a.OtherNetwork) - boolRank(b.OtherNetwork)
		}
		if a.InContainer != b.InContainer {
			return boolRank(a.InContainer) - boolRank(b.InContainer)
		}
		return boolRank(a.HostNetwork) - boolRank(b.HostNetwork)
	})
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func slowAdvice(c *Caller) string {
	return fmt.Sprintf("%d token answer(s) came later than SDKs wait (the longest after %d ms): a program with a "+
		"1 s token time-out (botocore, the JavaScript SDK v3) gives up first and falls back to IMDSv1 or fails; "+
		"find what delays the answer (a proxy, a loaded host) and look for IMDSv1 requests from the same process",
		c.SlowAnswers, c.MaxAnswerDelayMillis)
}

// v1Advice says how to stop a caller's IMDSv1 requests, from who it is and what
// it did on the wire: whether it ever asked for a token, and what became of that.
func v1Advice(c *Caller, f *processFacts) string {
	id := identityOf(c, f)
	disable := sdk.DisableV1Fallback
	if id != nil && id.DisableV1 != "" {
		disable = id.DisableV1
	}
	switch {
	case f.unanswered > 0 || c.AfterUnansweredPUT > 0 && f.slow == 0:
		return fmt.Sprintf("it asked for a token, got no answer (%d token PUT(s) unanswered: the hop limit), and fell "+
			"back to IMDSv1: raise HttpPutResponseHopLimit to 2 (see unanswered_token_puts), then set %s so it "+
			"fails instead of falling back", f.unanswered, disable)
	case f.slow > 0:
		return fmt.Sprintf("its token answers came late (%d slow) and it fell back to IMDSv1 meanwhile: find what "+
			"delays IMDS answers (a proxy, a loaded host), then set %s", f.slow, disable)
	case f.refusal != 0:
		return fmt.Sprintf("its token requests were refused (%d) and it uses IMDSv1 instead: see failed_token_puts, "+
			"then set %s", f.refusal, disable)
	case f.askedToken && f.answered > 0:
		return "it got tokens but still sends some requests without one: a second client or code path in the same " +
			"program (find it by its paths); then set " + disable
	case f.askedToken:
		return "it asked for a token and sent these IMDSv1 requests before any answer came: its token answer is " +
			"late or lost (a hop limit too low drops it silently; see unanswered_token_puts); fix that, then set " + disable
	}
	// It never asked for a token.
	if id == nil {
		return "it never asked for a token: find the program by its command line and make it fetch an IMDSv2 " +
			"token first (PUT /latest/api/token), or use `imdsv2 get`"
	}
	if note := neverAskedNote(id, c); note != "" {
		return note
	}
	if id.Kind == sdk.KindAWSSDK && !id.BelowMin {
		return "it never asked for a token, although " + strings.TrimSpace(id.Name+" "+id.Version) + " can use " +
			"IMDSv2: it is configured or called so that it skips the token (an IMDSv2-off setting, or an API " +
			"that does not fetch one); set " + disable + " to find out (its reads then fail loudly)"
	}
	return id.Advice
}

// neverAskedNote is the advice for products known to send IMDSv1 without ever asking for a
// token even in versions that can use IMDSv2: advice per API, from the paths it read.
func neverAskedNote(id *sdk.Info, c *Caller) string {
	switch id.Product {
	case imdsfacts.JavaScriptV2.ID:
		return jsV2Advice(id, c)
	case "cloud-init":
		if id.BelowMin {
			return id.Advice
		}
		// Its EC2 datasource asks for a token only when the platform it identified (from the DMI
		// system UUID and serial, "ec2..." on EC2) is AWS; on other EC2-compatible clouds it
		// crawls without one, so the fix is not an SDK.
		return strings.TrimSpace("cloud-init "+id.Version) + " crawled without a token: it uses one only once it " +
			"has identified the platform as AWS, and it did not identify this machine as AWS (it took it for another " +
			"EC2-compatible cloud); check what `cloud-id` prints and the Ec2 datasource settings in " +
			"/etc/cloud/cloud.cfg.d, and update the image's cloud-init if it still does not say aws"
	}
	return ""
}

// jsV2Advice is the advice for aws-sdk (JavaScript v2) requests that never asked for a token.
// They carry its User-Agent, which its token path never does (captures: 2.575.0 to 2.1693.0):
// so they come from AWS.MetadataService.request(path), which sends no token in any v2 release,
// or, before 2.575.0, from EC2MetadataCredentials.
func jsV2Advice(id *sdk.Info, c *Caller) string {
	name := strings.TrimSpace("aws-sdk (JavaScript v2) " + id.Version)
	first := imdsfacts.JavaScriptV2TokenAPI
	older, known := imdsfacts.OlderThan(id.Version, first)
	credsOnly := len(c.Paths) > 0
	for _, p := range c.Paths {
		credsOnly = credsOnly && strings.Contains(p.Path, "/meta-data/iam/security-credentials")
	}
	switch {
	case older && credsOnly:
		return name + " read credentials without asking for a token: its EC2MetadataCredentials fetches one from " +
			first + " on, so upgrade aws-sdk to " + first + " or later (" + imdsfacts.JavaScriptV2.MinIMDSv2 +
			" or later for all of its own metadata calls); if the program itself calls " +
			"AWS.MetadataService.request(path), upgrading does not help: " + sdk.JSMetadataServiceFix
	case older:
		return name + " read these paths without asking for a token: AWS.MetadataService.request(path) sends none " +
			"in any v2 release, so upgrading alone does not help; upgrade aws-sdk to " + first + " or later (the " +
			"first with fetchMetadataToken), then " + sdk.JSMetadataServiceFix
	case !known:
		return name + " read these paths without asking for a token, with its User-Agent, which its token path " +
			"never sends: that is AWS.MetadataService.request(path) (or EC2MetadataCredentials before " + first +
			"); request() sends no token in any v2 release, so upgrading does not help: " + sdk.JSMetadataServiceFix
	}
	return name + " read these paths without asking for a token, with its User-Agent, which its token path never " +
		"sends: that is AWS.MetadataService.request(path), which sends no token in any v2 release (upgrading does " +
		"not help; EC2MetadataCredentials already fetches one): " + sdk.JSMetadataServiceFix
}

func unansweredAdvice(c *Caller, fellBack bool) string {
	where := "this process"
	if c.Process.InContainer() {
		where = "this container (each bridge or pod network takes one hop)"
	}
	s := fmt.Sprintf("%d token PUT(s) got no answer: the instance's HttpPutResponseHopLimit is too low for %s; "+
		"set it to 2 ("+imdsfacts.MetadataOptions{HopLimit: 2, HTTPEndpoint: "enabled"}.Command()+")",
		c.Unanswered, where)
	if fellBack {
		return s + "; meanwhile it falls back to IMDSv1 and breaks once HttpTokens=required"
	}
	return s + "; it did not fall back to IMDSv1, so its metadata reads fail already"
}

// failedStatus returns the most frequent refusal status of a token PUT
// caller, 0 when none was refused.
func failedStatus(c *Caller) int { return c.Answers.Refusal() }

func failedAdvice(c *Caller, status int) string {
	switch {
	case status == 403 && c.Class == ClassTokenPUTProxied:
		return "the token PUT went through a proxy (X-Forwarded-For) and IMDS refuses those with 403: " +
			"exclude 169.254.169.254 and fd00:ec2::254 from the proxy (NO_PROXY)"
	case status == 403:
		return "IMDS refused the token PUT with 403: a versioned token path, a proxy, or HttpEndpoint=disabled"
	case status == 400:
		return "IMDS refused the token PUT with 400: the X-aws-ec2-metadata-token-ttl-seconds header must be 1 to 21600"
	case status == 405:
		return "IMDS answered 405 on the token path: only PUT is allowed there"
	}
	return fmt.Sprintf("the token PUT failed with status %d", status)
}
