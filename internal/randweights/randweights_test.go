package randweights

import (
	"math"
	"slices"
	"testing"

	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

func TestNew(t *testing.T) {
	// Generated on 3 workers or on one, the values are the same.
	pool := parallel.New(3)
	defer pool.Close()
	shapes := map[string][]int{
		"conv.weight": {64, 32, 3, 3},
		"conv.bias":   {64},
		"norm.weight": {512},
		"emb.weight":  {1000, 16},
	}
	for _, dtype := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		t.Run(string(dtype), func(t *testing.T) {
			a := New(nil, shapes, 7, dtype)
			b := New(pool, map[string][]int{"conv.weight": {64, 32, 3, 3}}, 7, dtype)
			c := New(nil, shapes, 8, dtype)
			if len(a.Names()) != len(shapes) {
				t.Fatalf("%d tensors, want %d", len(a.Names()), len(shapes))
			}
			for name, shape := range shapes {
				w, _ := a.Tensor(name)
				if w.DType() != dtype || !tensor.SameShape(w.Shape(), shape) {
					t.Errorf("%s: %s %v", name, w.DType(), w.Shape())
				}
				if _, ok := w.(*weights.Raw); !ok {
					t.Errorf("%s is a %T, want *weights.Raw", name, w)
				}
			}
			// Each tensor depends on the seed and its name only.
			wa, _ := a.Tensor("conv.weight")
			wb, _ := b.Tensor("conv.weight")
			wc, _ := c.Tensor("conv.weight")
			va, vb, vc := weights.ReadAll(wa), weights.ReadAll(wb), weights.ReadAll(wc)
			if !slices.Equal(va, vb) {
				t.Error("same seed and name gave different values")
			}
			if slices.Equal(va, vc) {
				t.Error("different seeds gave the same values")
			}
			for _, tc := range []struct {
				name      string
				mean, std float64
			}{
				{"conv.weight", 0, 1 / math.Sqrt(32*9)},
				{"conv.bias", 0, 0.05},
				{"norm.weight", 1, 0.1},
				{"emb.weight", 0, 0.25},
			} {
				w, _ := a.Tensor(tc.name)
				v := weights.ReadAll(w)
				var s float64
				for _, x := range v {
					s += float64(x)
				}
				mean, std := s/float64(len(v)), std(v)
				if math.Abs(mean-tc.mean) > 0.2*tc.std+0.01 || math.Abs(std-tc.std) > 0.15*tc.std {
					t.Errorf("%s: mean %.4f std %.4f, want %.4f %.4f", tc.name, mean, std, tc.mean, tc.std)
				}
			}
		})
	}
}

func TestZeros(t *testing.T) {
	src := Zeros(map[string][]int{"w": {3, 4}, "b": {3}})
	w, ok := src.Tensor("w")
	if !ok || !tensor.SameShape(w.Shape(), []int{3, 4}) {
		t.Fatal("missing w")
	}
	dst := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	w.ReadRows(dst, 1, 3)
	for i, v := range dst[:8] {
		if v != 0 {
			t.Fatalf("dst[%d] = %g", i, v)
		}
	}
	if dst[8] != 9 {
		t.Error("ReadRows wrote past its rows")
	}
	if n := NumParams(map[string][]int{"w": {3, 4}, "b": {3}}); n != 15 {
		t.Errorf("NumParams = %d", n)
	}
}

func BenchmarkNewF16(b *testing.B) {
	shapes := map[string][]int{"a": {1280, 1280, 3, 3}, "b": {2560, 1280}}
	b.SetBytes(2 * (1280*1280*9 + 2560*1280))
	for b.Loop() {
		New(nil, shapes, 1, tensor.F16)
	}
}

func std(x []float32) float64 {
	var s, q float64
	for _, v := range x {
		s += float64(v)
		q += float64(v) * float64(v)
	}
	n := float64(len(x))
	return math.Sqrt(max(q/n-(s/n)*(s/n), 0))
}
