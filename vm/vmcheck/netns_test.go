package vmcheck_test

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/internal/privtest"
)

// TestNetnsVethBridge creates a network namespace with a bridge and a veth pair enslaved to it,
// the building blocks of internal/testbed. In the VM this proves that /init loaded the veth and
// bridge modules (there is no modprobe to load them on demand).
func TestNetnsVethBridge(t *testing.T) {
	privtest.Require(t)
	ns := newNetns(t)
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in the new namespace: %v", err)
	}
	defer h.Close()

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "vmcbr0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("add bridge (bridge module loaded?): %v", err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vmc0"}, PeerName: "vmc1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair (veth module loaded?): %v", err)
	}
	if err := h.LinkSetMaster(veth, br); err != nil {
		t.Fatalf("enslave vmc0 to vmcbr0: %v", err)
	}
	for _, name := range []string{"vmcbr0", "vmc0", "vmc1", "lo"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
	}
	port, err := h.LinkByName("vmc0")
	if err != nil {
		t.Fatal(err)
	}
	bridge, err := h.LinkByName("vmcbr0")
	if err != nil {
		t.Fatal(err)
	}
	if port.Attrs().MasterIndex != bridge.Attrs().Index {
		t.Fatalf("vmc0 master index %d, want the bridge's %d", port.Attrs().MasterIndex, bridge.Attrs().Index)
	}
}

// newNetns creates a network namespace held only by a handle, so it disappears when the test
// closes the handle; the calling thread is moved back to where it was.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: keep it locked so it dies with the goroutine.
		ns.Close()
		runtime.LockOSThread()
		t.Fatalf("return to the original netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
