package audit_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// hostSession is a recorded session of a typical host: an SDK using IMDSv2,
// a pod whose token PUTs die on the hop limit and fall back, a curl loop in
// a docker container, an Azure agent probing, a proxied token PUT, and lost
// events.
func hostSession(h *harness) *replay.Recorder {
	h.table.cgroups[4711] = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e4c2a_6d1f_4f0e_9a43_0c1d2e3f4a5b.slice/cri-containerd-" + kubeID + ".scope"
	r := replay.New(t0)

	agent := replay.Proc{PID: 400, PPID: 1, Comm: "amazon-ssm-agen"}
	c := r.Connect(agent)
	c.Send(replay.TokenPUT(21600, goUA))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 56), 2)
	c.Send(replay.GetV2("/latest/meta-data/instance-id", goUA))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 19), 64)

	pod := replay.Proc{PID: 4242, PPID: 4241, Comm: "python3", CgroupID: 4711}
	r.Exec(replay.Proc{PID: 4241, PPID: 1, Comm: "sh", CgroupID: 4711}, "/bin/sh", "sh", "-c", "python3 /app/sync.py")
	r.Exec(pod, "/usr/bin/python3.11", "python3", "/app/sync.py")
	r.Advance(time.Second)
	put := r.Connect(pod)
	put.Send(replay.TokenPUT(21600, "Boto3/1.26.0 md/Botocore#1.29.0 ua/2.0 os/linux#6.1 lang/python#3.11.4 Botocore/1.29.0"))
	r.Advance(time.Second)
	put.Close()
	v1 := r.Connect(pod)
	v1.Send(replay.GetV1("/latest/meta-data/iam/security-credentials/", "Boto3/1.26.0 md/Botocore#1.29.0 ua/2.0 os/linux#6.1 lang/python#3.11.4 Botocore/1.29.0"))
	r.Advance(time.Millisecond)
	v1.Recv(replay.Answer(200, 8), 63)

	curl := r.Connect(curlProc)
	for _, p := range []string{"/latest/meta-data/", "/latest/meta-data/placement/region", "/latest/meta-data/"} {
		r.Advance(time.Minute)
		curl.Send(replay.GetV1(p, "curl/7.88.1"))
		curl.Recv(replay.Answer(200, 10), 64)
	}
	curl.Send(replay.GetV1("/latest/meta-data/tags/instance/Name", "curl/7.88.1"))
	curl.Recv(replay.Answer(404, 0), 64)

	azure := replay.Proc{PID: 300, PPID: 1, Comm: "java"}
	p := r.Connect(azure)
	p.Send("GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nUser-Agent: Java/1.8.0_292\r\n\r\n")
	p.Recv(replay.Answer(404, 0), 64)

	proxied := r.Connect(agent)
	proxied.Send("PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 10.0.0.9\r\nUser-Agent: aws-cli/1.16.0 Python/2.7.16 Linux/4.14 botocore/1.12.0\r\n\r\n")
	proxied.Recv(replay.Answer(403, 0), 64)
	r.Lost(3)
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	h := newHarness(t, audit.Options{})
	h.feed(hostSession(h))
	h.tick(t0.Add(time.Hour))
	s := h.a.Snapshot()

	var records bytes.Buffer
	jl := audit.NewJSONLines(&records)
	for _, r := range h.records {
		jl.Write(r)
	}
	if jl.Err() != nil {
		t.Fatal(jl.Err())
	}
	golden(t, "records.golden.jsonl", records.Bytes())

	var js, table, metrics bytes.Buffer
	if err := audit.WriteSummaryJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.json", js.Bytes())
	if err := audit.WriteTable(&table, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden.txt", table.Bytes())
	if err := audit.WriteMetrics(&metrics, s, 20); err != nil {
		t.Fatal(err)
	}
	golden(t, "metrics.golden.txt", metrics.Bytes())

	for name, b := range map[string][]byte{"records": records.Bytes(), "summary": js.Bytes(), "table": table.Bytes()} {
		noToken(t, name, b)
	}
	hints := s.ReadyHints
	if len(hints.IMDSv1Callers) != 2 || len(hints.UnansweredTokenPUTs) != 1 || !hints.UnansweredTokenPUTs[0].FellBack ||
		len(hints.FailedTokenPUTs) != 1 || hints.Complete || len(hints.ObservedHopLimits) != 1 {
		t.Fatalf("hints: %+v", hints)
	}
}
