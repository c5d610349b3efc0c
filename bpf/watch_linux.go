//go:build linux && (amd64 || arm64)

package bpf

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/internal/cgroup"
	"github.com/imdsv2/imdsv2/internal/mountinfo"
)

// watchInterval is how often Next checks that the watched path is still the cgroup the
// programs are attached to. A cgroup removed and created again under the same path (systemd
// restarting the unit named by --cgroup) is a new cgroup: programs attached to the old one see
// nothing of it.
const watchInterval = time.Second

// rootCgroupID is the id of the root of a cgroup2 hierarchy (the inode number of its
// directory): the first node of the kernfs root.
const rootCgroupID = 1

// Reasons of EventDetached.
const (
	reasonRemoved   = "cgroup removed"
	reasonRecreated = "cgroup removed and created again"
)

// watchState is what the agent knows of the cgroup it watches. It is guarded by Agent.mu.
type watchState struct {
	dir      string        // the directory as this process sees it (what Attach used)
	path     string        // the same as the host sees it (audit.Watch.Path)
	id       uint64        // the cgroup id the programs are attached to (set by attachCgroup)
	detached bool          // the cgroup went away; nothing is attached until it is back
	drained  bool          // the ring buffer was found empty since the cgroup went away
	seen     time.Time     // last time the path was found to be that cgroup
	checked  time.Time     // last check of the path (or attempt to attach again)
	pending  []audit.Event // EventAttached and EventDetached for Next, oldest first
}

// startWatch records what Attach attached to and queues the first EventAttached. The caller
// holds mu.
func (a *Agent) startWatch(dir string) {
	now := time.Now()
	a.watch.dir, a.watch.seen, a.watch.checked = dir, now, now
	a.watch.path = hostPath(dir, a.opts.HostCgroup)
	a.watch.pending = append(a.watch.pending, a.watchEvent(audit.EventAttached, now, ""))
}

// watchEvent builds an EventAttached or EventDetached for the current cgroup. The caller holds mu.
func (a *Agent) watchEvent(kind audit.EventKind, t time.Time, reason string) audit.Event {
	return audit.Event{Kind: kind, Time: t, CgroupID: a.watch.id, Watch: &audit.Watch{
		Path:        a.watch.path,
		CgroupID:    a.watch.id,
		HostRoot:    a.watch.id == rootCgroupID,
		ExecTracing: len(a.execLinks) > 0,
		Reason:      reason,
	}}
}

// nextWatchEvent returns the next EventAttached or EventDetached, after checking the watched
// path when watchInterval has passed since the last check. The caller holds life (Next).
//
// An EventDetached waits until a read of the ring buffer found nothing (the records before it
// are from before the removal; noteDrained), and the programs are attached to the new cgroup only after it was returned, so
// that the events keep their order: records of the old cgroup, EventDetached, EventAttached,
// records of the new cgroup.
func (a *Agent) nextWatchEvent() (audit.Event, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := &a.watch
	if len(w.pending) == 0 && w.dir != "" {
		if now := time.Now(); now.Sub(w.checked) >= watchInterval {
			a.checkWatch(now)
		}
	}
	if len(w.pending) == 0 || w.pending[0].Kind == audit.EventDetached && !w.drained {
		return audit.Event{}, false
	}
	ev := w.pending[0]
	w.pending = w.pending[1:]
	return ev, true
}

// noteDrained records that a read of the ring buffer found nothing. The caller holds life.
func (a *Agent) noteDrained() {
	a.mu.Lock()
	a.watch.drained = true
	a.mu.Unlock()
}

// checkWatch looks whether the watched path is still the cgroup the programs are on, detaches
// them when it is not, and attaches them again once a cgroup is back at the path. The caller
// holds mu.
func (a *Agent) checkWatch(now time.Time) {
	w := &a.watch
	w.checked = now
	if !w.detached {
		id, err := cgroup.ID(w.dir)
		switch {
		case err == nil && id == w.id:
			w.seen = now
			return
		case err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
			return // cannot tell (a transient error); look again at the next interval
		}
		reason := reasonRemoved
		if err == nil {
			reason = reasonRecreated
		}
		// The cgroup was last seen at w.seen: the gap in coverage starts there, as far as
		// anyone can tell.
		ev := a.watchEvent(audit.EventDetached, w.seen, reason)
		_ = a.detachCgroup() // the old cgroup is gone; nothing of it must stay attached
		w.detached, w.drained = true, false
		w.pending = append(w.pending, ev)
		// Attach again as soon as the EventDetached was read, not an interval later.
		w.checked = time.Time{}
		return
	}
	if _, err := a.attachCgroup(w.dir); err != nil {
		return // not back (yet); try again at the next interval
	}
	w.detached, w.seen = false, now
	w.pending = append(w.pending, a.watchEvent(audit.EventAttached, time.Now(), ""))
}

// hostPath returns dir as the host sees it: relative to hostCgroup when that is set (the
// host's cgroup2 mount), else relative to the root of the hierarchy, using the part of the
// hierarchy that the cgroup2 mount holding dir shows (the root field of
// /proc/self/mountinfo). In a cgroup namespace of its own that root is relative to the
// namespace; hostns.Facts tells so. If no mount holds dir, dir itself is returned.
func hostPath(dir, hostCgroup string) string {
	if hostCgroup != "" {
		if rel, ok := within(hostCgroup, dir); ok {
			return rel
		}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return dir
	}
	mounts, _ := mountinfo.Parse(bytes.NewReader(b))
	return hostPathIn(mounts, dir)
}

// hostPathIn is hostPath on a parsed mount table.
func hostPathIn(mounts []mountinfo.Mount, dir string) string {
	best, rel := -1, ""
	for i, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		if r, ok := within(m.Point, dir); ok && (best < 0 || len(m.Point) > len(mounts[best].Point)) {
			best, rel = i, r
		}
	}
	if best < 0 {
		return dir
	}
	root := mounts[best].Root
	if root == "/.." || strings.HasPrefix(root, "/../") {
		// A mount from outside this process's cgroup namespace, shown relative to it: kept
		// as the kernel writes it (cleaning it would make it look like a host path).
		return strings.TrimSuffix(root+rel, "/")
	}
	return path.Join(root, rel)
}

// within returns dir relative to base, as "/" or "/a/b", and whether dir is base or below it.
func within(base, dir string) (string, bool) {
	base, errB := filepath.Abs(base)
	dir, errD := filepath.Abs(dir)
	if errB != nil || errD != nil {
		return "", false
	}
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	if rel == "." {
		return "/", true
	}
	return "/" + filepath.ToSlash(rel), true
}
