// Package proc reads process identity from a /proc tree: command line,
// executable, parent, user, cgroup, and from the cgroup path the container,
// Kubernetes pod and systemd unit. Every root is replaceable so that tests
// run against fake trees in testdata, and nothing here needs root (fields
// the kernel hides from an unprivileged reader, such as another user's exe
// link, are left empty).
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoProcess says the process does not exist (any more).
var ErrNoProcess = errors.New("proc: no such process")

// maxFile bounds what is read of one /proc file: a command line can be
// megabytes long, the auditor keeps a few KiB of it.
const maxFile = 64 << 10

// userHZ is the unit of the start time in /proc/<pid>/stat; it is 100 on
// every Linux architecture the project targets.
const userHZ = 100

// Process is what /proc says about one process.
type Process struct {
	PID, PPID uint32
	// StartTime is field 22 of /proc/<pid>/stat: clock ticks after boot.
	// With PID it identifies a process across PID reuse.
	StartTime uint64
	// Started is StartTime as wall-clock time, zero when the boot time is unknown.
	Started time.Time
	Comm    string
	Exe     string   // target of the exe link, "" when unreadable
	Cmdline []string // argv; empty for kernel threads and zombies
	UID     uint32   // real user id
	GID     uint32   // real group id
	// Cgroups are the process's cgroup paths, the cgroup v2 one first, then
	// those of the v1 hierarchies (hybrid hosts), name=systemd first.
	Cgroups []string
}

// StartedAt reports whether p started sinceBoot after boot, to /proc's precision (a clock
// tick): the kernel's own start time of a process (CLOCK_BOOTTIME) names p exactly, with no
// wall clock in between.
func (p Process) StartedAt(sinceBoot time.Duration) bool {
	return p.StartTime == uint64(sinceBoot/(time.Second/userHZ))
}

// Config names the roots a Table reads. Zero fields take the defaults.
type Config struct {
	// ProcRoot is the proc file system; default "/proc".
	ProcRoot string
	// Root is the file system root for /etc/passwd; default "/".
	Root string
	// CgroupRoot is the cgroup v2 mount point used to map cgroup ids to
	// paths; default: found in ProcRoot/self/mountinfo.
	CgroupRoot string
}

// Table reads processes from a /proc tree. It is safe for concurrent use.
type Table struct {
	cfg Config

	mu        sync.Mutex
	bootTime  time.Time
	users     map[uint32]string
	usersStat fs.FileInfo
	cgroups   *cgroupIndex
	nsRoot    string // the host path of this reader's cgroup namespace root, once found
}

// New returns a Table reading the roots in cfg.
func New(cfg Config) *Table {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	return &Table{cfg: cfg}
}

// Process reads /proc/<pid>. It returns an error wrapping ErrNoProcess when
// the process is gone.
func (t *Table) Process(pid uint32) (Process, error) {
	dir := filepath.Join(t.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	p := Process{PID: pid}
	stat, err := readFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return p, fmt.Errorf("process %d: %w", pid, err)
	}
	if p.Comm, p.PPID, p.StartTime, err = ParseStat(stat); err != nil {
		return p, fmt.Errorf("process %d: %w", pid, err)
	}
	if bt := t.boot(); !bt.IsZero() {
		p.Started = bt.Add(time.Duration(p.StartTime) * time.Second / userHZ)
	}
	if status, err := readFile(filepath.Join(dir, "status")); err == nil {
		p.UID, p.GID = parseStatusIDs(status)
	}
	if cmd, err := readFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = ParseCmdline(cmd)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = exe
	}
	if cg, err := readFile(filepath.Join(dir, "cgroup")); err == nil {
		p.Cgroups = ParseCgroupFile(t.outsideNamespace(cg))
	}
	return p, nil
}

// boot returns the boot time from ProcRoot/stat, read once.
func (t *Table) boot() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bootTime.IsZero() {
		b, err := readFile(filepath.Join(t.cfg.ProcRoot, "stat"))
		if err != nil {
			return time.Time{}
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					t.bootTime = time.Unix(n, 0)
				}
			}
		}
	}
	return t.bootTime
}

// UserName returns the name of uid from Root/etc/passwd. The file is read
// again when it changes.
func (t *Table) UserName(uid uint32) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	path := filepath.Join(t.cfg.Root, "etc", "passwd")
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if t.users == nil || !sameFile(fi, t.usersStat) {
		b, err := readFile(path)
		if err != nil {
			return "", err
		}
		t.users = ParsePasswd(b)
		t.usersStat = fi
	}
	name, ok := t.users[uid]
	if !ok {
		return "", fmt.Errorf("uid %d: not in %s", uid, path)
	}
	return name, nil
}

func sameFile(a, b fs.FileInfo) bool {
	return b != nil && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// ParsePasswd maps uids to names from passwd(5) content; bad lines are skipped.
func ParsePasswd(b []byte) map[uint32]string {
	users := make(map[uint32]string)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := users[uint32(uid)]; !dup {
			users[uint32(uid)] = f[0]
		}
	}
	return users
}

// ParseStat reads comm, ppid and start time from /proc/<pid>/stat. The comm
// field may hold spaces and parentheses, so it ends at the last ')'.
func ParseStat(b []byte) (comm string, ppid uint32, start uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, errors.New("proc: malformed stat")
	}
	comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); ppid is field 4, starttime field 22.
	if len(f) < 20 {
		return "", 0, 0, errors.New("proc: short stat")
	}
	pp, err1 := strconv.ParseUint(f[1], 10, 32)
	st, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, errors.New("proc: malformed stat numbers")
	}
	return comm, uint32(pp), st, nil
}

// ParseCmdline splits /proc/<pid>/cmdline (NUL-separated) into arguments.
func ParseCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

func parseStatusIDs(b []byte) (uid, gid uint32) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Uid:":
			uid = uint32(n)
		case "Gid:":
			gid = uint32(n)
		}
	}
	return uid, gid
}

// readFile reads at most maxFile bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, 4096)
	for len(buf) < maxFile {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):min(cap(buf), maxFile)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	return buf, nil
}
