package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/hostns"
	"github.com/imdsv2/imdsv2/internal/privtest"
	"github.com/imdsv2/imdsv2/ready"
)

// TestEveryCommandHelp: -h, --help, -h after an argument and `help COMMAND` all print the
// same help to stdout and exit 0, with nothing on stderr. The help of each command is a golden
// file (testdata/help/), so that a change of what users read first is seen in review.
func TestEveryCommandHelp(t *testing.T) {
	hostEnvUnset(t)
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, want, errOut := cli(t, c.name, "-h")
			require.Equal(t, exitOK, code, errOut)
			assert.Empty(t, errOut)
			assert.True(t, strings.HasPrefix(want, "Usage: imdsv2 "+c.name), want)
			goldenText(t, filepath.Join("help", c.name+".golden.txt"), want)
			for _, args := range [][]string{{c.name, "--help"}, {c.name, "-help"}, {"help", c.name}, {c.name, "x", "-h"}} {
				code, out, errOut := cli(t, args...)
				assert.Equal(t, exitOK, code, "%v: %s", args, errOut)
				assert.Equal(t, want, out, "%v", args)
				assert.Empty(t, errOut, "%v", args)
			}
		})
	}
	code, out, errOut := cli(t, "--help")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, errOut)
	for _, want := range []string{"Commands:", "Exit status:", "completion", "--output text|json"} {
		assert.Contains(t, out, want)
	}
	_, helpOut, _ := cli(t, "help")
	assert.Equal(t, out, helpOut)
	goldenText(t, filepath.Join("help", "imdsv2.golden.txt"), out)
}

// hostEnvUnset keeps IMDSV2_HOST_PROC and IMDSV2_HOST_CGROUP, the defaults of --host-proc and
// --host-cgroup, out of the help.
func hostEnvUnset(t *testing.T) {
	t.Setenv(hostns.EnvProc, "")
	t.Setenv(hostns.EnvCgroup, "")
}

// goldenText compares got with testdata/name; -update-golden rewrites it.
func goldenText(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/imdsv2 -update-golden to create it")
	assert.Equal(t, string(want), got, "%s differs (go test -update-golden rewrites it; review the diff)", path)
}

// placeholderRE is what a flag's value may be called in the help: an upper-case word (FILE,
// KEY=VALUE[,KEY=VALUE...]) or a list of choices (text|json).
var placeholderRE = regexp.MustCompile(`^([A-Z][A-Z0-9_=,.\[\]]*|[a-z0-9-]+(\|[a-z0-9-]+)+)$`)

// TestUsagePlaceholders: no flag shows a stray value name. A backquote in a usage text names
// the value (`ready -h` once printed "-state imdsv2 audit"); every value is named by a
// placeholder, switches by none, and no backquote is left in the help.
func TestUsagePlaceholders(t *testing.T) {
	for _, c := range commands() {
		fs := newFlagSet(c.name)
		c.config().register(fs)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flagPlaceholder(f)
			if isSwitch(f) {
				assert.Empty(t, name, "%s --%s is a switch", c.name, f.Name)
			} else {
				assert.Regexp(t, placeholderRE, name, "%s --%s: its usage must name its value in backquotes", c.name, f.Name)
			}
			assert.NotContains(t, usage, "`", "%s --%s", c.name, f.Name)
			assert.LessOrEqual(t, strings.Count(f.Usage, "`"), 2, "%s --%s: one placeholder at most", c.name, f.Name)
		})
		_, out, _ := cli(t, "help", c.name)
		assert.NotContains(t, out[strings.Index(out+"Flags:", "Flags:"):], "`", c.name)
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "  --") {
				fields := strings.Fields(line)
				require.LessOrEqual(t, len(fields), 2, "%s: %q", c.name, line)
				if len(fields) == 2 {
					assert.Regexp(t, placeholderRE, fields[1], "%s: %q", c.name, line)
				}
			}
		}
	}
	// The old bug, named: the placeholder of ready's --state is FILE.
	_, out, _ := cli(t, "ready", "-h")
	assert.Contains(t, out, "\n  --state FILE\n")
}

// TestUsageErrors: bad flags and arguments go to stderr with a pointer to the help, exit 2,
// and nothing on stdout.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"get", "--nope", "x"}, {"get"}, {"get", "a", "b"}, {"get", "x", "--output", "yaml"}, {"get", "x", "--timeout"},
		{"doctor", "extra"}, {"doctor", "--timeout", "0s"}, {"ready", "extra"}, {"mock", "--tokens", "sometimes"},
		{"mock", "--output", "yaml"}, {"audit", "--output", "csv"}, {"audit", "x"}, {"demo", "x"}, {"version", "x"},
		{"completion"}, {"completion", "fish"}, {"help", "nosuch"}, {"help", "get", "ready"},
	} {
		code, out, errOut := cli(t, args...)
		assert.Equal(t, exitUsage, code, "%v", args)
		assert.Empty(t, out, "%v", args)
		assert.Contains(t, errOut, "imdsv2 "+args[0]+": ", "%v", args)
		assert.Contains(t, errOut, "Run 'imdsv2 help "+args[0]+"'", "%v", args)
	}
	_, _, errOut := cli(t, "get", "--output", "yaml", "x")
	assert.Contains(t, errOut, `invalid value "yaml" for flag --output: must be text or json`, "flags are named as the help names them")
	_, _, errOut = cli(t, "get", "--nope", "x")
	assert.Contains(t, errOut, "flag provided but not defined: --nope")
}

// TestFinish: the exit status and the message are decided in one place.
func TestFinish(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{nil, exitOK, ""},
		{exitStatus(exitOK), exitOK, ""},
		{exitStatus(exitFail), exitFail, ""}, // the output said it (a verdict)
		{exitStatus(exitUsage), exitUsage, ""},
		{errors.New("broke"), exitFail, "imdsv2 x: broke\n"},
		{cannotRun(errors.New("not root")), exitUsage, "imdsv2 x: not root\n"},
		{usageErrorf("bad %s", "flag"), exitUsage, "imdsv2 x: bad flag\nRun 'imdsv2 help x' for its flags and arguments.\n"},
	} {
		var b bytes.Buffer
		assert.Equal(t, tc.code, finish("x", tc.err, &b), "%v", tc.err)
		assert.Equal(t, tc.msg, b.String(), "%v", tc.err)
	}
}

// TestFlagsAfterArguments: flags go before, between and after the arguments; "--" ends them;
// the single-dash spelling of every long flag keeps working.
func TestFlagsAfterArguments(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0after000000000001"})
	t.Cleanup(srv.Close)
	for _, args := range [][]string{
		{"get", "meta-data/instance-id", "--output", "json", "--endpoint", srv.URL(), "--timeout=1m"},
		{"get", "--endpoint=" + srv.URL(), "instance-id", "--output=json", "--timeout", "1m"},
		{"get", "-endpoint", srv.URL(), "-output", "json", "-timeout", "1m", "instance-id"},
	} {
		code, out, errOut := cli(t, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		var res getResult
		require.NoError(t, json.Unmarshal([]byte(out), &res), "%v", args)
		require.NotNil(t, res.Value, "%v", args)
		assert.Equal(t, "i-0after000000000001", *res.Value, "%v", args)
	}
	// After "--" a word that looks like a flag is the PATH.
	code, out, _ := cli(t, "get", "--endpoint", srv.URL(), "--output", "json", "--", "--output")
	assert.Equal(t, exitFail, code)
	var res getResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "/latest/meta-data/--output", res.Path)
	assert.Equal(t, "not-found", res.Error.Kind)

	fs := newFlagSet("t")
	v := fs.Bool("v", false, "")
	rest, err := parseArgs(fs, []string{"a", "-v", "-", "b", "--", "-v", "c"})
	require.NoError(t, err)
	assert.True(t, *v)
	assert.Equal(t, []string{"a", "-", "b", "-v", "c"}, rest)
	_, err = parseArgs(fs, []string{"a", "-h"})
	assert.True(t, isHelp(err))
}

// TestEveryCommandJSON: every command that prints a result prints valid JSON with a "schema"
// with --output json. audit's JSON lines are checked by TestAuditCommand (root, eBPF) and the
// demo's by TestDemoJSON (root); completion and help print no result.
func TestEveryCommandJSON(t *testing.T) {
	noEnv(t)
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0json0000000000001"})
	t.Cleanup(srv.Close)
	empty := t.TempDir()
	for name, args := range map[string][]string{
		"get":     {"instance-id", "--endpoint", srv.URL(), "--timeout=1m"},
		"doctor":  {"--endpoint", srv.URL(), "--timeout=1m"},
		"ready":   {"--state", writeState(t), "--cni-dir", empty, "--scan=false"},
		"version": {},
	} {
		code, out, errOut := cli(t, append(append([]string{name}, args...), "--output", "json")...)
		assert.Equal(t, exitOK, code, "%s: %s", name, errOut)
		assertSchema(t, name, out)
	}

	// mock: JSON lines, serving then (with --log) each request, stopped at the end.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mock", "--listen", "127.0.0.1:0", "--log", "--output", "json"}, pw, os.Stderr)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan())
	var serving mockLine
	assertSchema(t, "mock", lines.Text())
	require.NoError(t, json.Unmarshal(lines.Bytes(), &serving))
	assert.Equal(t, "serving", serving.Type)
	code, _, errOut := cli(t, "get", "--endpoint", serving.URL, "--timeout=1m", "instance-id")
	require.Equal(t, exitOK, code, errOut)
	var kinds []string
	for len(kinds) < 2 && lines.Scan() {
		assertSchema(t, "mock", lines.Text())
		var l mockLine
		require.NoError(t, json.Unmarshal(lines.Bytes(), &l))
		assert.Equal(t, "request", l.Type)
		kinds = append(kinds, l.Kind)
	}
	assert.Equal(t, []string{"token", "IMDSv2"}, kinds)
	cancel()
	assert.Equal(t, exitOK, <-done)
	var last string
	for lines.Scan() {
		last = lines.Text()
	}
	assert.Contains(t, last, `"type":"stopped"`)
}

// assertSchema checks that out is one JSON object with a positive "schema".
func assertSchema(t *testing.T, name, out string) {
	t.Helper()
	var doc struct {
		Schema *int `json:"schema"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	require.NoError(t, dec.Decode(&doc), "%s: %s", name, out)
	assert.False(t, dec.More(), "%s: one JSON value: %s", name, out)
	require.NotNil(t, doc.Schema, "%s: no schema in %s", name, out)
	assert.Positive(t, *doc.Schema, name)
}

// TestVersionFlag: imdsv2 --version is imdsv2 version, flags included.
func TestVersionFlag(t *testing.T) {
	_, want, _ := cli(t, "version")
	for _, args := range [][]string{{"--version"}, {"-version"}} {
		code, out, errOut := cli(t, args...)
		assert.Equal(t, exitOK, code, errOut)
		assert.Equal(t, want, out)
	}
	code, out, _ := cli(t, "--version", "--output", "json")
	assert.Equal(t, exitOK, code)
	assertSchema(t, "version", out)
}

// TestAuditOutputTable: audit's --output takes table, its older name for text.
func TestAuditOutputTable(t *testing.T) {
	for in, want := range map[string]string{"table": "text", "text": "text", "json": "json"} {
		c := &auditConfig{}
		fs := newFlagSet("audit")
		c.register(fs)
		rest, err := parseArgs(fs, []string{"--output", in})
		require.NoError(t, err)
		require.NoError(t, c.setArgs(rest))
		assert.Equal(t, want, c.output, in)
	}
}

// completionScript writes `imdsv2 completion SHELL` to a file, checks its syntax with
// SHELL -n and returns the shell and the file; without the shell the test is skipped with why.
func completionScript(t *testing.T, shell string) (string, string) {
	t.Helper()
	sh, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s): its completion script is not checked here", shell, shell)
	}
	code, out, errOut := cli(t, "completion", shell)
	require.Equal(t, exitOK, code, errOut)
	path := filepath.Join(t.TempDir(), "imdsv2."+shell)
	require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
	b, err := exec.Command(sh, "-n", path).CombinedOutput()
	require.NoError(t, err, "%s -n: %s", shell, b)
	return sh, path
}

// TestCompletionBash checks the script's syntax (bash -n) and what it completes, by calling
// its function as bash's completion would.
func TestCompletionBash(t *testing.T) {
	bash, script := completionScript(t, "bash")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "audit.json"), nil, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	complete := func(words ...string) []string {
		t.Helper()
		// COMP_WORDS as bash splits the line: "--output=" arrives as "--output" "=" "".
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_imdsv2\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.Fields(strings.TrimSpace(string(out)))
	}
	assert.Subset(t, complete("imdsv2", ""), []string{"get", "doctor", "ready", "mock", "audit", "demo", "version", "completion", "help"})
	assert.Equal(t, []string{"--output"}, complete("imdsv2", "get", "--out"))
	assert.Equal(t, []string{"--output"}, complete("imdsv2", "get", "meta-data/", "--out"), "flags after the argument")
	assert.Equal(t, []string{"text", "json"}, complete("imdsv2", "get", "--output", ""))
	assert.Equal(t, []string{"text", "json"}, complete("imdsv2", "get", "--output", "="))
	assert.Equal(t, []string{"json"}, complete("imdsv2", "get", "--output", "=", "j"))
	assert.Equal(t, []string{"text", "json"}, complete("imdsv2", "audit", "-output", ""))
	assert.Equal(t, []string{"ipv4", "ipv6", "auto"}, complete("imdsv2", "get", "--endpoint-mode", ""))
	assert.Equal(t, []string{"optional", "required"}, complete("imdsv2", "mock", "--tokens", ""))
	assert.Equal(t, []string{"instance-id", "instance-type"}, complete("imdsv2", "get", "inst"))
	assert.Equal(t, []string{"bash", "zsh"}, complete("imdsv2", "completion", ""))
	assert.Equal(t, []string{"ready"}, complete("imdsv2", "help", "rea"))
	assert.ElementsMatch(t, []string{dir + "/audit.json", dir + "/sub"}, complete("imdsv2", "ready", "--state", dir+"/"))
	assert.Equal(t, []string{dir + "/sub"}, complete("imdsv2", "audit", "--cgroup", dir+"/"))
	assert.Empty(t, complete("imdsv2", "get", "--timeout", ""), "no words for a free value")
	assert.Contains(t, complete("imdsv2", "ready", "--"), "--scan-path")
}

// TestCompletionZsh checks the script's syntax (zsh -n) and that compinit registers it.
func TestCompletionZsh(t *testing.T) {
	zsh, script := completionScript(t, "zsh")
	dump := filepath.Join(t.TempDir(), "zcompdump")
	out, err := exec.Command(zsh, "-f", "-c", "autoload -Uz compinit && compinit -u -d "+dump+
		" && source "+script+" && print -r -- ${_comps[imdsv2]}").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "_imdsv2", strings.TrimSpace(string(out)))
	b, err := os.ReadFile(script)
	require.NoError(t, err)
	for _, want := range []string{"'--output=[text or json]:output:(text json)'", "'--state=[read the audit from FILE, the state file of a running imdsv2 audit --state, instead of auditing]:state:_files'",
		"'*--scan-path=", "'1:argument:(bash zsh)'"} {
		assert.Contains(t, string(b), want)
	}
}

// TestDemoJSON runs `imdsv2 demo --output json`: the story goes to stderr and stdout holds one
// JSON document with the verdict and each caller's outcome.
func TestDemoJSON(t *testing.T) {
	privtest.Require(t)
	bin := filepath.Join(t.TempDir(), "imdsv2")
	buildBinary(t, bin)
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "demo", "--output", "json")
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "%s", errb.String())
	assertSchema(t, "demo", out.String())
	var res demoResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	assert.Equal(t, ready.NotReady, res.Verdict)
	require.NotNil(t, res.Report)
	assert.Contains(t, res.Callers, demoOutcome{Caller: "imdsv2 get (container)", Command: "imdsv2 get meta-data/instance-id",
		Where: "container", Before: "fails", After: "works"})
	assert.Contains(t, errb.String(), "Verdict before enforcing: NOT READY", "the story goes to stderr")
}
