package imdstest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// fetch is a minimal IMDS call for the examples: method, URL, header name/value pairs. It
// returns the status and the body.
func fetch(method, url string, headers ...string) (int, string) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The IMDSv2 session: PUT for a token, then GETs that carry it. The emulator listens on
// 127.0.0.1 only.
func ExampleNewServer() {
	s := imdstest.NewServer(imdstest.Config{InstanceID: "i-0example", Region: "eu-west-1"})
	defer s.Close()

	_, token := fetch("PUT", s.URL()+"/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "300")
	status, id := fetch("GET", s.URL()+"/latest/meta-data/instance-id", "X-aws-ec2-metadata-token", token)
	fmt.Println(status, id)
	_, region := fetch("GET", s.URL()+"/latest/meta-data/placement/region", "X-aws-ec2-metadata-token", token)
	fmt.Println(region)
	// Output:
	// 200 i-0example
	// eu-west-1
}

// Flip HttpTokens to required while the server runs, as modify-instance-metadata-options
// would, and watch an IMDSv1 caller break.
func ExampleServer_Update() {
	s := imdstest.NewServer(imdstest.Config{})
	defer s.Close()

	status, _ := fetch("GET", s.URL()+"/latest/meta-data/instance-id")
	fmt.Println("optional, no token:", status)

	s.Update(func(c *imdstest.Config) { c.HTTPTokens = imdstest.TokensRequired })
	status, _ = fetch("GET", s.URL()+"/latest/meta-data/instance-id")
	fmt.Println("required, no token:", status)

	for _, r := range s.Requests() {
		fmt.Println(r.Method, r.Path, r.Status, "IMDSv1:", r.IMDSv1())
	}
	// Output:
	// optional, no token: 200
	// required, no token: 401
	// GET /latest/meta-data/instance-id 200 IMDSv1: true
	// GET /latest/meta-data/instance-id 401 IMDSv1: false
}

// Make the next token request fail, to test a client's retry or fallback.
func ExampleServer_InjectFault() {
	s := imdstest.NewServer(imdstest.Config{})
	defer s.Close()
	s.InjectFault(imdstest.Fault{
		Method: "PUT", PathPrefix: "/latest/api/token",
		Kind: imdstest.FaultStatus, Status: 503, Count: 1,
	})
	for range 2 {
		status, _ := fetch("PUT", s.URL()+"/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds", "60")
		fmt.Println(status)
	}
	// Output:
	// 503
	// 200
}

// A spot interruption notice on a clock the test moves by hand.
func ExampleConfig_spotNotice() {
	var mu sync.Mutex
	now := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }

	s := imdstest.NewServer(imdstest.Config{Now: clock, SpotActionAfter: time.Hour})
	defer s.Close()
	const path = "/latest/meta-data/spot/instance-action"

	status, _ := fetch("GET", s.URL()+path)
	fmt.Println(status)

	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	status, body := fetch("GET", s.URL()+path)
	fmt.Println(status, strings.Join(strings.Fields(body), " "))
	// Output:
	// 404
	// 200 { "action" : "terminate", "time" : "2025-06-01T09:02:00Z" }
}
