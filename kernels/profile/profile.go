// Package profile wraps a kernels.Kernels to count the floating-point
// operations and the wall time of every operation by category, for
// benchmarks (`pigment bench`) and performance work. Counting costs a
// clock read per operation; the arithmetic is the wrapped kernels'.
package profile

import (
	"sort"
	"time"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/weights"
)

// Categories of operations.
const (
	GEMM      = "gemm"      // Linear and MatMul
	Conv      = "conv"      // Conv2D
	Attention = "attention" // Attention (its two GEMMs and softmax)
	Norm      = "norm"      // GroupNorm, LayerNorm, Softmax
	Other     = "other"     // activations, upsampling, adds
)

// Stat is what one category accumulated.
type Stat struct {
	Calls int64
	FLOPs float64 // 2 per multiply-add in GEMMs, convolutions and attention
	Time  time.Duration
}

// Kernels counts and times the operations of the kernels it wraps.
type Kernels struct {
	K     kernels.Kernels
	Stats map[string]*Stat
}

// Wrap returns a profiling wrapper around k.
func Wrap(k kernels.Kernels) *Kernels {
	p := &Kernels{K: k, Stats: map[string]*Stat{}}
	for _, c := range []string{GEMM, Conv, Attention, Norm, Other} {
		p.Stats[c] = &Stat{}
	}
	return p
}

var _ kernels.Kernels = (*Kernels)(nil)

// Reset clears the counters.
func (p *Kernels) Reset() {
	for _, s := range p.Stats {
		*s = Stat{}
	}
}

// Total sums every category.
func (p *Kernels) Total() Stat {
	var t Stat
	for _, s := range p.Stats {
		t.Calls += s.Calls
		t.FLOPs += s.FLOPs
		t.Time += s.Time
	}
	return t
}

// Categories lists the category names in a stable order.
func (p *Kernels) Categories() []string {
	out := make([]string, 0, len(p.Stats))
	for c := range p.Stats {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func (p *Kernels) add(cat string, flops float64, start time.Time) {
	s := p.Stats[cat]
	s.Calls++
	s.FLOPs += flops
	s.Time += time.Since(start)
}

// Name implements kernels.Kernels.
func (p *Kernels) Name() string { return p.K.Name() }

// Pool implements kernels.Kernels: the wrapped kernels' pool.
func (p *Kernels) Pool() *parallel.Pool { return p.K.Pool() }

// Linear implements kernels.Kernels.
func (p *Kernels) Linear(dst, x []float32, M, K int, w weights.Tensor, bias []float32) {
	t := time.Now()
	p.K.Linear(dst, x, M, K, w, bias)
	p.add(GEMM, 2*float64(M)*float64(K)*float64(w.Shape()[0]), t)
}

// MatMul implements kernels.Kernels.
func (p *Kernels) MatMul(dst, a, b []float32, M, N, K int, transB bool) {
	t := time.Now()
	p.K.MatMul(dst, a, b, M, N, K, transB)
	p.add(GEMM, 2*float64(M)*float64(N)*float64(K), t)
}

// Conv2D implements kernels.Kernels.
func (p *Kernels) Conv2D(dst, x []float32, c kernels.Conv2D, w weights.Tensor, bias []float32) {
	t := time.Now()
	p.K.Conv2D(dst, x, c, w, bias)
	p.add(Conv, 2*float64(c.N)*float64(c.OutC)*float64(c.OutH()*c.OutW())*float64(c.C*c.KH*c.KW), t)
}

// GroupNorm implements kernels.Kernels.
func (p *Kernels) GroupNorm(dst, x []float32, N, C, HW, groups int, eps float32, gamma, beta []float32, silu bool) {
	t := time.Now()
	p.K.GroupNorm(dst, x, N, C, HW, groups, eps, gamma, beta, silu)
	p.add(Norm, 0, t)
}

// LayerNorm implements kernels.Kernels.
func (p *Kernels) LayerNorm(dst, x []float32, rows, cols int, eps float32, gamma, beta []float32) {
	t := time.Now()
	p.K.LayerNorm(dst, x, rows, cols, eps, gamma, beta)
	p.add(Norm, 0, t)
}

// Softmax implements kernels.Kernels.
func (p *Kernels) Softmax(x []float32, rows, cols int) {
	t := time.Now()
	p.K.Softmax(x, rows, cols)
	p.add(Norm, 0, t)
}

// Attention implements kernels.Kernels. Its FLOPs are the two products
// Q·Kᵀ and P·V (causal masking not discounted).
func (p *Kernels) Attention(dst, q, k, v []float32, a kernels.Attention) {
	t := time.Now()
	p.K.Attention(dst, q, k, v, a)
	p.add(Attention, 4*float64(a.B)*float64(a.Heads)*float64(a.Lq)*float64(a.Lk)*float64(a.HeadDim), t)
}

// SiLU implements kernels.Kernels.
func (p *Kernels) SiLU(dst, x []float32) { t := time.Now(); p.K.SiLU(dst, x); p.add(Other, 0, t) }

// GELU implements kernels.Kernels.
func (p *Kernels) GELU(dst, x []float32) { t := time.Now(); p.K.GELU(dst, x); p.add(Other, 0, t) }

// QuickGELU implements kernels.Kernels.
func (p *Kernels) QuickGELU(dst, x []float32) {
	t := time.Now()
	p.K.QuickGELU(dst, x)
	p.add(Other, 0, t)
}

// GEGLU implements kernels.Kernels.
func (p *Kernels) GEGLU(dst, x []float32, rows, cols int) {
	t := time.Now()
	p.K.GEGLU(dst, x, rows, cols)
	p.add(Other, 0, t)
}

// Upsample2x implements kernels.Kernels.
func (p *Kernels) Upsample2x(dst, x []float32, NC, H, W int) {
	t := time.Now()
	p.K.Upsample2x(dst, x, NC, H, W)
	p.add(Other, 0, t)
}

// Add implements kernels.Kernels.
func (p *Kernels) Add(dst, a, b []float32) { t := time.Now(); p.K.Add(dst, a, b); p.add(Other, 0, t) }
