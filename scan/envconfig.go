package scan

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// maxConfigFile bounds the configuration and environment files read; larger
// ones are not configuration written by hand and are skipped.
const maxConfigFile = 256 << 10

const (
	envV1Disabled   = "AWS_EC2_METADATA_V1_DISABLED"
	envIMDSDisabled = "AWS_EC2_METADATA_DISABLED"
	cfgV1Disabled   = "ec2_metadata_v1_disabled"
)

// shellProfiles are start-up files whose exports reach the programs started
// from a login shell.
var shellProfiles = map[string]bool{
	".bashrc": true, ".bash_profile": true, ".profile": true, ".zshrc": true, ".zshenv": true, ".zprofile": true,
}

// etcProfiles are the system-wide ones, directly in /etc.
var etcProfiles = map[string]bool{
	"environment": true, "profile": true, "bashrc": true, "bash.bashrc": true, "zshenv": true, "zprofile": true,
}

// isEnvFile says whether a file may set environment variables for programs:
// /etc/environment and shell profiles, /etc/profile.d/*.sh, /etc/default/*
// and /etc/sysconfig/* (read by init scripts and units), environment.d, systemd
// units and their drop-ins, and .env files.
func isEnvFile(name, base, dirBase string) bool {
	dir := parentName(name)
	switch {
	case shellProfiles[base], base == ".env", strings.HasSuffix(base, ".env"):
		return true
	case dir == "etc" && etcProfiles[base]:
		return true
	case dir == "etc/default", dir == "etc/sysconfig":
		return true
	case dirBase == "profile.d" && strings.HasSuffix(base, ".sh"):
		return true
	case dirBase == "environment.d" && strings.HasSuffix(base, ".conf"):
		return true
	case strings.HasSuffix(base, ".service"):
		return true
	case strings.HasSuffix(dirBase, ".service.d") && strings.HasSuffix(base, ".conf"):
		return true
	}
	return false
}

// reEnvSetting finds NAME=value for the two variables, after a line start,
// blank, quote or '=' (as in systemd's Environment=NAME=value), so that
// MY_AWS_EC2_METADATA_DISABLED does not count.
var reEnvSetting = regexp.MustCompile(`(?:^|[\s"'=])(` + envV1Disabled + `|` + envIMDSDisabled + `)=["']?([^"'\s;#]*)`)

// envSetting is one occurrence of a setting in a file.
type envSetting struct {
	line  int
	name  string // variable or config key as written in the file's convention
	value string // sanitized
	scope string // for the AWS config file, the section
}

// parseEnvSettings finds the IMDS variables set in a shell, systemd or
// environment file. Comment lines are ignored.
func parseEnvSettings(data []byte) []envSetting {
	var out []envSetting
	forEachLine(data, func(n int, line string) {
		if line == "" || line[0] == '#' || line[0] == ';' {
			return
		}
		for _, m := range reEnvSetting.FindAllStringSubmatch(line, 4) {
			if m[2] != "" {
				out = append(out, envSetting{line: n, name: m[1], value: sanitize(m[2], 16)})
			}
		}
	})
	return out
}

// parseAWSConfig finds ec2_metadata_v1_disabled in an AWS shared config
// file. Keys are matched case-insensitively, as botocore does.
func parseAWSConfig(data []byte) []envSetting {
	var out []envSetting
	section := ""
	forEachLine(data, func(n int, line string) {
		if line == "" || line[0] == '#' || line[0] == ';' {
			return
		}
		if line[0] == '[' {
			section = strings.TrimSpace(strings.Trim(line, "[]"))
			return
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), cfgV1Disabled) {
			return
		}
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ")
		if value != "" {
			out = append(out, envSetting{line: n, name: cfgV1Disabled, value: sanitize(value, 16), scope: sanitize(section, 64)})
		}
	})
	return out
}

// forEachLine calls f with each trimmed line and its 1-based number.
func forEachLine(data []byte, f func(n int, line string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfigFile)
	for n := 1; sc.Scan(); n++ {
		f(n, strings.TrimSpace(sc.Text()))
	}
}

func checkEnvFile(w *walker, name string, info fs.FileInfo) {
	data, ok := w.readConfig(name, info)
	if !ok {
		return
	}
	kind := envFileKind(name)
	for _, s := range parseEnvSettings(data) {
		if f, ok := settingFinding(name, kind, s); ok {
			w.add(f)
		}
	}
}

func checkAWSConfig(w *walker, name string, info fs.FileInfo) {
	data, ok := w.readConfig(name, info)
	if !ok {
		return
	}
	for _, s := range parseAWSConfig(data) {
		if f, ok := settingFinding(name, "AWS shared config file", s); ok {
			w.add(f)
		}
	}
}

func (w *walker) readConfig(name string, info fs.FileInfo) ([]byte, bool) {
	if info.Size() > maxConfigFile {
		w.skipped()
		return nil, false
	}
	return w.readHead(name, info.Size(), maxConfigFile)
}

// envFileKind names the kind of file for the Evidence field.
func envFileKind(name string) string {
	switch {
	case strings.HasSuffix(name, ".service"), strings.Contains(name, ".service.d/"):
		return "systemd unit Environment="
	case strings.HasSuffix(name, ".env"):
		return "dotenv file"
	case strings.HasPrefix(name, "etc/environment"):
		return "environment file"
	case strings.HasPrefix(name, "etc/default/"), strings.HasPrefix(name, "etc/sysconfig/"):
		return "service defaults file"
	}
	return "shell profile"
}

// settingFinding turns a setting into a finding; ok is false for settings
// that do not matter (AWS_EC2_METADATA_DISABLED=false).
func settingFinding(name, kind string, s envSetting) (Finding, bool) {
	f := Finding{
		Path:     displayPath(name),
		Evidence: kind,
		Setting:  s.name + "=" + s.value,
		Line:     s.line,
	}
	if s.scope != "" {
		f.Evidence += " [" + s.scope + "]"
		f.Setting = s.name + " = " + s.value
	}
	isTrue, isFalse := strings.EqualFold(s.value, "true"), strings.EqualFold(s.value, "false")
	switch {
	case s.name == envIMDSDisabled && isTrue:
		f.Kind, f.Severity, f.Product = KindIMDSDisabled, SeverityWarning, "AWS SDK environment"
		f.Why = "SDKs started with this environment do not call IMDS at all, so they get no instance-profile " +
			"credentials or region from it. It is often a workaround for a token request that hangs in a " +
			"container (hop limit 1), which hides that problem instead of fixing it."
		f.Fix = "if the workload needs the instance role, remove the setting and raise HttpPutResponseHopLimit to 2 " +
			"for containers; otherwise keep it and make sure it gets credentials another way"
		return f, true
	case s.name == envIMDSDisabled:
		return Finding{}, false
	case isTrue:
		f.Kind, f.Severity = KindV1FallbackDisabled, SeverityInfo
		f.Product = settingProduct(s)
		f.Why = "Current AWS SDKs that read this setting never fall back to IMDSv1: a failing token request " +
			"becomes an error you can see instead of a silent IMDSv1 call."
		f.Fix = "nothing to do; keep it (SDKs older than the IMDSv2 minimums ignore it)"
		return f, true
	}
	f.Kind, f.Severity = KindV1FallbackAllowed, SeverityWarning
	f.Product = settingProduct(s)
	f.Why = "This explicitly allows AWS SDKs to fall back to tokenless IMDSv1 requests when the token request " +
		"fails (403, 404, 405 or a time-out, typically a container behind a bridge with hop limit 1). The " +
		"fallback hides the problem until HttpTokens=required turns it into an outage."
	if !isFalse {
		f.Why = fmt.Sprintf("The value %q is not \"true\", so SDKs treat it as false (IMDSv1 fallback allowed) "+
			"or reject it. ", s.value) + f.Why
	}
	f.Fix = "set it to true once token requests work (for containers set HttpPutResponseHopLimit to 2), or remove it"
	return f, true
}

func settingProduct(s envSetting) string {
	if s.scope != "" {
		return "AWS SDK shared config"
	}
	return "AWS SDK environment"
}
