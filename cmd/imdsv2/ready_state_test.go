package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/sdk"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/ready"
)

// writeState writes an agent's state file with the given IMDSv1 callers.
func writeState(t *testing.T, v1 ...audit.Process) string {
	t.Helper()
	// The agent has watched for a day until now: a state older than ready.MaxGap is stale.
	since := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	// A day of watching the whole host from its namespaces, exec tracing on.
	s := audit.Summary{Schema: audit.SummarySchema, Since: since, Updated: since.Add(24 * time.Hour),
		Requests: map[audit.Class]uint64{audit.ClassIMDSv1: uint64(len(v1))},
		Coverage: audit.Coverage{Spans: []audit.Span{{From: since, To: since.Add(24 * time.Hour),
			Watch: audit.Watch{Path: "/", CgroupID: 1, HostRoot: true, ExecTracing: true},
			Agent: &audit.Agent{InitialCgroupNS: true, InitialPIDNS: true}}},
			Gaps: []audit.Gap{}, WatchedSeconds: 86400, WholeHost: true, ExecTracing: true, Scope: "/"},
		Instance: &audit.Instance{InstanceID: "i-0a1b2c3d4e5f60001", Region: "us-east-2", AvailabilityZone: "us-east-2a",
			InstanceType: "t3.micro", ReadAt: since}}
	s.ReadyHints = audit.ReadyHints{Complete: true, IMDSv1Callers: []audit.Hint{}, UnansweredTokenPUTs: []audit.Hint{},
		FailedTokenPUTs: []audit.Hint{}, ObservedHopLimits: []audit.HopLimit{}}
	curl := sdk.Identify("curl/8.5.0")
	for _, p := range v1 {
		s.Callers = append(s.Callers, audit.Caller{Class: audit.ClassIMDSv1, Process: p, Count: 1, FirstSeen: since, LastSeen: since,
			Paths: []audit.PathCount{{Path: "/latest/meta-data/instance-id", Count: 1}}, Answers: audit.Answers{200: 1}, SDK: &curl})
		s.ReadyHints.IMDSv1Callers = append(s.ReadyHints.IMDSv1Callers, audit.Hint{Class: audit.ClassIMDSv1, Process: p,
			Count: 1, LastSeen: since, Answers: audit.Answers{200: 1}, SDK: &curl, Advice: curl.Advice})
	}
	path := filepath.Join(t.TempDir(), "audit.json")
	require.NoError(t, audit.SaveState(path, s))
	return path
}

func readState(t *testing.T, path string) audit.Summary {
	t.Helper()
	s, err := audit.ReadState(path)
	require.NoError(t, err)
	return *s
}

func saveState(t *testing.T, s audit.Summary) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.json")
	require.NoError(t, audit.SaveState(path, s))
	return path
}

// TestReadyFromState runs `imdsv2 ready --state` in-process against the emulator on loopback
// (through AWS_EC2_METADATA_SERVICE_ENDPOINT), with a scan of a tree holding an old botocore.
func TestReadyFromState(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0a1b2c3d4e5f60001", Region: "us-east-2", HTTPTokens: imdstest.TokensOptional})
	t.Cleanup(srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
	empty := t.TempDir()
	base := []string{"ready", "--timeout=1m", "--cni-dir=" + empty, "--scan-path=" + empty}

	clean := writeState(t)
	code, out, errOut := cli(t, append(base, "--state="+clean, "--output=json")...)
	require.Equal(t, ready.ExitReady, code, "%s\n%s", out, errOut)
	var r ready.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "state", r.Audit.Source)
	assert.InDelta(t, 86400, r.Audit.DurationSeconds, 1)
	goldenJSON(t, "ready-state-clean.golden.json", out, readyNormalise)

	tree := t.TempDir()
	dist := filepath.Join(tree, "usr/lib/python3/dist-packages/botocore-1.12.0.dist-info")
	require.NoError(t, os.MkdirAll(dist, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dist, "METADATA"), []byte("Metadata-Version: 2.1\nName: botocore\nVersion: 1.12.0\n"), 0o644))
	cron := audit.Process{PID: 31337, Comm: "curl", Exe: "/usr/bin/curl", Cmdline: "curl -s http://169.254.169.254/latest/meta-data/instance-id",
		User: "root", Parents: []audit.Ancestor{{PID: 1000, Comm: "cron"}}}
	state := writeState(t, cron)
	code, out, errOut = cli(t, "ready", "--timeout=1m", "--cni-dir="+empty, "--scan-path="+tree, "--state="+state, "--output=json")
	require.Equal(t, ready.ExitNotReady, code, "%s\n%s", out, errOut)
	r = ready.Report{}
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	codes := reasonCodes(r)
	assert.Equal(t, "curl (pid 31337, user root)", codes["imdsv1-caller"].Subject)
	assert.Equal(t, filepath.Join(tree, "usr/lib/python3/dist-packages/botocore-1.12.0.dist-info"), codes["old-sdk"].File)
	assert.Contains(t, r.NextSteps[1].Command, "--region us-east-2 --instance-id i-0a1b2c3d4e5f60001 --http-tokens required")
	goldenJSON(t, "ready-state-not-ready.golden.json", out, map[*regexp.Regexp]string{
		regexp.MustCompile(regexp.QuoteMeta(tree)): "/TREE", regexp.MustCompile(`"roots": \[[^\]]*\]`): `"roots": []`,
		regexp.MustCompile(`"(files_scanned|dirs_scanned)": \d+`): `"$1": 0`,
		regexp.MustCompile(`"(since|from|to|read_at)": "[^"]*"`):  `"$1": "T"`})

	code, text, _ := cli(t, "ready", "--timeout=1m", "--cni-dir="+empty, "--scan-path="+tree, "--state="+state)
	assert.Equal(t, ready.ExitNotReady, code)
	for _, want := range []string{"NOT READY: 2 reason(s)", "curl (pid 31337, user root)  [imdsv1-caller]",
		"botocore-1.12.0.dist-info  [old-sdk]", "AWSSupport-ConfigureEC2Metadata", "MetadataNoTokenRejected"} {
		assert.Contains(t, text, want)
	}
	// ready --state takes the identity the agent recorded: it sends nothing to IMDS.
	assert.Empty(t, srv.Requests(), "ready --state sent requests to IMDS")

	// The agent's state file is never renamed, even when it is unreadable.
	bad := filepath.Join(t.TempDir(), "audit.json")
	require.NoError(t, os.WriteFile(bad, []byte("{"), 0o600))
	code, out, _ = cli(t, append(base, "--state="+bad, "--output=json")...)
	assert.Equal(t, ready.ExitUndecided, code, out)
	assert.Contains(t, out, "state file unreadable or corrupt")
	assert.FileExists(t, bad)

	// The agent found IMDS disabled: no verdict.
	disabled := readState(t, clean)
	disabled.Instance = &audit.Instance{Error: "imds: PUT /latest/api/token: 403 Forbidden", ErrorKind: "disabled"}
	code, out, _ = cli(t, append(base, "--state="+saveState(t, disabled))...)
	assert.Equal(t, ready.ExitUndecided, code)
	assert.Contains(t, out, "UNDECIDED about this instance: IMDS is disabled")
	// A state file of an agent that recorded no identity (older ones): no verdict either.
	older := readState(t, clean)
	older.Instance = nil
	code, out, _ = cli(t, append(base, "--state="+saveState(t, older))...)
	assert.Equal(t, ready.ExitUndecided, code)
	assert.Contains(t, out, "recorded no instance identity")
	assert.Empty(t, srv.Requests(), "ready --state sent requests to IMDS")
}

func TestReadyUsage(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"--output", "yaml"}, {"--duration", "0s"}, {"--timeout", "-1s"}} {
		code, _, _ := cli(t, append([]string{"ready"}, args...)...)
		assert.Equal(t, exitUsage, code, "%v", args)
	}
	code, out, _ := cli(t, "ready", "-h")
	assert.Equal(t, exitOK, code)
	for _, want := range []string{"Exit status: 0 READY, 1 NOT READY, 2 could not decide", "--scan-path", "--state FILE"} {
		assert.Contains(t, out, want)
	}
	var f stringsFlag
	require.NoError(t, f.Set("/opt, /srv"))
	require.NoError(t, f.Set("/home"))
	assert.Equal(t, "/opt,/srv,/home", f.String())
}
