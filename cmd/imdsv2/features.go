package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/imdsv2/imdsv2/bpf"
)

// writeFeatures is `imdsv2 version --features`: it checks privileges and kernel features, loads
// the auditor's eBPF programs into the kernel (so the verifier has its say) and unloads them
// again, without attaching anything, then prints what `imdsv2 audit` would find. It answers
// "will the auditor run on this host?" before an operator starts it.
//
// It needs the same privileges as the auditor (root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN;
// see bpf.Check). The error lists everything missing, or carries the verifier's log.
func writeFeatures(w io.Writer) error {
	// Load checks privileges and kernel features first (bpf.Check) and says what is missing.
	agent, err := bpf.Load(bpf.Options{})
	if err != nil {
		return err
	}
	f := agent.Features()
	if err := agent.Close(); err != nil {
		return fmt.Errorf("unload the auditor's programs: %w", err)
	}
	fmt.Fprintln(w, "auditor features (programs loaded and unloaded again, nothing attached):")
	for _, line := range strings.SplitAfter(f.String(), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "cgroup:"):
			fmt.Fprintf(w, "  %-16s %s\n", "cgroup:", "root of the cgroup v2 hierarchy unless --cgroup is given")
		case strings.HasPrefix(line, "attach mode:"):
			// The mode is only known once the first program is attached: a cgroup bpf_link
			// (Linux 5.7+, detached when the agent dies) or BPF_PROG_ATTACH with
			// BPF_F_ALLOW_MULTI on older kernels (detached by the agent's Close).
			fmt.Fprintf(w, "  %-16s %s\n", "attach mode:", "cgroup hooks; bpf_link on Linux 5.7+, else BPF_PROG_ATTACH (multi)")
		case strings.HasPrefix(line, "programs:"):
			fmt.Fprintf(w, "  %-16s %s\n", "programs:", "loaded and verified; `imdsv2 audit` prints what it attached")
		default:
			fmt.Fprint(w, "  "+line)
		}
	}
	return nil
}
