package ready

import (
	"fmt"
	"net/netip"
	"os"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/nldump"
)

// DefaultCNIDir is where CNI plugins (Kubernetes, ECS awsvpc, nerdctl) keep their network
// configurations.
const DefaultCNIDir = "/etc/cni/net.d"

// Bridge is a Linux bridge of the host and how many ports (veths, taps) it has.
type Bridge struct {
	Name  string `json:"name"`
	Ports int    `json:"ports"`
}

// Host is what the host's network namespace says about container networking: bridges with
// ports put containers one routing hop further from IMDS than the host, so their token
// answers need HttpPutResponseHopLimit 2.
type Host struct {
	// Addrs are the namespace's own addresses; sockets from other addresses belong to
	// other network namespaces.
	Addrs   []netip.Addr `json:"-"`
	Bridges []Bridge     `json:"bridges"`
	// Veths counts veth interfaces (each is usually one container's link).
	Veths int `json:"veths"`
	// CNIConfigs are the files in the CNI configuration directory.
	CNIConfigs []string `json:"cni_configs"`
}

// ContainerNetworks reports whether the host looks able to run containers on their own
// network namespaces: a bridge with ports, or a CNI configuration.
func (h *Host) ContainerNetworks() bool {
	if h == nil {
		return false
	}
	for _, b := range h.Bridges {
		if b.Ports > 0 {
			return true
		}
	}
	return len(h.CNIConfigs) > 0
}

// InspectHost lists the links and addresses of the network namespace at nsPath ("" for
// the caller's own), and the CNI configurations in cniDir ("" for DefaultCNIDir).
func InspectHost(nsPath, cniDir string) (*Host, error) {
	h := &netlink.Handle{}
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
		}
		defer ns.Close()
		// Links and addresses are all it reads: only NETLINK_ROUTE, so hosts without the
		// xfrm_user or nfnetlink modules (which a handle for every family would need) work too.
		if h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
		}
		defer h.Close()
	}
	links, err := nldump.Retry(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list network links: %w", err)
	}
	host := &Host{Bridges: []Bridge{}, CNIConfigs: []string{}}
	ports := map[int]int{}
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 {
			ports[m]++
		}
		if l.Type() == "veth" {
			host.Veths++
		}
	}
	for _, l := range links {
		if l.Type() == "bridge" {
			host.Bridges = append(host.Bridges, Bridge{Name: l.Attrs().Name, Ports: ports[l.Attrs().Index]})
		}
	}
	sort.Slice(host.Bridges, func(i, j int) bool { return host.Bridges[i].Name < host.Bridges[j].Name })
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			host.Addrs = append(host.Addrs, ip.Unmap())
		}
	}
	if cniDir == "" {
		cniDir = DefaultCNIDir
	}
	if entries, err := os.ReadDir(cniDir); err == nil {
		for _, e := range entries {
			if !e.IsDir() {
				host.CNIConfigs = append(host.CNIConfigs, cniDir+"/"+e.Name())
			}
		}
	}
	return host, nil
}
