package ready

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/bpf"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/scan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

var identity = &Identity{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1", AvailabilityZone: "eu-west-1a", InstanceType: "m7g.large"}

// hostAgent runs in the host's namespaces.
var hostAgent = &audit.Agent{InitialCgroupNS: true, InitialPIDNS: true}

// wholeHost is an hour of watching the whole host, exec tracing on.
func wholeHost() audit.Coverage {
	return audit.Coverage{Spans: []audit.Span{{From: t0, To: t0.Add(time.Hour),
		Watch: audit.Watch{Path: "/", CgroupID: 1, HostRoot: true, ExecTracing: true}, Agent: hostAgent}},
		Gaps: []audit.Gap{}, WatchedSeconds: 3600, WholeHost: true, ExecTracing: true, Scope: "/"}
}

func summary(callers ...audit.Caller) *audit.Summary {
	s := &audit.Summary{Schema: audit.SummarySchema, Since: t0, Updated: t0.Add(time.Hour),
		Requests: map[audit.Class]uint64{}, Callers: callers, Coverage: wholeHost()}
	s.ReadyHints = audit.ReadyHints{Complete: true, IMDSv1Callers: []audit.Hint{}, UnansweredTokenPUTs: []audit.Hint{},
		FailedTokenPUTs: []audit.Hint{}, SlowTokenAnswers: []audit.Hint{}, IPv6Callers: []audit.Hint{},
		ObservedHopLimits: []audit.HopLimit{}}
	for _, c := range callers {
		s.Requests[c.Class] += c.Count
	}
	return s
}

var (
	curl = audit.Process{PID: 4242, Comm: "curl", Exe: "/usr/bin/curl", UID: 0, User: "root",
		Cmdline: "curl -s http://169.254.169.254/latest/meta-data/instance-id", Container: proc.Container{Unit: "backup.service"}}
	app = audit.Process{PID: 5151, Comm: "app", Exe: "/usr/local/bin/app", Cmdline: "/usr/local/bin/app --serve", UID: 1000, User: "app",
		Container: proc.Container{ID: strings.Repeat("ab", 32), Runtime: "docker"}}
	agent = audit.Process{PID: 77, Comm: "agent", Exe: "/usr/bin/agent", Cmdline: "/usr/bin/agent", User: "root"}
)

func notReadyInput() Input {
	curlSDK := sdk.Identify("curl/7.88.1")
	s := summary(
		audit.Caller{Class: audit.ClassIMDSv1, Process: curl, Count: 3, Paths: []audit.PathCount{{Path: "/latest/meta-data/instance-id", Count: 3}},
			Answers: audit.Answers{200: 3}, SDK: &curlSDK},
		audit.Caller{Class: audit.ClassTokenPUT, Process: app, Count: 2, Unanswered: 2, Answers: audit.Answers{0: 2}},
		audit.Caller{Class: audit.ClassTokenPUT, Process: agent, Count: 5, Answers: audit.Answers{200: 5}, HopLimits: map[uint8]uint64{1: 5}},
	)
	s.ReadyHints.IMDSv1Callers = []audit.Hint{{Class: audit.ClassIMDSv1, Process: curl, Count: 3, Answers: audit.Answers{200: 3},
		Paths: []string{"/latest/meta-data/instance-id"},
		SDK:   &curlSDK, Advice: curlSDK.Advice}}
	s.ReadyHints.UnansweredTokenPUTs = []audit.Hint{{Class: audit.ClassTokenPUT, Process: app, Count: 2, Unanswered: 2,
		Advice: "raise the hop limit"}}
	s.TokenPUTs.Unanswered = 2
	s.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, TokenAnswers: 5}}
	return Input{Identity: identity, Summary: s, Source: "state",
		Host: &Host{Bridges: []Bridge{{Name: "docker0", Ports: 1}}, Veths: 1, CNIConfigs: []string{}},
		Scan: &scan.Report{Roots: []string{"/usr/lib"}, FilesScanned: 10, Findings: []scan.Finding{
			{Kind: scan.KindOldSDK, Severity: scan.SeverityBlocker, Path: "/usr/lib/python3/dist-packages/botocore-1.12.0.dist-info",
				Product: "botocore", Version: "1.12.0", MinVersion: "1.13.25", Evidence: "METADATA Version",
				Why: "it cannot use IMDSv2", Fix: "upgrade botocore to 1.13.25 or later"},
			{Kind: scan.KindV1FallbackAllowed, Severity: scan.SeverityWarning, Path: "/etc/environment", Line: 3,
				Setting: "AWS_EC2_METADATA_V1_DISABLED=false", Why: "SDKs may fall back to IMDSv1", Fix: "remove the line"},
		}}}
}

func TestEvaluateGolden(t *testing.T) {
	clean := summary(audit.Caller{Class: audit.ClassTokenPUT, Process: agent, Count: 5, Answers: audit.Answers{200: 5},
		HopLimits: map[uint8]uint64{1: 5}}, audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 9})
	clean.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, TokenAnswers: 5}}
	doubtful := summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 9},
		audit.Caller{Class: audit.ClassIncomplete, Process: app, Count: 2, Incomplete: 2})
	doubtful.Coverage.Spans[0].To = t0.Add(4 * time.Second)
	doubtful.Coverage.WatchedSeconds = 4
	doubtful.LostEvents = 3
	notReadyAnyway := notReadyInput()
	notReadyAnyway.Identity, notReadyAnyway.ProbeErr = nil, &imds.Error{Kind: imds.KindUnreachable, Op: "PUT",
		Path: "/latest/api/token", Endpoint: imds.EndpointIPv4}
	notReadyAnyway.Summary.LostEvents = 7
	scoped := summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 9})
	scoped.Coverage.Spans[0].Watch = audit.Watch{Path: "/system.slice/app.service", CgroupID: 4242, ExecTracing: true}
	scoped.Coverage.WholeHost, scoped.Coverage.Scope = false, "/system.slice/app.service"
	for _, tc := range []struct {
		name string
		in   Input
		want Verdict
	}{
		{"ready", Input{Identity: identity, Summary: clean, Source: "live", Duration: 90 * time.Second,
			Host: &Host{Bridges: []Bridge{}, CNIConfigs: []string{}}, Scan: &scan.Report{Roots: []string{"/opt"}}}, Ready},
		{"not-ready", notReadyInput(), NotReady},
		{"not-on-ec2", Input{ProbeErr: &imds.Error{Kind: imds.KindUnreachable, Op: "PUT", Path: "/latest/api/token",
			Endpoint: imds.EndpointIPv4}}, Undecided},
		{"disabled", Input{ProbeErr: &imds.Error{Kind: imds.KindDisabled, Op: "PUT", Path: "/latest/api/token",
			Endpoint: imds.EndpointIPv4, StatusCode: 403}}, Undecided},
		{"no-audit", Input{Identity: identity, AuditErr: errors.New("bpf: missing CAP_BPF")}, Undecided},
		// Amazon Linux 2's 4.14: the agent cannot run; the fallback is named, the scan still ran.
		{"kernel-too-old", Input{Identity: identity, Scan: &scan.Report{Roots: []string{"/opt"}},
			AuditErr: &bpf.MissingError{Kernel: "4.14.355-275.570.amzn2.x86_64", Features: []bpf.Feature{
				{Name: "the BPF ring buffer", Since: "5.8"}, {Name: "cgroup sock_addr programs", Since: "4.17"}}}}, Undecided},
		{"undecided-coverage", Input{Identity: identity, Summary: doubtful, Source: "state"}, Undecided},
		{"not-ready-wins", notReadyAnyway, NotReady},
		{"scoped-ready", Input{Identity: identity, Summary: scoped, Source: "state",
			Scope: &Scope{Cgroup: "/sys/fs/cgroup/system.slice/app.service", Rel: "/system.slice/app.service"}}, Ready},
		{"scope-not-instance", Input{Identity: identity, Summary: scoped, Source: "state"}, Undecided},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Now.IsZero() {
				tc.in.Now = t0.Add(time.Hour) // the state's agent watched until just now
			}
			r := Evaluate(tc.in)
			assert.Equal(t, tc.want, r.Verdict)
			var js, txt bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetIndent("", "  ")
			require.NoError(t, enc.Encode(r))
			require.NoError(t, WriteText(&txt, r))
			golden(t, tc.name+".golden.json", js.Bytes())
			golden(t, tc.name+".golden.txt", txt.Bytes())
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./ready -update to create it")
	assert.Equal(t, string(want), string(got), "%s differs; run go test ./ready -update and review the diff", path)
}

// TestScanFindingsKeepTheirKind: a blocker of the scan that is not an old
// release (a tokenless API call in the application's source) keeps its own
// code, and its subject names the line.
func TestScanFindingsKeepTheirKind(t *testing.T) {
	in := notReadyInput()
	in.Scan.Findings = append(in.Scan.Findings, scan.Finding{Kind: scan.KindTokenlessAPI, Severity: scan.SeverityBlocker,
		Path: "/srv/web/lib/instance.js", Line: 4, Product: "AWS SDK for JavaScript v2", Version: "2.1693.0",
		Evidence: "text search", Why: "MetadataService.request never sends a token", Fix: "pass a token"})
	r := Evaluate(in)
	codes := map[string]Reason{}
	for _, rs := range r.Reasons {
		codes[rs.Code] = rs
	}
	assert.Equal(t, "/srv/web/lib/instance.js:4", codes["tokenless-api"].Subject)
	assert.Equal(t, "/srv/web/lib/instance.js", codes["tokenless-api"].File)
	assert.Equal(t, "/usr/lib/python3/dist-packages/botocore-1.12.0.dist-info", codes["old-sdk"].File)
}

func TestNotReadyNamesEveryReason(t *testing.T) {
	r := Evaluate(notReadyInput())
	require.Equal(t, NotReady, r.Verdict)
	assert.Equal(t, ExitNotReady, r.ExitCode())
	codes := map[string]Reason{}
	for _, rs := range r.Reasons {
		codes[rs.Code] = rs
		assert.NotEmpty(t, rs.Fix, rs.Code)
	}
	assert.Contains(t, codes["imdsv1-caller"].Subject, "curl (pid 4242")
	assert.Equal(t, "/usr/lib/python3/dist-packages/botocore-1.12.0.dist-info", codes["old-sdk"].File)
	assert.Contains(t, codes["token-unanswered"].Where, "container abababababab (docker)")
	assert.Equal(t, 2, r.HopLimit.Recommended)
	assert.Contains(t, r.NextSteps[1].Command, "--instance-id i-0123456789abcdef0 --http-tokens required --http-put-response-hop-limit 2 --http-endpoint enabled")
	assert.Contains(t, r.NextSteps[2].Command, "EnforceIMDSv2=required")
	assert.Equal(t, "imdsv1-fallback-setting", r.Warnings[0].Code)
	assert.Equal(t, "/etc/environment:3", r.Warnings[0].Subject)
}

func TestHopAdvice(t *testing.T) {
	base := func() Input { return Input{Identity: identity, Summary: summary()} }
	in := base()
	assert.Equal(t, 2, Evaluate(in).HopLimit.Recommended, "unknown: AWS's default")
	in.Summary.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, TokenAnswers: 3}}
	r := Evaluate(in)
	assert.Equal(t, HopLimitAdvice{Observed: 1, Recommended: 1, Why: r.HopLimit.Why}, r.HopLimit, "no containers: keep 1")
	in.Host = &Host{Bridges: []Bridge{{Name: "br0", Ports: 2}}}
	r = Evaluate(in)
	assert.Equal(t, 2, r.HopLimit.Recommended)
	require.Len(t, r.Warnings, 2) // hop-limit-containers and no-imds-traffic
	assert.Equal(t, "hop-limit-containers", r.Warnings[0].Code)
	assert.Equal(t, Ready, r.Verdict, "a warning does not block")
	in.Summary.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 3, TokenAnswers: 1}}
	assert.Equal(t, 3, Evaluate(in).HopLimit.Recommended, "never lower a hop limit above 2")
	// A token answer that reached a caller in a network namespace of its own says nothing
	// of the instance's setting; it says containers talk to IMDS.
	in.Host = nil
	in.Summary.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, TokenAnswers: 3},
		{HopLimit: 1, OtherNetwork: true, TokenAnswers: 1}}
	r = Evaluate(in)
	assert.Equal(t, 1, r.HopLimit.Observed)
	assert.Equal(t, 2, r.HopLimit.Recommended)
	// A container the kernel saw in the host's network namespace (host networking) is as far
	// from IMDS as the host: no reason to raise the hop limit for it. Without the kernel's word
	// (no namespace cookie), its cgroup still counts.
	in.Summary.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, InContainer: true, HostNetwork: true, TokenAnswers: 3}}
	r = Evaluate(in)
	assert.Equal(t, HopLimitAdvice{Observed: 1, Recommended: 1, Why: r.HopLimit.Why}, r.HopLimit, "host-network container: keep 1")
	in.Summary.ReadyHints.ObservedHopLimits[0].HostNetwork = false
	assert.Equal(t, 2, Evaluate(in).HopLimit.Recommended, "container, network not known")
}

func TestReadState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	s := notReadyInput().Summary
	require.NoError(t, audit.SaveState(path, *s))
	got, err := ReadState(path)
	require.NoError(t, err)
	assert.Equal(t, s.ReadyHints.IMDSv1Callers[0].Process.PID, got.ReadyHints.IMDSv1Callers[0].Process.PID)

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{not json"), 0o600))
	_, err = ReadState(bad)
	assert.ErrorIs(t, err, audit.ErrCorruptState)
	assert.FileExists(t, bad, "the agent's file is never moved")
	require.NoError(t, os.WriteFile(bad, []byte(`{"schema": 99}`), 0o600))
	_, err = ReadState(bad)
	assert.ErrorIs(t, err, audit.ErrStateSchema)
	assert.ErrorContains(t, err, "schema 99")
	_, err = ReadState(filepath.Join(dir, "missing.json"))
	assert.ErrorContains(t, err, "imdsv2 audit --state")
}

func TestFormatRecord(t *testing.T) {
	r := audit.Record{Type: audit.RecordRequest, Class: audit.ClassIMDSv1, Method: "GET", Path: "/latest/meta-data/\x1b[2J",
		Status: 401, Process: curl}
	line := FormatRecord(r)
	assert.Equal(t, `curl (pid 4242, host): GET /latest/meta-data/\x1b[2J without a token (IMDSv1) -> 401 Unauthorized (refused: a token is required)`, line)
	r = audit.Record{Type: audit.RecordRequest, Class: audit.ClassTokenPUT, Method: "PUT", Path: "/latest/api/token", Unanswered: true, Process: app}
	assert.Contains(t, FormatRecord(r), "app (pid 5151, container): PUT /latest/api/token asks for a session token (IMDSv2) -> NO ANSWER")
	assert.Equal(t, "auditor: 3 kernel records lost", FormatRecord(audit.Record{Type: audit.RecordLost, Lost: 3}))
	r.Process.OtherNetwork, r.Process.LocalAddr = true, "10.99.0.2"
	assert.Contains(t, FormatRecord(r), "app (pid 5151, container 10.99.0.2)")
}

func TestInspectHost(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "10-bridge.conflist"), []byte("{}"), 0o644))
	h, err := InspectHost("", dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "10-bridge.conflist")}, h.CNIConfigs)
	assert.True(t, h.ContainerNetworks())
	assert.NotNil(t, h.Bridges)
	_, err = InspectHost("/nonexistent/netns", dir)
	assert.Error(t, err)
}

// The verdict invariant, over random summaries: any IMDSv1 request counted (itemised or
// not) is NOT READY whatever else holds; READY only with whole-host coverage for at least
// the minimum time, exec tracing on, nothing lost, unclassified, gapped or unpaired, and
// IMDS itself answering.
func TestVerdictInvariantProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) bool { return rng.IntN(n) == 0 }
	for i := range 20000 {
		s := summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 3})
		v1 := uint64(0)
		if pick(3) {
			v1 = uint64(1 + rng.IntN(5))
			s.Requests[audit.ClassIMDSv1] = v1
			if pick(2) { // itemised, or hidden behind a full caller table
				s.Callers = append(s.Callers, audit.Caller{Class: audit.ClassIMDSv1, Process: curl, Count: v1})
				s.ReadyHints.IMDSv1Callers = []audit.Hint{{Class: audit.ClassIMDSv1, Process: curl, Count: v1}}
			} else {
				s.CallersDropped = v1
			}
		}
		if pick(6) {
			s.LostEvents = 1
		}
		if pick(6) {
			s.Requests[audit.ClassIncomplete] = 1
		}
		if pick(8) {
			s.Reassembly.Gaps = 1
		}
		if pick(8) {
			s.UnpairedAnswers = 1
		}
		if pick(6) {
			w := time.Duration(rng.IntN(300)) * time.Second
			s.Coverage.Spans[0].From = s.Coverage.Spans[0].To.Add(-w)
			s.Coverage.WatchedSeconds = w.Seconds()
		}
		if pick(6) {
			s.Coverage.WholeHost = false
			s.Coverage.Spans[0].Watch.HostRoot = false
		}
		if pick(8) {
			s.Coverage.ExecTracing = false
		}
		if pick(10) {
			s.Coverage = audit.Coverage{}
		}
		in := Input{Identity: identity, Summary: s, Source: "state", Now: t0.Add(time.Hour)}
		if pick(8) {
			in.Identity, in.ProbeErr = nil, &imds.Error{Kind: imds.KindUnreachable, Op: "PUT", Endpoint: imds.EndpointIPv4}
		}
		r := Evaluate(in)
		if v1 > 0 {
			require.Equal(t, NotReady, r.Verdict, "case %d: %d IMDSv1 requests", i, v1)
			continue
		}
		doubt := s.LostEvents > 0 || s.Requests[audit.ClassIncomplete] > 0 || s.Reassembly.Gaps > 0 ||
			s.UnpairedAnswers > 0 || s.Coverage.WatchedSeconds < DefaultMinWatch.Seconds() || !s.Coverage.WholeHost ||
			!s.Coverage.ExecTracing || len(s.Coverage.Spans) == 0 || in.ProbeErr != nil
		if doubt {
			require.Equal(t, Undecided, r.Verdict, "case %d: %+v", i, r.Coverage)
			require.NotEmpty(t, r.Uncertain)
		} else {
			require.Equal(t, Ready, r.Verdict, "case %d: %s", i, joinCodes(r.Uncertain))
		}
	}
}

// Hostile names (a container id taken from a cgroup name, a command line, an instance id)
// reach the text report escaped: no control byte gets to the terminal.
// TestOutputsEscapeInvisibles: C1 controls and bidirectional controls in strings from a
// process reach neither the text nor the JSON raw; the JSON decodes to the same strings.
func TestOutputsEscapeInvisibles(t *testing.T) {
	in := notReadyInput()
	bad := "\u009b2J\u202e\u2066\u200f"
	h := &in.Summary.ReadyHints.UnansweredTokenPUTs[0]
	h.Process.Cmdline, h.Process.Unit, h.Process.Comm = "app "+bad, "app"+bad+".service", "c"+bad
	rep := Evaluate(in)
	var txt, js bytes.Buffer
	require.NoError(t, WriteText(&txt, rep))
	require.NoError(t, WriteJSON(&js, rep))
	for what, b := range map[string][]byte{"text": txt.Bytes(), "JSON": js.Bytes()} {
		for _, r := range string(b) {
			if (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("%s carries %U raw:\n%s", what, r, b)
			}
		}
	}
	assert.Contains(t, js.String(), `app \u009b2J\u202e\u2066\u200f`)
	var back Report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(rep))
	var want Report
	require.NoError(t, json.Unmarshal(plain.Bytes(), &want))
	assert.Equal(t, want, back, "only the encoding differs")
}

func TestWriteTextEscapesEverything(t *testing.T) {
	in := notReadyInput()
	evil := "machine-\x1b[2J\x1b[HX.scope\a"
	h := &in.Summary.ReadyHints.UnansweredTokenPUTs[0]
	h.Process.Container.ID = evil
	h.Process.Cmdline = "app \x1b]0;pwned\a"
	h.Process.OtherNetwork, h.Process.LocalAddr = true, "10.0.0.9\x1b[1A"
	in.Identity = &Identity{InstanceID: "i-0\x1b[31m", Region: "eu\x07"}
	in.Scan.Roots = []string{"/opt/\x1b[2K"}
	var txt bytes.Buffer
	require.NoError(t, WriteText(&txt, Evaluate(in)))
	for i, c := range txt.Bytes() {
		if c < 0x20 && c != '\n' {
			t.Fatalf("control byte %#x at %d in:\n%s", c, i, txt.String())
		}
	}
	assert.Contains(t, txt.String(), `container machine-\x1b[2J (docker)`)
}

// Found by review: coverage that is old, gapped, or claimed by a file beyond its own records
// never makes READY.
func TestCoverageMustBeRecentContinuousAndProven(t *testing.T) {
	ready := func(s *audit.Summary, now time.Time, scope *Scope) *Report {
		return Evaluate(Input{Identity: identity, Summary: s, Source: "state", Now: now, Scope: scope})
	}
	// The agent stopped 60 days ago.
	s := summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 1})
	r := ready(s, t0.Add(60*24*time.Hour), nil)
	require.Equal(t, Undecided, r.Verdict)
	assert.Equal(t, codeCoverageStale, r.Uncertain[0].Code)

	// Two 3-minute spans 10 days apart: 6 minutes in all, but never 5 in a row.
	s = summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 1})
	w := s.Coverage.Spans[0]
	a, b := w, w
	a.From, a.To = t0, t0.Add(3*time.Minute)
	b.From, b.To = t0.Add(240*time.Hour), t0.Add(240*time.Hour+3*time.Minute)
	s.Coverage.Spans = []audit.Span{a, b}
	r = ready(s, b.To, nil)
	require.Equal(t, Undecided, r.Verdict)
	assert.Equal(t, codeWatchedTooShort, r.Uncertain[0].Code)

	// A hand-edited state file: whole host claimed for a pod's cgroup, a million seconds for one,
	// an IMDSv1 caller with no count. Read back, it proves only what its records hold.
	s = summary(audit.Caller{Class: audit.ClassIMDSv1, Process: curl, Count: 2})
	s.Coverage.Spans[0].To = t0.Add(time.Second)
	s.Coverage.Spans[0].Watch = audit.Watch{Path: "/kubepods/pod1", CgroupID: 4242, ExecTracing: true}
	s.Coverage.WholeHost, s.Coverage.WatchedSeconds = true, 1e6
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, audit.SaveState(path, *s))
	got, err := ReadState(path)
	require.NoError(t, err)
	assert.False(t, got.Coverage.WholeHost)
	assert.Equal(t, 1.0, got.Coverage.WatchedSeconds)
	assert.EqualValues(t, 2, got.Requests[audit.ClassIMDSv1])
	assert.Equal(t, NotReady, ready(got, t0.Add(time.Second), nil).Verdict)

	// A path watched by an agent in a pod's own cgroup namespace names the pod's cgroup, not
	// the host's: it covers no host scope of the same name.
	s = summary(audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 1})
	s.Coverage.Spans[0].Watch = audit.Watch{Path: "/", CgroupID: 4242, ExecTracing: true}
	s.Coverage.Spans[0].Agent = &audit.Agent{InitialPIDNS: true}
	s.Coverage.WholeHost = false
	r = ready(s, t0.Add(time.Hour), &Scope{Cgroup: "/sys/fs/cgroup", Rel: "/", ID: 1})
	require.Equal(t, Undecided, r.Verdict)
	assert.Equal(t, codeScopeNotCovered, r.Uncertain[0].Code)
}

// A state file that could not be read shows no figures: "not read" and why, not "0s watched".
func TestTextOfAnUnreadState(t *testing.T) {
	rep := Evaluate(Input{Source: "state", Identity: identity,
		AuditErr: errors.New("read the agent's state: open /var/lib/imdsv2/state.json: no such file or directory")})
	var b bytes.Buffer
	require.NoError(t, WriteText(&b, rep))
	assert.Contains(t, b.String(), "Audit:     state not read: read the agent's state: open /var/lib/imdsv2/state.json")
	assert.NotContains(t, b.String(), "watched")
	assert.Equal(t, Undecided, rep.Verdict)
}
