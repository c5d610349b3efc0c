package imdstest_test

import (
	"context"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// freshClient uses a new connection for every request, so that the Transport never retries a
// request on a reused connection and hides a reset.
func freshClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// try sends a GET and returns the error of the round trip, or the status.
func try(ctx context.Context, c *http.Client, method, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set(imdstest.HeaderTokenTTL, "60")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// shortCtx is the client's patience for requests the server is expected to hold: the test checks
// that no answer came, not how long anything took.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func TestFaults(t *testing.T) {
	const id = "/latest/meta-data/instance-id"
	tests := []struct {
		name   string
		fault  imdstest.Fault
		method string
		path   string
		status int
		check  func(t *testing.T, err error)
	}{
		{"status 500 by default", imdstest.Fault{Kind: imdstest.FaultStatus}, "GET", id, 500, nil},
		{"status 503", imdstest.Fault{Kind: imdstest.FaultStatus, Status: 503}, "GET", id, 503, nil},
		{"status on token PUT only", imdstest.Fault{Kind: imdstest.FaultStatus, Status: 404, Method: "PUT", PathPrefix: "/latest/api/token"}, "PUT", "/latest/api/token", 404, nil},
		{"not matching method", imdstest.Fault{Kind: imdstest.FaultStatus, Method: "PUT"}, "GET", id, 200, nil},
		{"not matching prefix", imdstest.Fault{Kind: imdstest.FaultStatus, PathPrefix: "/latest/user-data"}, "GET", id, 200, nil},
		{"short delay then normal answer", imdstest.Fault{Kind: imdstest.FaultDelay, Delay: time.Millisecond}, "GET", id, 200, nil},
		{"long delay holds", imdstest.Fault{Kind: imdstest.FaultDelay, Delay: time.Hour}, "GET", id, 0,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, context.DeadlineExceeded) }},
		{"hang", imdstest.Fault{Kind: imdstest.FaultHang}, "PUT", "/latest/api/token", 0,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, context.DeadlineExceeded) }},
		{"reset", imdstest.Fault{Kind: imdstest.FaultReset}, "GET", id, 0,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, syscall.ECONNRESET) }},
		{"close", imdstest.Fault{Kind: imdstest.FaultClose}, "GET", id, 0,
			func(t *testing.T, err error) { assert.ErrorIs(t, err, io.EOF) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, imdstest.Config{})
			s.InjectFault(tc.fault)
			ctx := context.Background()
			if tc.fault.Kind == imdstest.FaultHang || tc.fault.Delay > time.Minute {
				ctx = shortCtx(t) // the client's patience; nothing else waits on a clock
			}
			status, err := try(ctx, freshClient(), tc.method, s.URL()+tc.path)
			if tc.check != nil {
				require.Error(t, err)
				tc.check(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.status, status)

			s.ClearFaults()
			status, err = try(context.Background(), freshClient(), tc.method, s.URL()+tc.path)
			require.NoError(t, err)
			assert.Equal(t, 200, status, "ClearFaults restores normal answers")
		})
	}
}

func TestFaultCountAndOrder(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	s.InjectFault(imdstest.Fault{Kind: imdstest.FaultStatus, Status: 503, Count: 2})
	s.InjectFault(imdstest.Fault{Kind: imdstest.FaultStatus, Status: 502, Count: 1})
	var got []int
	for range 4 {
		got = append(got, get(t, s, "", "/latest/meta-data/instance-id").status)
	}
	assert.Equal(t, []int{503, 503, 502, 200}, got, "first injected acts first, each Count times")
}

func TestFaultBeforeDisabledEndpoint(t *testing.T) {
	s := newServer(t, imdstest.Config{EndpointDisabled: true})
	s.InjectFault(imdstest.Fault{Kind: imdstest.FaultStatus, Status: 500, Count: 1})
	assert.Equal(t, 500, get(t, s, "", "/").status)
	assert.Equal(t, 403, get(t, s, "", "/").status)
}

func TestThrottle(t *testing.T) {
	tests := []struct {
		name  string
		mode  imdstest.ThrottleMode
		check func(t *testing.T, status int, err error)
	}{
		{"429", imdstest.Throttle429, func(t *testing.T, status int, err error) {
			require.NoError(t, err)
			assert.Equal(t, http.StatusTooManyRequests, status)
		}},
		{"drop", imdstest.ThrottleDrop, func(t *testing.T, _ int, err error) {
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		}},
		{"close", imdstest.ThrottleClose, func(t *testing.T, _ int, err error) {
			assert.ErrorIs(t, err, io.EOF)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := newServer(t, imdstest.Config{Now: clk.Now,
				Throttle: imdstest.Throttle{RequestsPerSecond: 2, Burst: 3, Mode: tc.mode}})
			url := s.URL() + "/latest/meta-data/instance-id"
			for i := range 3 {
				status, err := try(context.Background(), freshClient(), "GET", url)
				require.NoError(t, err)
				require.Equal(t, 200, status, "request %d within the burst", i)
			}
			held := func() context.Context {
				if tc.mode == imdstest.ThrottleDrop {
					return shortCtx(t)
				}
				return context.Background()
			}
			status, err := try(held(), freshClient(), "GET", url)
			tc.check(t, status, err)

			clk.Advance(500 * time.Millisecond) // one request's worth at 2/s
			status, err = try(context.Background(), freshClient(), "GET", url)
			require.NoError(t, err)
			assert.Equal(t, 200, status, "refilled on the clock")
			status, err = try(held(), freshClient(), "GET", url)
			tc.check(t, status, err)

			s.Update(func(c *imdstest.Config) { c.Throttle = imdstest.Throttle{} })
			status, err = try(context.Background(), freshClient(), "GET", url)
			require.NoError(t, err)
			assert.Equal(t, 200, status, "throttling off")
		})
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	s := imdstest.NewServer(imdstest.Config{Throttle: imdstest.Throttle{RequestsPerSecond: 1e-9, Burst: 1}})
	s.InjectFault(imdstest.Fault{Kind: imdstest.FaultHang, PathPrefix: "/latest/api/token"})
	s.InjectFault(imdstest.Fault{Kind: imdstest.FaultDelay, Delay: time.Hour, PathPrefix: "/latest/user-data"})

	require.Equal(t, 200, get(t, s, "", "/latest/meta-data/").status, "uses up the burst")
	s.ResetRequests()

	paths := []string{"/latest/api/token", "/latest/api/token", "/latest/user-data", "/latest/meta-data/"}
	errs := make(chan error, len(paths))
	for _, p := range paths {
		method := "GET"
		if p == "/latest/api/token" {
			method = "PUT"
		}
		go func() {
			_, err := try(context.Background(), freshClient(), method, s.URL()+p)
			errs <- err
		}()
	}
	// Wait until every request is held inside the server (bounded by the test's own deadline).
	for len(s.Requests()) < len(paths) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, r := range s.Requests() {
		assert.Equal(t, 0, r.Status, "held: %s %s", r.Method, r.Path)
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second): // deadlock guard, not a timing assertion
		t.Fatal("Close did not return while requests were held")
	}
	for range paths {
		assert.Error(t, <-errs, "held request ends without an answer")
	}
	s.Close() // idempotent
	_, err := try(context.Background(), freshClient(), "GET", s.URL()+"/")
	assert.Error(t, err, "no longer listening")
}

func TestHandlerAfterClose(t *testing.T) {
	s := imdstest.NewServer(imdstest.Config{})
	s.Close()
	rec := newRecorder()
	s.Handler().ServeHTTP(rec, mustRequest(t, "GET", "/latest/meta-data/instance-id"))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

func TestFaultKindNames(t *testing.T) {
	for k, want := range map[imdstest.FaultKind]string{
		imdstest.FaultDelay: "delay", imdstest.FaultReset: "reset", imdstest.FaultStatus: "status",
		imdstest.FaultHang: "hang", imdstest.FaultClose: "close", imdstest.FaultKind(99): "FaultKind(99)",
	} {
		assert.Equal(t, want, k.String())
	}
	assert.Equal(t, "drop", imdstest.ThrottleDrop.String())
	assert.Equal(t, "429", imdstest.Throttle429.String())
	assert.Equal(t, "close", imdstest.ThrottleClose.String())
}
