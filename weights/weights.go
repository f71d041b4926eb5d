// Package weights defines the single source every network reads its weights
// from. A weight is float (F32, F16 or BF16, usually memory-mapped from a
// safetensors file) or palettized (n-bit indices into a look-up table);
// layers never care which: they ask for the rows they need as float32, into
// a buffer they own and reuse.
package weights

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pigment-sd/pigment/tensor"
)

// Tensor is one stored weight.
//
// Rows are taken along axis 0: the tensor is viewed as a matrix of
// Shape[0] rows of RowSize(t) values each (a Linear weight [out, in] or a
// Conv weight [out, in, kh, kw] flattened to [out, in*kh*kw]).
type Tensor interface {
	// Shape is the logical shape of the tensor.
	Shape() []int
	// DType is the storage type: F32, F16, BF16, or Palettized.
	DType() tensor.DType
	// ReadRows writes rows [lo, hi) as float32 into dst, which must hold
	// (hi-lo)*RowSize values. It never allocates.
	ReadRows(dst []float32, lo, hi int)
}

// Palettized is the DType reported by palettized tensors.
const Palettized tensor.DType = "PAL"

// Float32Viewer is implemented by tensors whose storage already is float32
// in memory, so kernels can read it without a copy.
type Float32Viewer interface {
	Float32View() []float32
}

// PanelReader is implemented by tensors that can expand a block of rows and
// columns straight into the transposed panel layout of a packed GEMM
// (palettized tensors do), so that kernels read such a weight in blocks
// that fit in cache instead of expanding whole rows into a temporary first.
type PanelReader interface {
	// ReadPanel writes columns [k0, k0+kc) of rows [lo, lo+rows) (rows of
	// RowSize values, as ReadRows numbers them) transposed into dst:
	// dst[k*stride+r] = row lo+r, column k0+k, for r < rows and k < kc;
	// lanes rows..stride-1 of each column are set to zero. dst must hold
	// kc*stride values and rows <= stride. It never allocates.
	ReadPanel(dst []float32, lo, rows, k0, kc, stride int)
}

// ByteSizer is implemented by tensors that know their storage size in bytes.
type ByteSizer interface {
	StorageBytes() int64
}

// Source is a set of named weights.
type Source interface {
	// Tensor returns the named tensor, or false if there is none.
	Tensor(name string) (Tensor, bool)
	// Names lists all tensor names in sorted order.
	Names() []string
}

// RowSize is the number of values in one row of t (its element count
// divided by Shape[0]).
func RowSize(t Tensor) int {
	s := t.Shape()
	if len(s) == 0 {
		return 1
	}
	n := 1
	for _, d := range s[1:] {
		n *= d
	}
	return n
}

// NumElements is the element count of t.
func NumElements(t Tensor) int { return tensor.NumElements(t.Shape()) }

// ReadAll returns all of t as a new float32 slice. Use it for small tensors
// (biases, norms, embeddings); large ones are read in row blocks.
func ReadAll(t Tensor) []float32 {
	s := t.Shape()
	rows := 1
	if len(s) > 0 {
		rows = s[0]
	}
	out := make([]float32, NumElements(t))
	if rows > 0 && len(out) > 0 {
		if len(s) == 0 {
			t.ReadRows(out, 0, 1)
		} else {
			t.ReadRows(out, 0, rows)
		}
	}
	return out
}

// Dense is an in-memory float32 tensor.
type Dense struct {
	shape []int
	data  []float32
}

// NewDense wraps data (not copied) as a tensor of the given shape.
func NewDense(data []float32, shape ...int) *Dense {
	if tensor.NumElements(shape) != len(data) {
		panic(fmt.Sprintf("weights: %d values for shape %v", len(data), shape))
	}
	return &Dense{shape: append([]int(nil), shape...), data: data}
}

func (d *Dense) Shape() []int           { return d.shape }
func (d *Dense) DType() tensor.DType    { return tensor.F32 }
func (d *Dense) Float32View() []float32 { return d.data }
func (d *Dense) StorageBytes() int64    { return int64(4 * len(d.data)) }
func (d *Dense) ReadRows(dst []float32, lo, hi int) {
	rs := len(d.data)
	if len(d.shape) > 0 && d.shape[0] > 0 {
		rs = len(d.data) / d.shape[0]
	}
	copy(dst[:(hi-lo)*rs], d.data[lo*rs:hi*rs])
}

// Raw is a float tensor stored as little-endian bytes of dtype F32, F16 or
// BF16 (typically a slice of a memory-mapped file).
type Raw struct {
	shape   []int
	dtype   tensor.DType
	data    []byte
	rowSize int
}

// NewRaw wraps raw bytes (not copied). It checks that the size matches.
func NewRaw(data []byte, dtype tensor.DType, shape []int) (*Raw, error) {
	switch dtype {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		return nil, fmt.Errorf("weights: dtype %s is not a supported weight type (F32, F16, BF16)", dtype)
	}
	n := tensor.NumElements(shape)
	if n*dtype.Size() != len(data) {
		return nil, fmt.Errorf("weights: %d bytes for %s %v", len(data), dtype, shape)
	}
	rs := n
	if len(shape) > 0 && shape[0] > 0 {
		rs = n / shape[0]
	}
	return &Raw{shape: append([]int(nil), shape...), dtype: dtype, data: data, rowSize: rs}, nil
}

func (r *Raw) Shape() []int        { return r.shape }
func (r *Raw) DType() tensor.DType { return r.dtype }
func (r *Raw) StorageBytes() int64 { return int64(len(r.data)) }

// Bytes is the raw storage.
func (r *Raw) Bytes() []byte { return r.data }

func (r *Raw) ReadRows(dst []float32, lo, hi int) {
	es := r.dtype.Size()
	n := (hi - lo) * r.rowSize
	// DecodeFloats cannot fail here: dtype and sizes were checked in NewRaw.
	_ = tensor.DecodeFloats(dst[:n], r.data[lo*r.rowSize*es:hi*r.rowSize*es], r.dtype)
}

// Map is an in-memory Source.
type Map map[string]Tensor

func (m Map) Tensor(name string) (Tensor, bool) {
	t, ok := m[name]
	return t, ok
}

func (m Map) Names() []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Prefixed is a view of a Source under a name prefix: Tensor("x") reads
// Prefix+"x" from the underlying source.
type Prefixed struct {
	Src    Source
	Prefix string
}

func (p Prefixed) Tensor(name string) (Tensor, bool) { return p.Src.Tensor(p.Prefix + name) }

func (p Prefixed) Names() []string {
	var out []string
	for _, n := range p.Src.Names() {
		if strings.HasPrefix(n, p.Prefix) {
			out = append(out, strings.TrimPrefix(n, p.Prefix))
		}
	}
	return out
}

// MissingError reports a weight a network needs that the source lacks, or
// one with the wrong shape.
type MissingError struct {
	Name string
	Msg  string
}

func (e *MissingError) Error() string { return "weight " + e.Name + ": " + e.Msg }

// Lookup fetches name from src and checks its shape when want is non-nil.
// Dimensions given as -1 in want match anything.
func Lookup(src Source, name string, want ...int) (Tensor, error) {
	t, ok := src.Tensor(name)
	if !ok {
		return nil, &MissingError{Name: name, Msg: "missing"}
	}
	if want != nil {
		got := t.Shape()
		okShape := len(got) == len(want)
		for i := 0; okShape && i < len(want); i++ {
			if want[i] >= 0 && want[i] != got[i] {
				okShape = false
			}
		}
		if !okShape {
			return nil, &MissingError{Name: name, Msg: fmt.Sprintf("shape %v, want %v", got, want)}
		}
	}
	return t, nil
}
