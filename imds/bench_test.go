package imds

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/imdsv2/imdsv2/internal/benchstat"
)

// The benchmarks compare this client with the AWS SDK's (feature/ec2/imds) and with bare
// net/http (a token fetched by hand, then plain GETs: the floor) against the same in-process
// emulator. Allocation counts include the emulator's own. Run them all at once:
//
//	go test -run '^$' -bench . -benchmem ./imds/

const benchPath = "instance-id"

// benchServer starts an emulator for a benchmark. Its request log is emptied now and then by
// resetLog, so that the log's own bookkeeping does not weigh on the numbers.
func benchServer(b *testing.B, cfg imdstest.Config) *imdstest.Server {
	b.Helper()
	srv := imdstest.NewServer(cfg)
	b.Cleanup(srv.Close)
	return srv
}

func resetLog(srv *imdstest.Server, i int) {
	if i%4096 == 4095 {
		srv.ResetRequests()
	}
}

// getter is one way of reading benchPath.
type getter func(ctx context.Context) error

func imdsv2Getter(b *testing.B, srv *imdstest.Server) (getter, func()) {
	c, err := New(Options{Endpoint: srv.URL(), Getenv: noEnv})
	if err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context) error {
		_, err := c.Get(ctx, benchPath)
		return err
	}, c.hc.CloseIdleConnections
}

func sdkGetter(srv *imdstest.Server) getter {
	c := sdkimds.New(sdkimds.Options{Endpoint: srv.URL()})
	return func(ctx context.Context) error {
		out, err := c.GetMetadata(ctx, &sdkimds.GetMetadataInput{Path: benchPath})
		if err != nil {
			return err
		}
		_, err = io.ReadAll(out.Content)
		_ = out.Content.Close()
		return err
	}
}

// netHTTPGetter asks for a token once, then sends plain GETs with it: what a hand-written
// client does at best.
func netHTTPGetter(b *testing.B, srv *imdstest.Server) (getter, func()) {
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	hc := &http.Client{Transport: tr}
	req, _ := http.NewRequest(http.MethodPut, srv.URL()+tokenPath, nil)
	req.Header.Set(headerTokenTTL, "21600")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	url := srv.URL() + "/latest/meta-data/" + benchPath
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set(headerToken, string(tok))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return err
	}, tr.CloseIdleConnections
}

// measured holds the last result of each sub-benchmark (ns/op, allocs/op), for the ratios.
var (
	measuredMu sync.Mutex
	measured   = map[string][2]float64{}
)

// runMeasured runs get b.N times, reports the median latency (p50-ns: robust against the
// stalls of a loaded machine, which the mean ns/op is not) and failures, and records ns/op and
// allocs/op under name.
func runMeasured(b *testing.B, name string, srv *imdstest.Server, get getter) {
	ctx := context.Background()
	warm(b, get)
	lat := make([]time.Duration, b.N)
	errs := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := get(ctx); err != nil {
			errs++
		}
		lat[i] = time.Since(t0)
		resetLog(srv, i)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if errs == b.N {
		b.Fatal("every call failed")
	}
	b.ReportMetric(float64(benchstat.Median(lat).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(errs)/float64(b.N), "errors/op")
	record(name, float64(b.Elapsed().Nanoseconds())/float64(b.N), float64(after.Mallocs-before.Mallocs)/float64(b.N))
}

// warm makes the first call (token, connection), retried a few times: the SDK's 500 ms
// response-header time-out trips when a loaded machine stalls.
func warm(b *testing.B, get getter) {
	var err error
	for range 5 {
		if err = get(context.Background()); err == nil {
			return
		}
	}
	b.Fatal(err)
}

func record(name string, ns, allocs float64) {
	measuredMu.Lock()
	measured[name] = [2]float64{ns, allocs}
	measuredMu.Unlock()
}

// interleavedRatios calls the three clients in turn, b.N rounds, and reports the ratios of their
// median latencies: interleaving cancels the drift of a shared machine's load, which separate
// runs do not. The allocation ratios come from the sibling benchmarks (allocs are not timing).
func interleavedRatios(b *testing.B, prefix string, srv *imdstest.Server, own, sdk, bare getter) {
	ctx := context.Background()
	gets := []getter{own, sdk, bare}
	lat := [3][]time.Duration{}
	for i := range lat {
		warm(b, gets[i])
		lat[i] = make([]time.Duration, 0, b.N)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, get := range gets {
			t0 := time.Now()
			_ = get(ctx)
			lat[j] = append(lat[j], time.Since(t0))
		}
		resetLog(srv, i)
	}
	b.StopTimer()
	m := [3]float64{}
	for i := range m {
		m[i] = float64(benchstat.Median(lat[i]))
	}
	b.ReportMetric(m[0], "imdsv2-p50-ns")
	b.ReportMetric(m[1], "sdk-p50-ns")
	b.ReportMetric(m[2], "nethttp-p50-ns")
	b.ReportMetric(m[0]/m[2], "imdsv2/nethttp-p50")
	b.ReportMetric(m[0]/m[1], "imdsv2/sdk-p50")
	measuredMu.Lock()
	defer measuredMu.Unlock()
	ownR, bareR, sdkR := measured[prefix+"imdsv2"], measured[prefix+"nethttp"], measured[prefix+"sdk"]
	if ownR[1] > 0 && bareR[1] > 0 && sdkR[1] > 0 {
		b.ReportMetric(ownR[1]/sdkR[1], "imdsv2/sdk-allocs")
		b.ReportMetric(ownR[1]/bareR[1], "imdsv2/nethttp-allocs")
	}
}

// BenchmarkCachedGet: one GET with a cached token and a warm connection.
func BenchmarkCachedGet(b *testing.B) {
	srv := benchServer(b, imdstest.Config{})
	b.Run("imdsv2", func(b *testing.B) {
		get, done := imdsv2Getter(b, srv)
		defer done()
		runMeasured(b, "cached/imdsv2", srv, get)
	})
	b.Run("sdk", func(b *testing.B) {
		runMeasured(b, "cached/sdk", srv, sdkGetter(srv))
	})
	b.Run("nethttp", func(b *testing.B) {
		get, done := netHTTPGetter(b, srv)
		defer done()
		runMeasured(b, "cached/nethttp", srv, get)
	})
	b.Run("ratios", func(b *testing.B) {
		own, done := imdsv2Getter(b, srv)
		defer done()
		bare, doneBare := netHTTPGetter(b, srv)
		defer doneBare()
		interleavedRatios(b, "cached/", srv, own, sdkGetter(srv), bare)
	})
}

// BenchmarkColdStart: a new client, its token and one GET, on a new connection.
func BenchmarkColdStart(b *testing.B) {
	srv := benchServer(b, imdstest.Config{})
	ctx := context.Background()
	// A failure is counted, not fatal: on a loaded machine the SDK's own time-outs can expire,
	// and that is part of what is measured.
	cold := func(b *testing.B, newGetter func() (getter, func())) {
		errs := 0
		for i := 0; b.Loop(); i++ {
			get, done := newGetter()
			if err := get(ctx); err != nil {
				errs++
			}
			done()
			resetLog(srv, i)
		}
		b.ReportMetric(float64(errs)/float64(b.N), "errors/op")
	}
	b.Run("imdsv2", func(b *testing.B) {
		cold(b, func() (getter, func()) { return imdsv2Getter(b, srv) })
	})
	b.Run("sdk", func(b *testing.B) {
		// The SDK client has no way to close its idle connections; the emulator's Close
		// releases them at the end.
		cold(b, func() (getter, func()) { return sdkGetter(srv), func() {} })
	})
	b.Run("nethttp", func(b *testing.B) {
		cold(b, func() (getter, func()) { return netHTTPGetter(b, srv) })
	})
}

// BenchmarkConcurrent100: 100 goroutines share one client and call at once.
func BenchmarkConcurrent100(b *testing.B) {
	srv := benchServer(b, imdstest.Config{})
	parallel := func(b *testing.B, name string, get getter) {
		ctx := context.Background()
		warm(b, get)
		var n atomic.Int64
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.SetParallelism(max(1, 100/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = get(ctx) // failures show as time; a loaded machine can time out the SDK
				if n.Add(1)%4096 == 0 {
					srv.ResetRequests()
				}
			}
		})
		b.StopTimer()
		runtime.ReadMemStats(&after)
		record(name, float64(b.Elapsed().Nanoseconds())/float64(b.N), float64(after.Mallocs-before.Mallocs)/float64(b.N))
	}
	b.Run("imdsv2", func(b *testing.B) {
		get, done := imdsv2Getter(b, srv)
		defer done()
		parallel(b, "concurrent/imdsv2", get)
	})
	b.Run("sdk", func(b *testing.B) { parallel(b, "concurrent/sdk", sdkGetter(srv)) })
	b.Run("nethttp", func(b *testing.B) {
		get, done := netHTTPGetter(b, srv)
		defer done()
		parallel(b, "concurrent/nethttp", get)
	})
	b.Run("ratios", func(b *testing.B) {
		for b.Loop() {
		}
		measuredMu.Lock()
		defer measuredMu.Unlock()
		own, bare, sdk := measured["concurrent/imdsv2"], measured["concurrent/nethttp"], measured["concurrent/sdk"]
		if own[0] == 0 || bare[0] == 0 || sdk[0] == 0 {
			b.Skip("run the sibling benchmarks first (go test -bench .)")
		}
		b.ReportMetric(own[0]/bare[0], "imdsv2/nethttp-ns")
		b.ReportMetric(own[0]/sdk[0], "imdsv2/sdk-ns")
		b.ReportMetric(own[1]/sdk[1], "imdsv2/sdk-allocs")
		b.ReportMetric(own[1]/bare[1], "imdsv2/nethttp-allocs")
	})
}
