// Package plot holds what the project's SVG charts share.
package plot

import "math"

// NiceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, for the top
// of an axis; 1 for v <= 0.
func NiceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
