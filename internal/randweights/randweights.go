// Package randweights makes weight sources for any list of shapes without
// a file: deterministic random weights (so full-size networks can be
// benchmarked and run with no download) and zero-storage stand-ins. The
// commands (through randmodel) and the tests use it alike; it does not
// import testing.
package randweights

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// New returns deterministic random weights for shapes, stored as
// weights.Raw of dtype F32, F16 or BF16 (any other dtype is treated as
// F32). Each tensor depends only on seed and its own name, never on the
// other entries. Values are uniform with a chosen standard deviation:
// 1-D ".weight" tensors (norm scales) 1 ± 0.1, other 1-D tensors (biases)
// 0.05, everything else 1/sqrt(fan_in) where fan_in is the row size
// (in·kh·kw for a convolution). Tensors are generated on p's workers
// (nil: on the calling goroutine).
func New(p *parallel.Pool, shapes map[string][]int, seed uint64, dtype tensor.DType) weights.Source {
	switch dtype {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		dtype = tensor.F32
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	ts := make([]*weights.Raw, len(names))
	gen := func(i int) { ts[i] = randomTensor(names[i], shapes[names[i]], seed, dtype) }
	if p != nil {
		p.For(len(names), gen)
	} else {
		for i := range names {
			gen(i)
		}
	}
	out := make(weights.Map, len(names))
	for i, n := range names {
		out[n] = ts[i]
	}
	return out
}

func randomTensor(name string, shape []int, seed uint64, dtype tensor.DType) *weights.Raw {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))

	n := tensor.NumElements(shape)
	mean, std := 0.0, 0.0
	switch {
	case len(shape) == 1 && strings.HasSuffix(name, "weight"):
		mean, std = 1, 0.1
	case len(shape) <= 1:
		std = 0.05
	default:
		std = 1 / math.Sqrt(float64(n/shape[0]))
	}
	// Uniform on [-a, a] has standard deviation a/sqrt(3).
	a := float32(std * math.Sqrt(3))
	m := float32(mean)
	buf := make([]byte, n*dtype.Size())
	// Two 24-bit uniforms per 64-bit draw.
	const unit = 1.0 / (1 << 24)
	value := func(bits uint64) float32 { return m + a*(2*float32(bits&(1<<24-1))*unit-1) }
	var bits uint64
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			bits = rng.Uint64()
		} else {
			bits >>= 32
		}
		v := value(bits)
		switch dtype {
		case tensor.F16:
			binary.LittleEndian.PutUint16(buf[2*i:], tensor.Float32ToFloat16(v))
		case tensor.BF16:
			binary.LittleEndian.PutUint16(buf[2*i:], tensor.Float32ToBFloat16(v))
		default:
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
	}
	r, err := weights.NewRaw(buf, dtype, shape)
	if err != nil {
		panic("randweights: " + err.Error()) // sizes are computed above
	}
	return r
}

// Zeros returns a source whose tensors have the given shapes, no storage,
// and read as zeros: enough to build a full-size network (to check its
// structure or measure its activation memory) without allocating weights.
func Zeros(shapes map[string][]int) weights.Source {
	out := make(weights.Map, len(shapes))
	for n, s := range shapes {
		out[n] = zeroTensor(append([]int(nil), s...))
	}
	return out
}

type zeroTensor []int

func (z zeroTensor) Shape() []int        { return z }
func (z zeroTensor) DType() tensor.DType { return tensor.F32 }
func (z zeroTensor) ReadRows(dst []float32, lo, hi int) {
	rs := 1
	if len(z) > 0 {
		rs = tensor.NumElements(z[1:])
	}
	clear(dst[:(hi-lo)*rs])
}

// NumParams is the total element count of shapes.
func NumParams(shapes map[string][]int) int64 {
	var n int64
	for _, s := range shapes {
		n += int64(tensor.NumElements(s))
	}
	return n
}
