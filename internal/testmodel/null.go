package testmodel

import (
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/weights"
)

// NullKernels implements kernels.Kernels without doing any arithmetic: every
// operation leaves dst as it is. It lets a test walk a full-size network
// quickly, to check its structure and measure its activation memory.
type NullKernels struct{}

var _ kernels.Kernels = NullKernels{}

// Pool implements kernels.Kernels with a pool of one worker.
func (NullKernels) Pool() *parallel.Pool                                                { return parallel.New(1) }
func (NullKernels) Name() string                                                        { return "null" }
func (NullKernels) Linear(dst, x []float32, M, K int, w weights.Tensor, bias []float32) {}
func (NullKernels) MatMul(dst, a, b []float32, M, N, K int, transB bool)                {}
func (NullKernels) Conv2D(dst, x []float32, p kernels.Conv2D, w weights.Tensor, bias []float32) {
}
func (NullKernels) GroupNorm(dst, x []float32, N, C, HW, groups int, eps float32, gamma, beta []float32, silu bool) {
}
func (NullKernels) LayerNorm(dst, x []float32, rows, cols int, eps float32, gamma, beta []float32) {}
func (NullKernels) Softmax(x []float32, rows, cols int)                                            {}
func (NullKernels) Attention(dst, q, k, v []float32, p kernels.Attention)                          {}
func (NullKernels) SiLU(dst, x []float32)                                                          {}
func (NullKernels) GELU(dst, x []float32)                                                          {}
func (NullKernels) QuickGELU(dst, x []float32)                                                     {}
func (NullKernels) GEGLU(dst, x []float32, rows, cols int)                                         {}
func (NullKernels) Upsample2x(dst, x []float32, NC, H, W int)                                      {}
func (NullKernels) Add(dst, a, b []float32)                                                        {}
