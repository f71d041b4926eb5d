package testmodel

import (
	"math"
	"testing"

	"github.com/pigment-sd/pigment/tensor"
)

func TestCompare(t *testing.T) {
	ref := tensor.FromData([]float32{0, 10, -10, 0}, 4) // std ≈ 7.07
	got := tensor.FromData([]float32{0, 10, -10, 5e-4}, 4)
	if d := Compare(t, "close", got, ref); d != float64(float32(5e-4)) {
		t.Errorf("max diff %g", d)
	}
	if s := Std([]float32{1, 1, 1}); s != 0 {
		t.Errorf("Std of constants = %g", s)
	}
	if d := MaxAbsDiff([]float32{float32(math.NaN())}, []float32{0}); !math.IsInf(d, 1) {
		t.Errorf("NaN diff = %g", d)
	}
}
