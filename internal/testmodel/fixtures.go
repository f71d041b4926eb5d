// Package testmodel holds what the network tests share: fixture files
// opened for the length of a test, reference tensors, comparisons with
// the fixtures' tolerance, the kernel sets every fixture test runs on,
// and kernels that do no arithmetic (to walk full-size networks quickly).
// Random full-size models are randmodel's.
package testmodel

import (
	"math"
	"testing"

	"github.com/pigment-sd/pigment/format/safetensors"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// OpenFile opens a safetensors file for the duration of the test.
func OpenFile(tb testing.TB, path string) *safetensors.File {
	tb.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// FileSource opens a safetensors weight file for the duration of the test
// and serves its float tensors as weights.Raw (integer tensors such as
// position_ids are left out).
func FileSource(tb testing.TB, path string) weights.Source {
	tb.Helper()
	f := OpenFile(tb, path)
	m := weights.Map{}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		switch info.DType {
		case tensor.F32, tensor.F16, tensor.BF16:
		default:
			continue
		}
		data, err := f.Data(name)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := weights.NewRaw(data, info.DType, info.Shape)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		m[name] = r
	}
	return m
}

// Ref reads a float reference tensor as a tensor.Tensor.
func Ref(tb testing.TB, f *safetensors.File, name string) *tensor.Tensor {
	tb.Helper()
	data, shape, err := f.Float32(name)
	if err != nil {
		tb.Fatal(err)
	}
	return tensor.FromData(data, shape...)
}

// Tolerance is the fixtures' recommended margin for a float32 port:
// max|got-ref| <= Tolerance·max(1, std(ref)). float32-versus-float64
// evaluation of the fixture models differs by at most 6e-6·std, so this is
// ~30x above rounding noise and far below any real bug.
const Tolerance = 1e-4

// Compare checks got against want with the fixtures' margin
// (Tolerance·max(1, std(want))) and reports a test error naming the tensor
// otherwise. It returns max|got-want|.
func Compare(tb testing.TB, name string, got, want *tensor.Tensor) float64 {
	tb.Helper()
	if !tensor.SameShape(got.Shape, want.Shape) {
		tb.Errorf("%s: shape %v, want %v", name, got.Shape, want.Shape)
		return math.Inf(1)
	}
	diff := MaxAbsDiff(got.Data, want.Data)
	limit := Tolerance * math.Max(1, Std(want.Data))
	if !(diff <= limit) {
		tb.Errorf("%s: max|got-want| = %.3g, limit %.3g", name, diff, limit)
	} else {
		tb.Logf("%s: max|got-want| = %.3g (limit %.3g)", name, diff, limit)
	}
	return diff
}

// MaxAbsDiff is max|a-b| (NaN counts as infinite).
func MaxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}

// Std is the population standard deviation of x.
func Std(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mean := s / float64(len(x))
	var q float64
	for _, v := range x {
		d := float64(v) - mean
		q += d * d
	}
	return math.Sqrt(q / float64(len(x)))
}
