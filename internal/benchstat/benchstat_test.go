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
