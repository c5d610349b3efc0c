package testbed_test

import (
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/internal/testbed"
)

// BenchmarkNewClose builds and tears down a whole bed (three namespaces, two veths, a bridge,
// addresses, routes, the wait for the links). new-ms and close-ms split the time.
func BenchmarkNewClose(b *testing.B) {
	testbed.Require(b)
	var build, teardown time.Duration
	n := 0
	for b.Loop() {
		bed, err := testbed.New(testbed.Config{})
		if err != nil {
			b.Fatal(err)
		}
		build += bed.BuildTime()
		start := time.Now()
		if err := bed.Close(); err != nil {
			b.Fatal(err)
		}
		teardown += time.Since(start)
		n++
	}
	b.ReportMetric(float64(build.Microseconds())/1000/float64(n), "new-ms")
	b.ReportMetric(float64(teardown.Microseconds())/1000/float64(n), "close-ms")
}
