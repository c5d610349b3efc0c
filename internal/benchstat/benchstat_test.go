package benchstat

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.0, Median([]float64(nil)))
	assert.Equal(t, 3.0, Median([]float64{3}))
	assert.Equal(t, 2.0, Median([]float64{9, 1, 2}), "a stall (9) moves it by one rank only")
	assert.Equal(t, 3.0, Median([]float64{4, 1, 3, 2}), "even count: the upper middle")
	in := []time.Duration{3, 1, 2}
	assert.Equal(t, time.Duration(2), Median(in))
	assert.Equal(t, []time.Duration{3, 1, 2}, in, "input untouched")
}

func ExampleMedian() {
	ms := []float64{52, 49, 1205, 51, 55} // one iteration hit a stall of the machine
	fmt.Println(Median(ms))
	// Output: 52
}

func TestPairedExcess(t *testing.T) {
	// Run 3 ran on a busy machine: both readings are high, their difference is not.
	measured := []float64{190, 185, 420, 200, 188}
	reference := []float64{100, 98, 330, 101, 99}
	got := PairedExcess(measured, reference)
	assert.Equal(t, Spread{Median: 90, Min: 87, Max: 99, N: 5}, got)
	assert.Equal(t, []float64{190, 185, 420, 200, 188}, measured, "input untouched")

	assert.Equal(t, Spread{Median: -2, Min: -2, Max: -2, N: 1}, PairedExcess([]float64{5}, []float64{7}),
		"a program cheaper than the reference reads negative, not clamped")
	assert.Equal(t, Spread{}, PairedExcess(nil, nil))
	assert.Panics(t, func() { PairedExcess([]float64{1}, nil) })
}
