package audit_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/proc"
	"github.com/imdsv2/imdsv2/audit/replay"
)

// Example replays a recorded session: a short-lived curl that read metadata
// without a token. Records are printed as JSON lines as they are produced.
func Example() {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r := replay.New(start)
	p := replay.Proc{PID: 31337, PPID: 1, UID: 1000, Comm: "curl"}
	r.Exec(p, "/usr/bin/curl", "curl", "-s", "http://169.254.169.254/latest/meta-data/instance-id")
	c := r.Connect(p)
	c.Send(replay.GetV1("/latest/meta-data/instance-id", "curl/8.5.0"))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 19), 64)
	c.Close()
	r.Exit(p)

	a, err := audit.New(audit.Options{
		// A fake /proc; the real agent leaves ProcessTable nil for /proc.
		ProcessTable: proc.New(proc.Config{ProcRoot: "proc/testdata/proc", Root: "proc/testdata/root"}),
		Clock:        audit.ClockFunc(func() time.Time { return start }),
		OnRecord: func(rec audit.Record) {
			fmt.Println(rec.Class, rec.Path, rec.Status, rec.Process.Cmdline, rec.Process.User)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := a.Run(context.Background(), r.Source()); err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range a.Snapshot().ReadyHints.IMDSv1Callers {
		fmt.Println("fix:", h.Process.Exe, "-", h.SDK.Name, h.SDK.Version)
	}
	// Output:
	// imdsv1 /latest/meta-data/instance-id 200 curl -s http://169.254.169.254/latest/meta-data/instance-id alice
	// fix: /usr/bin/curl - curl 8.5.0
}

// ExampleWriteTable prints the summary table of a replayed session.
func ExampleWriteTable() {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r := replay.New(start)
	// The source says what it watches: the whole host, exec tracing on.
	r.Add(audit.Event{Kind: audit.EventAttached, Watch: &audit.Watch{Path: "/", CgroupID: 1, HostRoot: true, ExecTracing: true}})
	p := replay.Proc{PID: 4242, PPID: 1, Comm: "app"}
	r.Exec(p, "/opt/app", "/opt/app", "--serve")
	c := r.Connect(p)
	c.Send(replay.TokenPUT(21600, "aws-sdk-go-v2/1.21.0"))
	c.Recv(replay.Answer(200, 56), 1)
	c.Send(replay.GetV2("/latest/meta-data/placement/region", "aws-sdk-go-v2/1.21.0"))
	c.Recv(replay.Answer(200, 9), 64)

	a, _ := audit.New(audit.Options{
		ProcessTable: proc.New(proc.Config{ProcRoot: "proc/testdata/proc", Root: "proc/testdata/root"}),
		Clock:        audit.ClockFunc(func() time.Time { return start.Add(10 * time.Minute) }),
		Agent:        &audit.Agent{InitialCgroupNS: true, InitialPIDNS: true},
	})
	_ = a.Run(context.Background(), r.Source())
	_ = audit.WriteTable(os.Stdout, a.Snapshot())
	// Output:
	// IMDS audit since 2025-03-01T12:10:00Z, updated 2025-03-01T12:10:00Z: 2 requests, imdsv2 1, token-put 1
	// lost events 0, reassembly evictions 0, unpaired answers 0
	// coverage: the whole host, exec tracing on, watched 10m0s, 0 gap(s) of 0s in all
	//
	// CLASS      COUNT  LAST SEEN             EXE       CONTAINER  USER  SDK                       ANSWERS  COMMAND
	// imdsv2     1      2025-03-01T12:00:00Z  /opt/app  -          root  AWS SDK for Go v2 1.21.0  200:1    /opt/app --serve
	// token-put  1      2025-03-01T12:00:00Z  /opt/app  -          root  AWS SDK for Go v2 1.21.0  200:1    /opt/app --serve
	//
	// Ready hints (complete: true)
	// IMDSv1 callers: 0
	// Unanswered token PUTs: 0
	// Refused token PUTs: 0
	// Observed hop limits of token answers: 1 (host, 1 answers)
}
