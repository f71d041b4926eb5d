package nn

import (
	"fmt"
	"sort"

	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// lookup fetches name from src and checks its shape against want and, if
// the first does not match, each of alts. Sources made by RecordShapes
// record want instead and return zeros.
func lookup(src weights.Source, name string, want []int, alts ...[]int) (weights.Tensor, error) {
	if r, ok := src.(*recorder); ok {
		return r.record(name, want), nil
	}
	t, ok := src.Tensor(name)
	if !ok {
		return nil, &weights.MissingError{Name: name, Msg: "missing"}
	}
	got := t.Shape()
	if tensor.SameShape(got, want) {
		return t, nil
	}
	for _, alt := range alts {
		if tensor.SameShape(got, alt) {
			return t, nil
		}
	}
	msg := fmt.Sprintf("shape %s, want %s", tensor.ShapeString(got), tensor.ShapeString(want))
	for _, alt := range alts {
		msg += " or " + tensor.ShapeString(alt)
	}
	return nil, &weights.MissingError{Name: name, Msg: msg}
}

// lookupVector reads a small 1-D tensor whole.
func lookupVector(src weights.Source, name string, n int) ([]float32, error) {
	t, err := lookup(src, name, []int{n})
	if err != nil {
		return nil, err
	}
	return weights.ReadAll(t), nil
}

// Lookup fetches a weight by name and checks its shape (use it for tensors
// that are not part of a layer, such as embeddings). Under RecordShapes it
// records the shape instead.
func Lookup(src weights.Source, name string, shape ...int) (weights.Tensor, error) {
	return lookup(src, name, shape)
}

// LookupVector reads a small 1-D tensor of n values whole.
func LookupVector(src weights.Source, name string, n int) ([]float32, error) {
	return lookupVector(src, name, n)
}

// RecordShapes runs build (a network constructor) against a source that
// hands out zero-valued stand-ins for whatever it asks for and returns the
// name and shape of every weight asked for. It is how the networks list the
// tensors they read without a second, hand-written table.
func RecordShapes(build func(src weights.Source) error) (map[string][]int, error) {
	r := &recorder{shapes: map[string][]int{}}
	if err := build(r); err != nil {
		return nil, err
	}
	return r.shapes, nil
}

// recorder is the Source of RecordShapes.
type recorder struct {
	shapes map[string][]int
}

func (r *recorder) record(name string, shape []int) weights.Tensor {
	s := append([]int(nil), shape...)
	r.shapes[name] = s
	return zeros{shape: s}
}

func (r *recorder) Tensor(name string) (weights.Tensor, bool) {
	s, ok := r.shapes[name]
	if !ok {
		return nil, false
	}
	return zeros{shape: s}, true
}

func (r *recorder) Names() []string {
	names := make([]string, 0, len(r.shapes))
	for n := range r.shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// zeros is a weight without storage that reads as zeros.
type zeros struct{ shape []int }

func (z zeros) Shape() []int        { return z.shape }
func (z zeros) DType() tensor.DType { return tensor.F32 }
func (z zeros) ReadRows(dst []float32, lo, hi int) {
	rs := 1
	if len(z.shape) > 0 {
		rs = tensor.NumElements(z.shape[1:])
	}
	clear(dst[:(hi-lo)*rs])
}
