package audit_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/audit/replay"
	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/ready"
)

// emulatorToken asks the emulator for a token, on no network: the value a client would carry.
func emulatorToken(t *testing.T) string {
	t.Helper()
	srv := imdstest.NewServer(imdstest.Config{})
	req := httptest.NewRequest(http.MethodPut, "/latest/api/token", nil)
	req.Header.Set(imdstest.HeaderTokenTTL, "60")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != 200 || w.Body.Len() < 20 {
		t.Fatalf("emulator token: %d %q", w.Code, w.Body.String())
	}
	return w.Body.String()
}

// TestRedactionEveryOutput plants tokens (one the emulator issued, a realistic AQAE one with
// "/" and "+", and one of no recognisable shape that only knowledge can catch) and secrets in
// every position a caller can put them (command line, parent shell, path, path parameter,
// User-Agent), and greps every output for them: records, JSON lines, summary, state file,
// table, metrics (text and handler), ready's text and JSON.
func TestRedactionEveryOutput(t *testing.T) {
	const (
		realistic = "AQAEAJ3k9xQ2rZ7vW1m/N8bT4yU6iO0pL5sD3fG7+K2jX9cV1bN4mQ8wE6rT0yU=="
		odd       = "my-custom-token-value-12345" // shaped like nothing: knowledge only
		secret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY3XAMPLEK9Y"
		session   = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD4example1Session2Token3Value"
	)
	tokens := []string{emulatorToken(t), realistic, odd}
	secrets := append([]string{secret, session}, tokens...)

	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	pid := uint32(7000)
	next := func(ppid uint32, comm string) replay.Proc {
		pid++
		return replay.Proc{PID: pid, PPID: ppid, UID: 1000, Comm: comm}
	}
	get := func(path, ua, token string) string {
		s := "GET " + path + " HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: " + ua + "\r\n"
		if token != "" {
			s += "X-aws-ec2-metadata-token: " + token + "\r\n"
		}
		return s + "\r\n"
	}
	for _, tok := range tokens {
		// The parent shell and the children's exec records are captured before the
		// token is ever seen on the wire.
		shell := next(1, "sh")
		r.Exec(shell, "/bin/sh", "sh", "-c", "TOKEN="+tok+"; curl -H \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/")
		argvs := [][]string{
			{"curl", "-H", "X-aws-ec2-metadata-token: " + tok, "http://169.254.169.254/latest/meta-data/" + tok},
			{"tool", "--token", tok}, {"tool", "-t" + tok}, {"tool", tok}, {"tool", "X-aws-ec2-metadata-token=" + tok},
			{"curl", "http://169.254.169.254/latest/meta-data/?token=" + tok},
			{"curl", "http://169.254.169.254/latest/meta-data/instance-id;tok=" + tok},
			{"curl", "-A", "tool/1.0 token=" + tok, "http://169.254.169.254/latest/meta-data/"},
		}
		paths := []string{"/latest/meta-data/" + tok, "/latest/meta-data/instance-id;tok=" + tok,
			"/latest/meta-data/?token=" + tok, "/latest/meta-data/" + tok + "/x"}
		uas := []string{"tool/1.0 token=" + tok, tok, "curl/8.5.0 (" + tok + ")"}
		var procs []replay.Proc
		for i, argv := range argvs {
			p := next(shell.PID, argv[0])
			exe := "/usr/bin/" + argv[0]
			if i == 1 {
				exe = "/tmp/" + tok + "/" + argv[0]
			}
			r.Exec(p, exe, argv...)
			procs = append(procs, p)
		}
		r.Advance(time.Millisecond)
		// A v1 request in flight before any request carries the token: its answer comes
		// after the token was seen on another connection.
		early := r.Connect(procs[len(procs)-1])
		early.Send(get("/latest/meta-data/"+tok, uas[0], ""))
		for i, p := range procs[:len(procs)-1] {
			c := r.Connect(p)
			c.Send(get(paths[i%len(paths)], uas[i%len(uas)], tok))
			r.Advance(time.Millisecond)
			c.Recv(replay.Answer(200, 10), 64)
			c.Close()
		}
		early.Recv(replay.Answer(200, 10), 64)
		early.Close()
		// No User-Agent: the header shape keeps names and the Connection and Accept values.
		shaped := r.Connect(procs[0])
		name := "X-Shape"
		if !strings.ContainsAny(tok, "/+=") {
			name = tok // a valid header name
		}
		shaped.Send("GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: " + tok + "\r\nConnection: " + tok +
			"\r\n" + name + ": 1\r\nX-aws-ec2-metadata-token: " + tok + "\r\n\r\n")
		r.Advance(time.Millisecond)
		shaped.Recv(replay.Answer(200, 10), 64)
		shaped.Close()
	}
	// Credentials on command lines.
	for _, argv := range [][]string{
		{"tool", `{"Code":"Success","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"` + secret + `","Token":"` + session + `"}`},
		{"aws", "configure", "set", "default.aws_secret_access_key", secret},
		{"aws", "configure", "set", "profile.x.aws_session_token", session},
		{"env", "Token=" + session, "AWS_SECRET_ACCESS_KEY=" + secret, "tool"},
		{"tool", "--secret", secret},
		{"curl", "http://admin:" + secret + "@169.254.169.254/"},
	} {
		p := next(1, argv[0])
		r.Exec(p, "/usr/bin/"+argv[0], argv...)
		c := r.Connect(p)
		c.Send(replay.GetV1("/latest/meta-data/", "curl/8.5.0"))
		r.Advance(time.Millisecond)
		c.Recv(replay.Answer(200, 10), 64)
		c.Close()
	}
	h.feed(r)
	h.tick(r.Now().Add(time.Minute))

	snap := h.a.Snapshot()
	if n := len(h.requests()); n != 3*9+6 {
		t.Fatalf("%d requests recorded, want %d", n, 3*9+6)
	}
	outputs := map[string][]byte{"records": jsonOf(t, h.records), "summary": jsonOf(t, snap)}
	var jl bytes.Buffer
	lines := audit.NewJSONLines(&jl)
	for _, rec := range h.records {
		lines.OnRecord(rec)
	}
	outputs["json lines"] = jl.Bytes()
	state := filepath.Join(t.TempDir(), "state.json")
	if err := audit.SaveState(state, snap); err != nil {
		t.Fatal(err)
	}
	outputs["state"], _ = os.ReadFile(state)
	var table, metrics, text bytes.Buffer
	if err := audit.WriteTable(&table, snap); err != nil {
		t.Fatal(err)
	}
	outputs["table"] = table.Bytes()
	if err := audit.WriteMetrics(&metrics, snap, 1000); err != nil {
		t.Fatal(err)
	}
	outputs["metrics"] = metrics.Bytes()
	w := httptest.NewRecorder()
	h.a.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	outputs["metrics handler"] = w.Body.Bytes()
	rep := ready.Evaluate(ready.Input{Summary: &snap, Source: "state"})
	if err := ready.WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	outputs["ready text"] = text.Bytes()
	outputs["ready json"] = jsonOf(t, rep)

	for name, b := range outputs {
		for _, s := range secrets {
			for _, form := range []string{s, strings.TrimRight(s, "="), strings.ReplaceAll(s, "/", "%2F")} {
				if bytes.Contains(b, []byte(form)) {
					i := bytes.Index(b, []byte(form))
					t.Errorf("%s holds %q: ...%s...", name, form, b[max(0, i-120):min(len(b), i+len(form)+40)])
				}
			}
		}
	}
	// Redaction left the report its substance.
	if !bytes.Contains(outputs["records"], []byte("/latest/meta-data/instance-id;tok=[REDACTED]")) ||
		!bytes.Contains(outputs["records"], []byte("tool/1.0 token=[REDACTED]")) ||
		!bytes.Contains(outputs["records"], []byte("TOKEN=[REDACTED]; curl")) {
		t.Errorf("records lost the shape of what was redacted:\n%s", outputs["records"])
	}
}

// TestRedactionAfterTheFact: a caller counted before the token it carries is first seen on the
// wire (a shapeless token, which only knowledge catches) is clean in every summary made
// afterwards, and in the verdict. (Its live record went out at the time.)
func TestRedactionAfterTheFact(t *testing.T) {
	const odd = "my-custom-token-value-12345"
	h := newHarness(t, audit.Options{})
	r := replay.New(t0)
	early := replay.Proc{PID: 8001, PPID: 1, UID: 1000, Comm: "tool"}
	r.Exec(early, "/usr/bin/tool", "tool", "-t"+odd)
	c := r.Connect(early)
	c.Send(replay.GetV1("/latest/meta-data/"+odd, "tool/1.0 "+odd))
	r.Advance(time.Millisecond)
	c.Recv(replay.Answer(200, 10), 64)
	c.Close()
	shapeOnly := replay.Proc{PID: 8003, PPID: 1, UID: 1000, Comm: "agent"}
	r.Exec(shapeOnly, "/usr/bin/agent", "agent")
	c3 := r.Connect(shapeOnly) // no User-Agent: the header shape keeps the Accept value
	c3.Send("GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: " + odd + "\r\n\r\n")
	r.Advance(time.Millisecond)
	c3.Recv(replay.Answer(200, 10), 64)
	c3.Close()
	h.feed(r)
	if s := jsonOf(t, h.a.Snapshot()); !bytes.Contains(s, []byte("Accept="+odd)) {
		t.Fatalf("the shapeless token was redacted before it was known: the test plants nothing")
	}

	late := replay.Proc{PID: 8002, PPID: 1, UID: 1000, Comm: "curl"}
	r.Exec(late, "/usr/bin/curl", "curl")
	c2 := r.Connect(late)
	c2.Send("GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: " + odd + "\r\n\r\n")
	r.Advance(time.Millisecond)
	c2.Recv(replay.Answer(200, 10), 64)
	c2.Close()
	h.feed(r)

	snap := h.a.Snapshot()
	var table, metrics, text bytes.Buffer
	if err := audit.WriteTable(&table, snap); err != nil {
		t.Fatal(err)
	}
	if err := audit.WriteMetrics(&metrics, snap, 1000); err != nil {
		t.Fatal(err)
	}
	rep := ready.Evaluate(ready.Input{Summary: &snap, Source: "state"})
	if err := ready.WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"summary": jsonOf(t, snap), "table": table.Bytes(), "metrics": metrics.Bytes(),
		"ready text": text.Bytes(), "ready json": jsonOf(t, rep)} {
		if bytes.Contains(b, []byte(odd)) {
			t.Errorf("%s holds the token learned after the fact:\n%s", name, b)
		}
	}
	if !bytes.Contains(jsonOf(t, snap), []byte(`tool -t[REDACTED]`)) {
		t.Errorf("the early caller lost its command line: %s", jsonOf(t, snap))
	}
}
