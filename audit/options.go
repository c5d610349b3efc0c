package audit

import (
	"net/netip"
	"time"

	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/reasm"
)

// Clock tells the time; tests replace it to move time by hand.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// ProcessTable is where attribution reads what the kernel events do not
// carry. *proc.Table implements it on a /proc tree; tests use fakes.
type ProcessTable interface {
	// Process returns what is known of a live process.
	Process(pid uint32) (proc.Process, error)
	// UserName returns the name of a user id.
	UserName(uid uint32) (string, error)
	// CgroupPath returns the cgroup v2 path of a cgroup id.
	CgroupPath(id uint64) (string, error)
}

// Token answer times. IMDS answers a token PUT in milliseconds. The SDKs give
// up on it after their own time-out: botocore 1 s (AWS_METADATA_SERVICE_TIMEOUT),
// the JavaScript v3 provider 1 s, aws-sdk-go-v2 5 s per operation (dial
// 250 ms, response header 500 ms), aws-sdk-go v1 about 1 s per try with three
// tries. A PUT still open after the longest of them is certainly abandoned.
const (
	// DefaultTokenAnswerTimeout is Options.TokenAnswerTimeout's default:
	// longer than every SDK's token time-out.
	DefaultTokenAnswerTimeout = 10 * time.Second
	// DefaultSlowTokenAnswer is Options.SlowTokenAnswer's default: the
	// shortest SDK token time-out (botocore's and JavaScript v3's 1 s).
	DefaultSlowTokenAnswer = time.Second
)

// Options configure an Auditor. The zero value works: every field documents
// its default.
type Options struct {
	// ProcessTable is used for attribution; default proc.New on /proc.
	ProcessTable ProcessTable
	// Clock gives the time for time-outs and when events carry none; default
	// the wall clock.
	Clock Clock

	// TokenAnswerTimeout is how long a token PUT may wait for its answer,
	// its connection still open, before it is reported unanswered (the
	// hop-limit symptom); default DefaultTokenAnswerTimeout. A PUT whose
	// connection ends without an answer is unanswered at once, and an answer
	// that comes is never "unanswered": it is slow (see SlowTokenAnswer).
	TokenAnswerTimeout time.Duration
	// SlowTokenAnswer is the delay past which a token answer that came is
	// reported slow; default DefaultSlowTokenAnswer.
	SlowTokenAnswer time.Duration
	// HostAddrs are the addresses of the host's network namespace. A caller
	// whose socket has another local address runs in a network namespace of
	// its own (Process.OtherNetwork). Empty: not decided.
	HostAddrs []netip.Addr
	// Agent says how the agent runs (namespaces, host paths), for the
	// coverage record; nil: unknown, and coverage cannot be whole-host.
	Agent *Agent
	// IdleTimeout forgets connections with no event for this long (for
	// sources that report no close); default 5m.
	IdleTimeout time.Duration
	// ParentDepth is how many ancestors are named per caller; default 4,
	// at least 3.
	ParentDepth int

	// MaxConnections bounds the connections tracked; the idlest are dropped
	// first; default 8192.
	MaxConnections int
	// MaxCallers bounds the aggregate; requests of further callers are
	// counted but not itemised; default 4096.
	MaxCallers int
	// MaxPathsPerCaller bounds the set of paths kept per caller; default 16.
	MaxPathsPerCaller int
	// MaxProcesses bounds the cache of exec records; default 16384.
	MaxProcesses int
	// Reassembly bounds the per-socket reassembly (see reasm.Config).
	Reassembly reasm.Config
	// MaxMetricCallers bounds the IMDSv1 caller series in the metrics; the
	// rest are summed under exe="_other"; default 20.
	MaxMetricCallers int

	// OnRecord, if set, is called for each record as it is produced, from
	// the goroutine that runs Run (or calls Handle/Tick). It must not block
	// for long.
	OnRecord func(Record)
	// Records, if set, receives each record; a full channel drops the record
	// (counted in Summary.DroppedRecords) rather than stall the auditor.
	Records chan<- Record

	// StateFile, if set, keeps the aggregate across restarts: loaded by New,
	// written atomically every StateInterval, when Run returns, and promptly
	// (within about 500ms, see durable.go) after a change of the verdict.
	StateFile string
	// StateInterval is the time between state writes; default 1m.
	StateInterval time.Duration
	// TickInterval is how often Run checks time-outs; default 500ms.
	TickInterval time.Duration

	// Logf, if set, receives problems that do not stop the auditor (a
	// failed periodic state write); default: discarded.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.ProcessTable == nil {
		o.ProcessTable = proc.New(proc.Config{})
	}
	if o.Clock == nil {
		o.Clock = ClockFunc(time.Now)
	}
	if o.TokenAnswerTimeout <= 0 {
		o.TokenAnswerTimeout = DefaultTokenAnswerTimeout
	}
	if o.SlowTokenAnswer <= 0 {
		o.SlowTokenAnswer = DefaultSlowTokenAnswer
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.ParentDepth <= 0 {
		o.ParentDepth = 4
	}
	o.ParentDepth = max(o.ParentDepth, 3)
	if o.MaxConnections <= 0 {
		o.MaxConnections = 8192
	}
	if o.MaxCallers <= 0 {
		o.MaxCallers = 4096
	}
	if o.MaxPathsPerCaller <= 0 {
		o.MaxPathsPerCaller = 16
	}
	if o.MaxProcesses <= 0 {
		o.MaxProcesses = 16384
	}
	if o.MaxMetricCallers <= 0 {
		o.MaxMetricCallers = 20
	}
	if o.StateInterval <= 0 {
		o.StateInterval = time.Minute
	}
	if o.TickInterval <= 0 {
		o.TickInterval = 500 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}
