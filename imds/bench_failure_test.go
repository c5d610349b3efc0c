package imds

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// BenchmarkFailureModes measures how long the first call of a new client takes to resolve when
// IMDS misbehaves, for this client (default options, and with AllowIMDSv1) and for the SDK's
// (default options), with no deadline on the context. ns/op is the time to the answer or error;
// errors/op says which it was; imdsv1/op counts the tokenless GETs the server received. This is
// the failure-mode timing table, as a benchmark rather than a timed test assertion. max-s is the
// slowest call; late-max-s, the reference for reading both, is how late a 5 ms sleep woke up at
// worst during the same calls: time the machine did not give the process, which no time-out in
// the client can win back.
func BenchmarkFailureModes(b *testing.B) {
	modes := []struct {
		name    string
		cfg     imdstest.Config
		fault   *imdstest.Fault
		refused bool
		callers int // concurrent first callers; default 1
	}{
		{name: "hoplimit", fault: &imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang}},
		{name: "hoplimit-required", cfg: imdstest.Config{HTTPTokens: imdstest.TokensRequired},
			fault: &imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang}},
		{name: "hoplimit-5callers", fault: &imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang}, callers: 5},
		{name: "refused", refused: true},
		{name: "disabled", cfg: imdstest.Config{EndpointDisabled: true}},
		{name: "get-dropped", fault: &imdstest.Fault{Method: "GET", Kind: imdstest.FaultHang}},
		{name: "get-500", fault: &imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 500}},
		{name: "get-429", fault: &imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 429}},
	}
	clients := []struct {
		name string
		make func(endpoint string) (getter, func())
	}{
		{"imdsv2", func(ep string) (getter, func()) { return newBenchClient(ep, false) }},
		{"imdsv2-allowv1", func(ep string) (getter, func()) { return newBenchClient(ep, true) }},
		{"sdk", func(ep string) (getter, func()) {
			c := sdkimds.New(sdkimds.Options{Endpoint: ep})
			return func(ctx context.Context) error {
				out, err := c.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: benchPath})
				if err == nil {
					_ = out.Content.Close()
				}
				return err
			}, func() {}
		}},
	}
	for _, m := range modes {
		for _, cl := range clients {
			if cl.name == "imdsv2-allowv1" && m.fault == nil {
				continue // same as imdsv2: no token failure a fallback would follow
			}
			b.Run(m.name+"/"+cl.name, func(b *testing.B) {
				srv := imdstest.NewServer(m.cfg)
				defer srv.Close()
				ep := srv.URL()
				if m.refused {
					ep = refusedEndpoint(b)
				}
				if m.fault != nil {
					srv.InjectFault(*m.fault)
				}
				callers := max(m.callers, 1)
				errs := 0
				srv.ResetRequests()
				late := startLatenessProbe()
				var slowest time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					get, done := cl.make(ep)
					var wg sync.WaitGroup
					var mu sync.Mutex
					for range callers {
						wg.Go(func() {
							if err := get(context.Background()); err != nil {
								mu.Lock()
								errs++
								mu.Unlock()
							}
						})
					}
					wg.Wait()
					slowest = max(slowest, time.Since(start))
					done()
				}
				b.StopTimer()
				b.ReportMetric(slowest.Seconds(), "max-s")
				b.ReportMetric(late().Seconds(), "late-max-s")
				v1 := 0
				for _, r := range srv.Requests() {
					if r.Method == http.MethodGet && !r.TokenSent {
						v1++
					}
				}
				b.ReportMetric(float64(errs)/float64(b.N*callers), "errors/op")
				b.ReportMetric(float64(v1)/float64(b.N), "imdsv1/op")
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
			})
		}
	}
}

// startLatenessProbe starts sleeping 5 ms again and again; the function it returns stops it and
// says how much later than asked the latest wake-up came.
func startLatenessProbe() func() time.Duration {
	const nap = 5 * time.Millisecond
	stop := make(chan struct{})
	worst := make(chan time.Duration)
	go func() {
		var w time.Duration
		for {
			select {
			case <-stop:
				worst <- w
				return
			default:
			}
			t := time.Now()
			time.Sleep(nap)
			w = max(w, time.Since(t)-nap)
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-worst
	}
}

func newBenchClient(endpoint string, allowV1 bool) (getter, func()) {
	c, err := New(Options{Endpoint: endpoint, Getenv: noEnv, AllowIMDSv1: allowV1})
	if err != nil {
		panic(err)
	}
	return func(ctx context.Context) error {
		_, err := c.Get(ctx, benchPath)
		return err
	}, c.hc.CloseIdleConnections
}
