package audit

import (
	"fmt"
	"slices"
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
	OtherNetwork bool   `json:"other_network"`
	TokenAnswers uint64 `json:"token_answers"`
}

func readyHints(s *Summary) ReadyHints {
	h := ReadyHints{
		IMDSv1Callers: []Hint{}, UnansweredTokenPUTs: []Hint{}, FailedTokenPUTs: []Hint{}, SlowTokenAnswers: []Hint{},
		IPv6Callers: []Hint{}, ObservedHopLimits: []HopLimit{}, IncompleteRequests: s.Requests[ClassIncomplete],
		LostEvents: s.LostEvents,
	}
	h.Complete = s.LostEvents == 0 && s.Reassembly.Evictions == 0 && s.Reassembly.Gaps == 0 &&
		h.IncompleteRequests == 0 && s.UnpairedAnswers == 0
	fellBack := make(map[callerKey]bool)
	for i := range s.Callers {
		if c := &s.Callers[i]; c.Class == ClassIMDSv1 && c.AfterUnansweredPUT > 0 {
			fellBack[keyOf("", &c.Process)] = true
		}
	}
	hops := make(map[HopLimit]uint64)
	ipv6 := make(map[callerKey]bool)
	for i := range s.Callers {
		c := &s.Callers[i]
		hint := Hint{Class: c.Class, Process: c.Process, Count: c.Count, LastSeen: c.LastSeen, Answers: c.Answers,
			SDK: c.SDK, Aggregated: c.Aggregated}
		for _, p := range c.Paths[:min(3, len(c.Paths))] {
			hint.Paths = append(hint.Paths, p.Path)
		}
		if k := keyOf("", &c.Process); c.IPv6 && !ipv6[k] {
			ipv6[k] = true
			h.IPv6Callers = append(h.IPv6Callers, hint)
		}
		switch c.Class {
		case ClassIMDSv1:
			hint.Advice = v1Advice(c)
			h.IMDSv1Callers = append(h.IMDSv1Callers, hint)
		case ClassTokenPUT, ClassTokenPUTProxied:
			if c.Unanswered > 0 {
				u := hint
				u.FellBack = fellBack[keyOf("", &c.Process)]
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
			for ttl, n := range c.HopLimits {
				if ttl > 0 {
					hops[HopLimit{HopLimit: ttl, InContainer: c.Process.InContainer(),
						OtherNetwork: c.Process.OtherNetwork}] += n
				}
			}
		}
	}
	for k, n := range hops {
		k.TokenAnswers = n
		h.ObservedHopLimits = append(h.ObservedHopLimits, k)
	}
	slices.SortFunc(h.ObservedHopLimits, func(a, b HopLimit) int {
		if a.HopLimit != b.HopLimit {
			return int(a.HopLimit) - int(b.HopLimit)
		}
		if a.OtherNetwork != b.OtherNetwork {
			return boolRank(a.OtherNetwork) - boolRank(b.OtherNetwork)
		}
		return boolRank(a.InContainer) - boolRank(b.InContainer)
	})
	return h
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

func v1Advice(c *Caller) string {
	advice := "find the program by its command line and make it fetch an IMDSv2 token first"
	if c.SDK != nil {
		advice = c.SDK.Advice
	}
	if c.AfterUnansweredPUT > 0 {
		advice = "it fell back to IMDSv1 while its token PUT had no answer: if that PUT went unanswered, raise " +
			"HttpPutResponseHopLimit (see unanswered_token_puts); if it came late, see slow_token_answers; " + advice
	}
	return advice
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
