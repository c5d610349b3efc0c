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
