package ready

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/scan"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

var identity = &Identity{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1", AvailabilityZone: "eu-west-1a", InstanceType: "m7g.large"}

func summary(callers ...audit.Caller) *audit.Summary {
	s := &audit.Summary{Schema: audit.SummarySchema, Since: t0, Updated: t0.Add(time.Hour),
		Requests: map[audit.Class]uint64{}, Callers: callers}
	s.ReadyHints = audit.ReadyHints{Complete: true, IMDSv1Callers: []audit.Hint{}, UnansweredTokenPUTs: []audit.Hint{},
		FailedTokenPUTs: []audit.Hint{}, ObservedHopLimits: []audit.HopLimit{}}
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
			Answers: map[string]uint64{"200": 3}, SDK: &curlSDK},
		audit.Caller{Class: audit.ClassTokenPUT, Process: app, Count: 2, Unanswered: 2, Answers: map[string]uint64{"none": 2}},
		audit.Caller{Class: audit.ClassTokenPUT, Process: agent, Count: 5, Answers: map[string]uint64{"200": 5}, HopLimits: map[string]uint64{"1": 5}},
	)
	s.ReadyHints.IMDSv1Callers = []audit.Hint{{Class: audit.ClassIMDSv1, Process: curl, Count: 3, Answers: map[string]uint64{"200": 3},
		SDK: &curlSDK, Advice: curlSDK.Advice}}
	s.ReadyHints.UnansweredTokenPUTs = []audit.Hint{{Class: audit.ClassTokenPUT, Process: app, Count: 2, Advice: "raise the hop limit"}}
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
	clean := summary(audit.Caller{Class: audit.ClassTokenPUT, Process: agent, Count: 5, Answers: map[string]uint64{"200": 5},
		HopLimits: map[string]uint64{"1": 5}}, audit.Caller{Class: audit.ClassIMDSv2, Process: agent, Count: 9})
	clean.ReadyHints.ObservedHopLimits = []audit.HopLimit{{HopLimit: 1, TokenAnswers: 5}}
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
	} {
		t.Run(tc.name, func(t *testing.T) {
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
	in.Observations = &Observations{HostTokenTTLs: map[uint8]uint64{1: 3}}
	r := Evaluate(in)
	assert.Equal(t, HopLimitAdvice{Observed: 1, Recommended: 1, Why: r.HopLimit.Why}, r.HopLimit, "no containers: keep 1")
	in.Host = &Host{Bridges: []Bridge{{Name: "br0", Ports: 2}}}
	r = Evaluate(in)
	assert.Equal(t, 2, r.HopLimit.Recommended)
	require.Len(t, r.Warnings, 2) // hop-limit-containers and no-imds-traffic
	assert.Equal(t, "hop-limit-containers", r.Warnings[0].Code)
	assert.Equal(t, Ready, r.Verdict, "a warning does not block")
	in.Observations.HostTokenTTLs = map[uint8]uint64{3: 1}
	assert.Equal(t, 3, Evaluate(in).HopLimit.Recommended, "never lower a hop limit above 2")
}

// fakeSource replays events.
type fakeSource struct{ evs []audit.Event }

func (f *fakeSource) Next(context.Context) (audit.Event, error) {
	if len(f.evs) == 0 {
		return audit.Event{}, io.EOF
	}
	ev := f.evs[0]
	f.evs = f.evs[1:]
	return ev, nil
}

func TestObserver(t *testing.T) {
	imds4 := netip.MustParseAddrPort("169.254.169.254:80")
	imds6 := netip.MustParseAddrPort("[fd00:ec2::254]:80")
	host := netip.MustParseAddr("10.0.0.5")
	put := []byte("PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
	ok := []byte("HTTP/1.1 200 OK\r\n")
	src := &fakeSource{evs: []audit.Event{
		{Kind: audit.EventConnect, Cookie: 1, PID: 10, Comm: "agent", Remote: imds4},
		{Kind: audit.EventSend, Cookie: 1, Local: netip.MustParseAddrPort("10.0.0.5:40000"), Remote: imds4, Data: put},
		{Kind: audit.EventRecv, Cookie: 1, Local: netip.MustParseAddrPort("10.0.0.5:40000"), Remote: imds4, Data: ok, TTL: 2},
		{Kind: audit.EventConnect, Cookie: 2, PID: 20, Comm: "app", Remote: imds4},
		{Kind: audit.EventSend, Cookie: 2, Local: netip.MustParseAddrPort("172.17.0.2:40001"), Remote: imds4, Data: put},
		{Kind: audit.EventRecv, Cookie: 2, Local: netip.MustParseAddrPort("172.17.0.2:40001"), Remote: imds4, Data: ok, TTL: 1},
		{Kind: audit.EventConnect, Cookie: 3, PID: 30, Comm: "v6", Remote: imds6},
		{Kind: audit.EventSend, Cookie: 3, Local: netip.MustParseAddrPort("[fd00::5]:40002"), Remote: imds6,
			Data: []byte("GET /latest/meta-data/ HTTP/1.1\r\n\r\n")},
		{Kind: audit.EventRecv, Cookie: 3, Remote: imds6, Data: ok, TTL: 64}, // not a token answer
		{Kind: audit.EventClose, Cookie: 1},
	}}
	o := NewObserver(src, []netip.Addr{host, netip.MustParseAddr("fd00::5")})
	for {
		if _, err := o.Next(context.Background()); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	obs := o.Observations()
	assert.Equal(t, []Talker{{PID: 20, Comm: "app", Addr: "172.17.0.2"}}, obs.Foreign)
	assert.Equal(t, []Talker{{PID: 30, Comm: "v6", Addr: "fd00::5"}}, obs.IPv6)
	assert.Equal(t, map[uint8]uint64{2: 1}, obs.HostTokenTTLs)
	assert.Equal(t, map[uint8]uint64{1: 1}, obs.ForeignTokenTTLs)
	_, foreign := o.IsForeign(20)
	assert.True(t, foreign)
	assert.Len(t, o.socks, 2, "closed sockets are forgotten")
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
	line := FormatRecord(r, nil)
	assert.Equal(t, `curl (pid 4242, host): GET /latest/meta-data/\x1b[2J without a token (IMDSv1) -> 401 Unauthorized (refused: a token is required)`, line)
	r = audit.Record{Type: audit.RecordRequest, Class: audit.ClassTokenPUT, Method: "PUT", Path: "/latest/api/token", Unanswered: true, Process: app}
	assert.Contains(t, FormatRecord(r, nil), "app (pid 5151, container): PUT /latest/api/token asks for a session token (IMDSv2) -> NO ANSWER")
	assert.Equal(t, "auditor: 3 kernel records lost", FormatRecord(audit.Record{Type: audit.RecordLost, Lost: 3}, nil))
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
