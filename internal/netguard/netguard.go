// Package netguard runs a process inside a private, empty network namespace.
//
// Tests and the demo talk to the metadata addresses only inside namespaces of their own. The
// rule is easy to break by accident: net/http dials on goroutines of its own, so a request made
// from a thread that was moved into a namespace still leaves from the process's namespace. The
// guard removes the hazard instead of relying on care: the process re-executes itself in a new
// network namespace that has only a loopback interface, so a packet for 169.254.169.254 or any
// other non-loopback address has no route and never reaches the machine's network.
package netguard

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
)

// envMarker names the private namespace. Reexec hands it to the child as "pid:<its own pid>";
// the child, seeing its parent's pid there, knows it was just started in the new namespace and
// replaces the value with "ns:<inode of that namespace>". An environment variable is inherited
// by every descendant, in whatever namespace: so the marker is a claim that Active checks
// against the namespace the process is actually in, never taken on trust.
const envMarker = "IMDSV2_PRIVATE_NETNS"

// Active reports whether this process runs inside a namespace made by Reexec (or a descendant
// of such a process that is still in that namespace).
func Active() bool {
	ino, ok := netnsInode()
	return ok && os.Getenv(envMarker) == "ns:"+ino
}

// netnsInode returns the inode number of this process's network namespace.
func netnsInode() (string, bool) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return strconv.FormatUint(st.Ino, 10), true
}

// claimFresh, in a child Reexec has just started, turns the marker its parent left into the
// name of the namespace the child is in. It reports whether this process is such a child.
func claimFresh() bool {
	if os.Getenv(envMarker) != "pid:"+strconv.Itoa(os.Getppid()) {
		return false
	}
	ino, ok := netnsInode()
	return ok && os.Setenv(envMarker, "ns:"+ino) == nil
}

// Reexec makes sure the rest of the program runs in a private network namespace. Called first in
// main or TestMain:
//   - in the re-executed child it brings loopback up and returns nil: carry on;
//   - as root on Linux it runs the same program, with the same arguments, in a new network
//     namespace, waits for it and exits with its status (it does not return);
//   - otherwise (not root, not Linux) it returns an error saying why it could not isolate; the
//     caller decides whether that matters (tests that need root skip or fail on their own).
func Reexec() error {
	if claimFresh() || Active() {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("netguard: bring up loopback in the private namespace: %w", err)
		}
		return nil
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errors.New("netguard: not root on Linux, cannot create a private network namespace")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("netguard: find own executable: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envMarker+"=pid:"+strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	// The child is in our process group and gets a terminal's Ctrl-C itself; signals sent to us
	// alone (kill, a CI time-out) are passed on so that it can clean up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("netguard: start %s in a new network namespace: %w", exe, err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Say so: a process killed from outside prints nothing of its own.
			fmt.Fprintf(os.Stderr, "netguard: the re-executed process was killed by %v\n", ws.Signal())
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(exit.ExitCode())
	}
	fmt.Fprintf(os.Stderr, "netguard: %v\n", err)
	os.Exit(2)
	return nil
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}
