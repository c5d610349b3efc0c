// Package testbed builds the network-namespace test bed of DESIGN.md: an "imds" namespace that holds
// the metadata addresses, an "instance" namespace one hop away from it, and a "container" namespace
// behind a Linux bridge in the instance, two hops away.
//
//	ns imds:      169.254.169.254 and fd00:ec2::254 (the emulator listens here)
//	  │ veth
//	ns instance:  the host; routes to the IMDS addresses; forwards for the container
//	  │ bridge + veth
//	ns container: a container on a bridge; token answers sent with hop limit 1 die on the way
//
// Everything is set up with netlink from Go (no iproute2 needed, so the bed also works in a minimal
// VM). Nothing in the machine's own namespace changes except that the namespaces exist while the
// bed lives: every address, route and link sits inside the bed's namespaces, so packets to the
// metadata addresses never leave them. Close deletes the namespaces by name and kills the
// processes the bed started, on every exit path.
//
// Talking to the emulator from a namespace: Bed.Do moves one OS thread, not the goroutines that
// net/http dials on, so a plain http.Client inside Do would send from the caller's namespace. Use
// Bed.HTTPClient, or Bed.DialContext in a transport of your own: their sockets are created inside
// the namespace. Test packages that build beds also run under netguard.TestMain, so that such a
// mistake finds no route instead of the machine's network.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// NS names one of the bed's network namespaces.
type NS int

// The bed's namespaces.
const (
	// IMDS holds the metadata service addresses; the emulator listens here.
	IMDS NS = iota
	// Instance is the EC2 instance itself: one hop from IMDS.
	Instance
	// Container is a container on a bridge inside the instance: two hops from IMDS.
	Container
)

// String returns the namespace's role: "imds", "instance" or "container".
func (n NS) String() string {
	switch n {
	case IMDS:
		return "imds"
	case Instance:
		return "instance"
	case Container:
		return "container"
	}
	return fmt.Sprintf("ns(%d)", int(n))
}

var allNS = []NS{IMDS, Instance, Container}

// ContainerAddrs returns the container namespace's IPv4 and IPv6 addresses (useful to recognise
// its requests in the emulator's log).
func ContainerAddrs() (v4, v6 netip.Addr) { return containerv4.Addr(), containerv6.Addr() }

// InstanceAddrs returns the instance namespace's addresses on its link to IMDS.
func InstanceAddrs() (v4, v6 netip.Addr) { return instanceToIMDSv4.Addr(), instanceToIMDSv6.Addr() }

// Config tunes a bed. The zero value is a complete bed.
type Config struct {
	// Prefix starts the namespaces' names; default "imdsv2". The creator's pid and a random id
	// follow it, so beds never collide and stale ones can be told from live ones.
	Prefix string
}

// Bed is a built test bed. Its methods are safe for concurrent use.
type Bed struct {
	names map[NS]string
	built time.Duration

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	procs     []*os.Process
}

// New builds the namespaces, links, addresses and routes of the bed. On error nothing is left
// behind.
func New(cfg Config) (*Bed, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "imdsv2"
	}
	if strings.ContainsAny(prefix, "/\x00") {
		return nil, fmt.Errorf("testbed: prefix %q: namespace names cannot hold '/' or NUL", prefix)
	}
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(id))
	start := time.Now()
	b := &Bed{names: map[NS]string{}}
	if err := b.build(base); err != nil {
		// Close deletes the namespaces created so far (links, addresses and routes go with
		// them); the error that matters is the first one.
		_ = b.Close()
		return nil, fmt.Errorf("testbed: %w", err)
	}
	b.built = time.Since(start)
	return b, nil
}

func (b *Bed) build(base string) error {
	for _, ns := range allNS {
		name := base + "-" + ns.String()
		if err := createNamed(name); err != nil {
			return fmt.Errorf("create network namespace %s: %w", name, err)
		}
		b.names[ns] = name
	}
	if err := b.wire(); err != nil {
		return err
	}
	return b.warmUp()
}

// Name returns the namespace's name as `ip netns` shows it.
func (b *Bed) Name(ns NS) string { return b.names[ns] }

// BuildTime returns how long New took, links coming up included.
func (b *Bed) BuildTime() time.Duration { return b.built }

// Path returns the namespace's bind-mount path, for tools that take one (nsenter --net=, or
// setns on an open file).
func (b *Bed) Path(ns NS) string { return filepath.Join(netnsDir, b.names[ns]) }

// Do runs fn on an OS thread that is inside the namespace ns, and waits for it. Goroutines that fn
// starts do not inherit the namespace, but sockets fn creates stay in it. The thread leaves the
// namespace again also when fn panics.
//
// Do is for creating sockets and changing settings in ns, not for talking HTTP: net/http dials on
// goroutines of its own, which run outside ns. Use DialContext or HTTPClient for that.
func (b *Bed) Do(ns NS, fn func() error) error {
	name, ok := b.names[ns]
	if !ok {
		return fmt.Errorf("testbed: no namespace %s in this bed", ns)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("testbed: open namespace %s: %w", ns, err)
	}
	defer h.Close()
	return InNamespace(h, fn)
}

// Listen opens a listener inside the namespace ns. Bed.Close closes it.
func (b *Bed) Listen(ns NS, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := b.Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: listen on %s %s in %s: %w", network, addr, ns, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		ln.Close()
		return nil, errors.New("testbed: bed is closed")
	}
	b.listeners = append(b.listeners, ln)
	return ln, nil
}

// Server is what ServeIMDS needs of the emulator (imdstest.Server has it).
type Server interface {
	Serve(ln net.Listener) error
}

// ServeIMDS makes srv answer at 169.254.169.254:80 and [fd00:ec2::254]:80 inside the imds
// namespace. The listeners close with the bed.
func (b *Bed) ServeIMDS(srv Server) error {
	for _, addr := range []struct{ network, addr string }{
		{"tcp4", imdsfacts.AddrPortV4.String()},
		{"tcp6", imdsfacts.AddrPortV6.String()},
	} {
		ln, err := b.Listen(IMDS, addr.network, addr.addr)
		if err != nil {
			return err
		}
		go srv.Serve(ln) //nolint:errcheck // returns when the bed closes the listener
	}
	return nil
}

// Start starts cmd inside the namespace ns: the child is forked from a thread that is in ns, so
// it inherits the namespace (Go's SysProcAttr has no setns of its own). The bed kills it on Close
// if it still runs; the caller still owns cmd.Wait.
func (b *Bed) Start(ns NS, cmd *exec.Cmd) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("testbed: bed is closed")
	}
	err := b.Do(ns, cmd.Start)
	if err != nil {
		return fmt.Errorf("testbed: start %s in %s: %w", cmd.Path, ns, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed { // Close ran meanwhile and will not see this one
		_ = cmd.Process.Kill()
		return errors.New("testbed: bed closed while the command started")
	}
	b.procs = append(b.procs, cmd.Process)
	return nil
}

// Run starts cmd inside the namespace ns and waits for it.
func (b *Bed) Run(ns NS, cmd *exec.Cmd) error {
	if err := b.Start(ns, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Close kills the processes the bed started, closes its listeners and deletes its namespaces. It
// may be called more than once.
func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	procs, lns := b.procs, b.listeners
	b.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill() // already finished is fine
	}
	for _, ln := range lns {
		ln.Close()
	}
	var errs []error
	for _, ns := range allNS {
		if name, ok := b.names[ns]; ok {
			if err := deleteNamed(name); err != nil {
				errs = append(errs, fmt.Errorf("testbed: delete namespace %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
