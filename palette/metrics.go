package palette

import "math"

// PSNR is the peak signal-to-noise ratio in dB of got against ref, as
// apple/ml-stable-diffusion's correctness check computes it:
//
//	20·log10((max|got| + 1e-5) / (sqrt(mean((ref−got)²)) + 1e-10))
//
// with ref the float output and got the compressed one. Sums are taken in
// float64. It returns NaN when the lengths differ or are zero.
func PSNR(ref, got []float32) float64 {
	if len(ref) != len(got) || len(ref) == 0 {
		return math.NaN()
	}
	var peak, sq float64
	for i, a := range ref {
		b := float64(got[i])
		peak = max(peak, math.Abs(b))
		d := float64(a) - b
		sq += d * d
	}
	rmse := math.Sqrt(sq / float64(len(ref)))
	return 20 * math.Log10((peak+1e-5)/(rmse+1e-10))
}

// SQNR is the signal-to-quantization-noise ratio in dB of got against
// ref: 10·log10(Σ ref² / Σ (ref−got)²). It is +Inf when got equals ref,
// and NaN when the lengths differ or are zero.
func SQNR(ref, got []float32) float64 {
	if len(ref) != len(got) || len(ref) == 0 {
		return math.NaN()
	}
	var sig, noise float64
	for i, a := range ref {
		d := float64(a) - float64(got[i])
		sig += float64(a) * float64(a)
		noise += d * d
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}
