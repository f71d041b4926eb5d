// Package kernels is the interface the networks call for every numeric
// operation. Implementations live in sub-packages: kernels/ref (plain Go,
// slow and obviously right, the test oracle) and kernels/cpu (blocked,
// multi-threaded, with accelerated twins chosen at run time). The networks
// never see which one runs; kernels/kerneltest is the conformance suite
// every implementation passes.
//
// Conventions: all tensors are dense row-major float32 slices; shapes are
// given explicitly. dst never aliases an input unless the method says so.
// A Kernels value runs one operation at a time (operations are internally
// parallel) and is not safe for concurrent use by several goroutines.
// Kernels validate nothing: callers (package nn) check shapes when a
// network is built.
package kernels

import (
	"github.com/pigment-sd/pigment/weights"

	"github.com/pigment-sd/pigment/parallel"
)

// Conv2D describes a 2-D convolution over an NCHW input.
type Conv2D struct {
	N, C, H, W       int // input batch, channels, height, width
	OutC, KH, KW     int // output channels and kernel size
	StrideH, StrideW int
	PadTop, PadLeft  int
	PadBottom        int
	PadRight         int
}

// OutH is the output height.
func (p Conv2D) OutH() int { return (p.H+p.PadTop+p.PadBottom-p.KH)/p.StrideH + 1 }

// OutW is the output width.
func (p Conv2D) OutW() int { return (p.W+p.PadLeft+p.PadRight-p.KW)/p.StrideW + 1 }

// AttentionMode selects the attention implementation.
type AttentionMode int

const (
	// AttentionChunked splits the queries into chunks (Attention.Chunk, 512
	// when zero) so the score matrix never exceeds chunk x keys per head, as
	// apple/ml-stable-diffusion's SPLIT_EINSUM_V2 does. It is the default.
	AttentionChunked AttentionMode = iota
	// AttentionOriginal computes the full Lq x Lk score matrix per head.
	AttentionOriginal
)

// String names the mode as the command line does.
func (m AttentionMode) String() string {
	if m == AttentionOriginal {
		return "original"
	}
	return "chunked"
}

// DefaultChunk is the query chunk size of AttentionChunked.
const DefaultChunk = 512

// Attention describes multi-head scaled dot-product attention. Q is
// [B, Lq, Heads*HeadDim], K and V are [B, Lk, Heads*HeadDim], the output is
// [B, Lq, Heads*HeadDim] (heads interleaved in the last axis exactly as a
// Linear projection produces them and as the output projection reads them).
// out = softmax(Scale * Q·Kᵀ + mask) · V per batch and head. With Causal,
// query i attends to keys j <= i only.
type Attention struct {
	B, Heads, Lq, Lk, HeadDim int
	Scale                     float32
	Causal                    bool
	Mode                      AttentionMode
	Chunk                     int
}

// Kernels is the set of operations the networks use.
type Kernels interface {
	// Name identifies the implementation (for logs and benchmarks).
	Name() string

	// Pool is the worker pool the kernels run on. Work of the networks
	// outside the kernels (the VAE's band loops) runs on it too, so that
	// a process never computes on more goroutines than its one pool has.
	Pool() *parallel.Pool

	// Linear computes dst[m,n] = Σ_k x[m,k]·w[n,k] + bias[n] for an
	// [M,K] input and a weight of shape [N,K] (N = w.Shape()[0]); bias may
	// be nil. The weight is read a block at a time (through w.ReadRows, or
	// the faster weights.PanelReader and *weights.Raw paths when available),
	// so float16 and palettized weights are expanded just in time.
	Linear(dst, x []float32, M, K int, w weights.Tensor, bias []float32)

	// MatMul computes dst[M,N] = a[M,K]·b where b is [K,N], or [N,K] used
	// transposed when transB is set. Every slice is dense.
	MatMul(dst, a, b []float32, M, N, K int, transB bool)

	// Conv2D computes a cross-correlation (PyTorch Conv2d) of the NCHW
	// input x with the weight [OutC, C, KH, KW] and adds bias (may be nil).
	// dst is [N, OutC, OutH, OutW].
	Conv2D(dst, x []float32, p Conv2D, w weights.Tensor, bias []float32)

	// GroupNorm normalizes x [N, C, HW] over groups of C/groups channels
	// (biased variance, eps inside the square root), then applies the
	// per-channel gamma and beta; with silu it also applies x·sigmoid(x).
	// dst may equal x.
	GroupNorm(dst, x []float32, N, C, HW, groups int, eps float32, gamma, beta []float32, silu bool)

	// LayerNorm normalizes each row of x [rows, cols] and applies gamma and
	// beta. dst may equal x.
	LayerNorm(dst, x []float32, rows, cols int, eps float32, gamma, beta []float32)

	// Softmax replaces each row of x [rows, cols] by its softmax, in place.
	Softmax(x []float32, rows, cols int)

	// Attention computes multi-head attention, see Attention.
	Attention(dst, q, k, v []float32, p Attention)

	// SiLU: dst = x·sigmoid(x). dst may equal x.
	SiLU(dst, x []float32)
	// GELU: exact erf GELU, dst = x·(1+erf(x/√2))/2. dst may equal x.
	GELU(dst, x []float32)
	// QuickGELU: dst = x·sigmoid(1.702x). dst may equal x.
	QuickGELU(dst, x []float32)
	// GEGLU: x is [rows, 2·cols]; the first half of each row is the value,
	// the second the gate: dst[r,c] = x[r,c]·GELU(x[r,cols+c]).
	GEGLU(dst, x []float32, rows, cols int)

	// Upsample2x is nearest-neighbour 2x upsampling of x [NC, H, W] into
	// dst [NC, 2H, 2W].
	Upsample2x(dst, x []float32, NC, H, W int)

	// Add: dst = a + b element-wise. dst may equal a or b.
	Add(dst, a, b []float32)
}
