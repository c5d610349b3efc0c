package proc

import (
	"regexp"
	"strings"
)

// ParseCgroupFile reads /proc/<pid>/cgroup and returns its paths: the cgroup
// v2 one ("0::/...") first, then the v1 ones with name=systemd first. On a
// hybrid host the container is often named only in the v1 lines.
func ParseCgroupFile(b []byte) []string {
	var v2, systemd string
	var v1 []string
	for _, line := range strings.Split(string(b), "\n") {
		// The path may itself contain ':'.
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[2] == "" {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 = f[2]
		case f[1] == "name=systemd":
			systemd = f[2]
		default:
			v1 = append(v1, f[2])
		}
	}
	var out []string
	for _, p := range append([]string{v2, systemd}, v1...) {
		if p != "" && !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Container is what a cgroup path says about its process.
type Container struct {
	// ID is the container id (64 hex digits for docker, containerd, cri-o
	// and podman), "" outside a container.
	ID string `json:"container_id,omitempty"`
	// Runtime names who made the container: "docker", "containerd",
	// "cri-o", "podman", "kubernetes" (a pod cgroup whose runtime the path
	// does not tell), "ecs", "systemd-machine" (nspawn, VMs) or "unknown".
	Runtime string `json:"container_runtime,omitempty"`
	// PodUID is the Kubernetes pod UID (kubepods...pod<uid>), dashes restored.
	PodUID string `json:"pod_uid,omitempty"`
	// Unit is the systemd unit (last *.service or *.scope component).
	Unit string `json:"unit,omitempty"`
}

// containerPattern matches one cgroup path component. The patterns are tried
// in order on each component from the deepest up, like Inspektor Gadget
// does; the first match names the container.
type containerPattern struct {
	re      *regexp.Regexp
	runtime string
	// parent, when set, must be an earlier component of the path (cgroupfs
	// drivers name the container by a bare id under a runtime directory).
	parent func(comps []string) string
}

const hex64 = `([0-9a-f]{64})`

var containerPatterns = []containerPattern{
	{re: regexp.MustCompile(`^docker-` + hex64 + `\.scope$`), runtime: "docker"},
	{re: regexp.MustCompile(`^cri-containerd-` + hex64 + `\.scope$`), runtime: "containerd"},
	{re: regexp.MustCompile(`^crio-` + hex64 + `\.scope$`), runtime: "cri-o"},
	{re: regexp.MustCompile(`^libpod-` + hex64 + `\.scope$`), runtime: "podman"},
	{re: regexp.MustCompile(`^nerdctl-` + hex64 + `\.scope$`), runtime: "containerd"},
	{re: regexp.MustCompile(`^libpod-` + hex64 + `$`), runtime: "podman"},
	{re: regexp.MustCompile(`^machine-(.+)\.scope$`), runtime: "systemd-machine"},
	{re: regexp.MustCompile(`^` + hex64 + `$`), parent: bareRuntime},
}

// bareRuntime names the runtime of a bare-id component from its ancestors.
func bareRuntime(comps []string) string {
	for i := len(comps) - 1; i >= 0; i-- {
		c := comps[i]
		switch {
		case c == "docker" || c == "actions_job":
			return "docker"
		case c == "ecs":
			return "ecs"
		case c == "libpod_parent":
			return "podman"
		case strings.HasPrefix(c, "kubepods"):
			return "kubernetes"
		}
	}
	return "unknown"
}

// podRe finds a pod UID in a kubepods component: the systemd driver writes
// the UID with '_' for '-', static pods have a 32-digit hash instead.
var podRe = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(\.slice)?$`)

// conmonRe matches the conmon monitor scopes of cri-o and podman, which are
// not the container itself.
var conmonRe = regexp.MustCompile(`^(crio|libpod)-conmon-`)

// ParseCgroupPath derives container, pod and unit from one cgroup path.
func ParseCgroupPath(path string) Container {
	var c Container
	comps := strings.Split(strings.Trim(path, "/"), "/")
	kube := false
	for _, comp := range comps {
		if strings.HasPrefix(comp, "kubepods") {
			kube = true
		}
		if kube && c.PodUID == "" {
			if m := podRe.FindStringSubmatch(comp); m != nil {
				c.PodUID = strings.ReplaceAll(m[1], "_", "-")
			}
		}
		if strings.HasSuffix(comp, ".service") || strings.HasSuffix(comp, ".scope") {
			c.Unit = comp
		}
	}
	for i := len(comps) - 1; i >= 0 && c.ID == ""; i-- {
		if conmonRe.MatchString(comps[i]) {
			continue
		}
		for _, p := range containerPatterns {
			m := p.re.FindStringSubmatch(comps[i])
			if m == nil {
				continue
			}
			c.ID, c.Runtime = m[1], p.runtime
			if p.parent != nil {
				c.Runtime = p.parent(comps[:i])
			}
			break
		}
	}
	if c.ID == "" && c.PodUID != "" {
		c.Runtime = "kubernetes"
	}
	return c
}

// ContainerFromCgroups applies ParseCgroupPath to each path (as returned by
// ParseCgroupFile) and merges the results: the first container id, pod UID
// and unit found win.
func ContainerFromCgroups(paths []string) Container {
	var out Container
	for _, p := range paths {
		c := ParseCgroupPath(p)
		if out.ID == "" && c.ID != "" {
			out.ID, out.Runtime = c.ID, c.Runtime
		}
		if out.PodUID == "" {
			out.PodUID = c.PodUID
		}
		if out.Unit == "" {
			out.Unit = c.Unit
		}
	}
	if out.ID == "" && out.PodUID != "" {
		out.Runtime = "kubernetes"
	}
	return out
}
