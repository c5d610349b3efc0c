// Package benchstat holds the statistics the project's benchmarks report. This machine, like
// many shared CI machines, stalls now and then for far longer than one benchmark iteration, so
// the benchmarks report medians, which a stall moves by one rank, not means, which it skews.
package benchstat

import (
	"cmp"
	"slices"
)

// Median returns the middle value of xs (of an even count, the upper of the two middle ones,
// so that the result is always a measured value), or the zero value when xs is empty. xs is
// not modified.
func Median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Spread is the median of a set of measurements with the smallest and largest of them beside
// it: the median is the figure, the range the noise it came with.
type Spread struct {
	Median, Min, Max float64
	N                int // how many measurements
}

// SpreadOf returns the Spread of xs (the zero Spread when xs is empty). xs is not modified.
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{Median: Median(xs), Min: slices.Min(xs), Max: slices.Max(xs), N: len(xs)}
}

// PairedExcess returns the Spread of measured[i] - reference[i]: the excess of each run's
// measurement over a reference taken in the same run, so that what moves both alike (the
// machine's load, its clock) cancels out within a run, and a stall spoils one pair, which the
// median then discounts. The slices must be of the same length; it panics otherwise.
func PairedExcess(measured, reference []float64) Spread {
	if len(measured) != len(reference) {
		panic("benchstat: PairedExcess of slices of different lengths")
	}
	d := make([]float64, len(measured))
	for i := range measured {
		d[i] = measured[i] - reference[i]
	}
	return SpreadOf(d)
}
