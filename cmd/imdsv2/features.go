package main

import (
	"fmt"
	"strings"

	"github.com/imdsv2/imdsv2/bpf"
)

// featureLines is `imdsv2 version --features`: it checks privileges and kernel features, loads
// the auditor's eBPF programs into the kernel (so the verifier has its say) and unloads them
// again, without attaching anything, and returns what `imdsv2 audit` would find, one line each.
// It answers "will the auditor run on this host?" before an operator starts it.
//
// It needs the same privileges as the auditor (root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN;
// see bpf.Check). The error lists everything missing, or carries the verifier's log.
func featureLines() ([]string, error) {
	// Load checks privileges and kernel features first (bpf.Check) and says what is missing.
	agent, err := bpf.Load(bpf.Options{})
	if err != nil {
		return nil, cannotRun(err)
	}
	f := agent.Features()
	if err := agent.Close(); err != nil {
		return nil, fmt.Errorf("unload the auditor's programs: %w", err)
	}
	var lines []string
	for _, line := range strings.Split(f.String(), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "cgroup:"):
			lines = append(lines, fmt.Sprintf("%-16s %s", "cgroup:", "root of the cgroup v2 hierarchy unless --cgroup is given"))
		case strings.HasPrefix(line, "attach mode:"):
			// The mode is only known once the first program is attached: a cgroup bpf_link
			// (Linux 5.7+, detached when the agent dies) or BPF_PROG_ATTACH with
			// BPF_F_ALLOW_MULTI on older kernels (detached by the agent's Close).
			lines = append(lines, fmt.Sprintf("%-16s %s", "attach mode:", "cgroup hooks; bpf_link on Linux 5.7+, else BPF_PROG_ATTACH (multi)"))
		case strings.HasPrefix(line, "programs:"):
			lines = append(lines, fmt.Sprintf("%-16s %s", "programs:", "loaded and verified; `imdsv2 audit` prints what it attached"))
		default:
			lines = append(lines, line)
		}
	}
	return lines, nil
}
