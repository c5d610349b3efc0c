package audit

import (
	"net/netip"
	"time"

	"github.com/imdsv2/imdsv2/audit/httpreq"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/sdk"
)

// Class is the kind of a request; see httpreq.Class for the values.
type Class = httpreq.Class

// Request classes, re-exported from httpreq.
const (
	ClassIMDSv1          = httpreq.ClassIMDSv1
	ClassIMDSv2          = httpreq.ClassIMDSv2
	ClassTokenPUT        = httpreq.ClassTokenPUT
	ClassTokenPUTProxied = httpreq.ClassTokenPUTProxied
	ClassProbe           = httpreq.ClassProbe
	ClassIncomplete      = httpreq.ClassIncomplete
	ClassOther           = httpreq.ClassOther
)

// Record types.
const (
	// RecordRequest is one request and what became of it.
	RecordRequest = "request"
	// RecordLost reports kernel records lost before they reached the auditor.
	RecordLost = "lost"
)

// Record is one line of the live output: a request once it is answered, left
// unanswered or its connection closed, or a report of lost events. It never
// holds a token value, a body or a header value other than the User-Agent.
// The JSON field names are stable.
type Record struct {
	Type string    `json:"type"` // RecordRequest or RecordLost
	Time time.Time `json:"time"` // when the request was sent (UTC)

	Class  Class  `json:"class,omitempty"`
	Cloud  string `json:"cloud,omitempty"` // for ClassProbe: "azure", "gcp", ...
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Remote string `json:"remote,omitempty"` // the IMDS address and port

	UserAgent string    `json:"user_agent,omitempty"`
	SDK       *sdk.Info `json:"sdk,omitempty"`
	// TokenTTL is the TTL a token PUT asked for; 0 when absent.
	TokenTTL  int  `json:"token_ttl_seconds,omitempty"`
	Forwarded bool `json:"forwarded,omitempty"` // X-Forwarded-For present
	// Incomplete says the request's header block was not fully captured.
	Incomplete bool `json:"incomplete,omitempty"`

	// Status is the answer's status code; 0 when no answer was seen.
	Status     int       `json:"status,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// HopLimit is the IP TTL (IPv6 hop limit) of a token answer as it
	// reached this host's socket: the instance's HttpPutResponseHopLimit
	// minus the routing hops on the way.
	HopLimit uint8 `json:"hop_limit,omitempty"`
	// Unanswered marks a token PUT whose connection ended without an answer,
	// or that got none within Options.TokenAnswerTimeout.
	Unanswered bool `json:"unanswered,omitempty"`
	// Slow marks a token PUT answered later than Options.SlowTokenAnswer
	// (AnsweredAt - Time is the delay): SDKs with a short token time-out
	// give up before such an answer comes, and fall back to IMDSv1 or fail.
	Slow bool `json:"slow,omitempty"`
	// AfterUnansweredPUT marks an IMDSv1 request from a process whose token
	// PUT had no answer yet, or went unanswered, when it was sent: an SDK
	// falling back to IMDSv1.
	AfterUnansweredPUT bool `json:"after_unanswered_token_put,omitempty"`

	Process Process `json:"process,omitzero"`
	Cookie  uint64  `json:"socket_cookie,omitempty"`
	// Lost is, for RecordLost, the number of kernel records lost.
	Lost uint64 `json:"lost,omitempty"`

	// tokenSent says the request carried the token header (never its value).
	tokenSent bool
}

// IPv6 reports whether the request went to the IPv6 endpoint.
func (r *Record) IPv6() bool {
	ap, err := netip.ParseAddrPort(r.Remote)
	return err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6()
}

// Attribution sources, in Process.Source.
const (
	// SourceExec: executable and argv were captured in the kernel at exec.
	SourceExec = "exec"
	// SourceProc: read from /proc when the request was seen.
	SourceProc = "proc"
	// SourceKernel: only what the socket event carried (pid, comm, uid).
	SourceKernel = "kernel"
)

// Process names the caller of a request. Strings are sanitised: valid
// UTF-8, bounded, secrets in arguments replaced by [REDACTED]; control
// characters are kept, to be escaped by each output.
type Process struct {
	PID     uint32 `json:"pid"`
	PPID    uint32 `json:"ppid,omitempty"`
	Comm    string `json:"comm,omitempty"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"` // arguments joined, quoted where needed
	UID     uint32 `json:"uid"`
	User    string `json:"user,omitempty"`
	Cgroup  string `json:"cgroup,omitempty"`
	proc.Container
	Parents []Ancestor `json:"parents,omitempty"` // parent first
	// Source says where Exe and Cmdline came from: SourceExec, SourceProc
	// or SourceKernel.
	Source string `json:"source,omitempty"`
	// Preexisting marks a connection opened before the auditor saw it (for
	// example before the agent started): attributed best effort from /proc.
	Preexisting bool `json:"preexisting,omitempty"`
	// LocalAddr is the local address of the caller's socket.
	LocalAddr string `json:"local_addr,omitempty"`
	// OtherNetwork says the caller runs in a network namespace of its own
	// (a container on a bridge, a pod), one or more routing hops further from
	// IMDS than the host, which matters for the hop limit: the kernel read
	// the socket's namespace at connect (Event.NetnsCookie), or, where it did
	// not, the local address is not one of the host's (Options.HostAddrs).
	OtherNetwork bool `json:"other_network,omitempty"`
	// HostNetwork says the kernel saw the caller's socket in the host's
	// network namespace (its namespace cookie at connect): whatever its
	// cgroup says, it is as many hops from IMDS as the host (a container
	// with host networking). False when not known.
	HostNetwork bool `json:"host_network,omitempty"`
}

// InContainer reports whether the process runs in a container or pod.
func (p Process) InContainer() bool { return p.ID != "" || p.PodUID != "" }

// Ancestor is one process of a caller's parent chain.
type Ancestor struct {
	PID     uint32 `json:"pid"`
	Comm    string `json:"comm,omitempty"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}
