package rng

import "math"

// fma32 returns a*b+c rounded once to float32, as the FMA instructions do.
//
// The product of two float32 values is exact in float64. The float64 sum is
// then rounded to odd (an inexact result gets its last bit set), which makes
// the final rounding to float32 correct: float64 carries more than 24+1 bits,
// so no double-rounding error can occur.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	// TwoSum: err is the exact rounding error of s.
	bb := s - p
	err := (p - (s - bb)) + (float64(c) - bb)
	if err != 0 && !math.IsInf(s, 0) {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			// Step one ulp towards the exact value.
			if (err > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}
