package palette

import (
	"math"
	"testing"
)

func TestPSNR(t *testing.T) {
	tests := []struct {
		name     string
		ref, got []float32
		want     float64
	}{
		// max|got| = 2.125, rmse = sqrt((0.125²+0.125²+0+0)/4)
		{"basic", []float32{1, -2, 0.5, 0}, []float32{1.125, -2.125, 0.5, 0}, 20 * math.Log10((2.125+1e-5)/(math.Sqrt(0.0078125)+1e-10))},
		// identical: only the epsilons remain
		{"equal", []float32{3, -4}, []float32{3, -4}, 20 * math.Log10((4+1e-5)/1e-10)},
		// the peak is taken from got, not ref
		{"peak from got", []float32{10, 0}, []float32{0, 0}, 20 * math.Log10(1e-5/(math.Sqrt(50)+1e-10))},
	}
	for _, tc := range tests {
		// Every input is exact in float32 and the sums are float64: only
		// the last bits of log10 and sqrt may differ.
		if got := PSNR(tc.ref, tc.got); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: PSNR = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !math.IsNaN(PSNR([]float32{1}, []float32{1, 2})) || !math.IsNaN(PSNR(nil, nil)) {
		t.Error("PSNR of mismatched or empty inputs is not NaN")
	}
}

func TestSQNR(t *testing.T) {
	// signal 1+4 = 5, noise 0.25+0.25 = 0.5: 10 dB
	if got := SQNR([]float32{1, 2}, []float32{1.5, 1.5}); math.Abs(got-10) > 1e-12 {
		t.Errorf("SQNR = %v, want 10", got)
	}
	if got := SQNR([]float32{1, 2}, []float32{1, 2}); !math.IsInf(got, 1) {
		t.Errorf("SQNR of equal inputs = %v, want +Inf", got)
	}
	if !math.IsNaN(SQNR([]float32{1}, nil)) {
		t.Error("SQNR of mismatched inputs is not NaN")
	}
}
