package kerneltest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/tensor"
)

// GEMMShape is one Linear benchmark: x [M,K] times a weight [N,K].
type GEMMShape struct {
	Name    string
	M, K, N int
	DType   tensor.DType // weight storage: F32 (Dense), F16 or BF16 (Raw)
}

// gemmShapes are the Linear shapes Bench measures: the square reference
// and the Stable Diffusion 1.5 UNet and text encoder shapes.
var gemmShapes = []GEMMShape{
	{"1024x1024x1024", 1024, 1024, 1024, tensor.F32},
	{"M4096_K320_N320", 4096, 320, 320, tensor.F32},
	{"M4096_K2880_N320", 4096, 2880, 320, tensor.F32}, // 3x3 conv at 64x64 as a GEMM
	{"M1024_K5760_N640", 1024, 5760, 640, tensor.F32},
	{"M154_K768_N768", 154, 768, 768, tensor.F32}, // text encoder, two prompts
	{"M154_K768_N768_f16", 154, 768, 768, tensor.F16},
	{"M4096_K320_N320_f16", 4096, 320, 320, tensor.F16},
}

// Bench measures impl on Stable Diffusion shapes and reports GFLOP/s (a
// multiply-add counts two) or, for GroupNorm, Gelem/s. Each rate is also
// reported per second of CPU time the process used (GFLOP/cpu-s,
// Gelem/cpu-s) where the system tells it: on a machine shared with other
// work, wall-clock rates fall while the per-CPU-second rate still shows
// what one core of the implementation does.
func Bench(b *testing.B, impl kernels.Kernels) {
	for _, s := range gemmShapes {
		b.Run("Linear_"+s.Name, func(b *testing.B) { BenchLinear(b, impl, s) })
	}
	b.Run("Conv3x3_320to320_64x64_batch2", func(b *testing.B) {
		BenchConv2D(b, impl, kernels.Conv2D{N: 2, C: 320, H: 64, W: 64, OutC: 320, KH: 3, KW: 3,
			StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1})
	})
	attention := []struct {
		name string
		p    kernels.Attention
	}{
		// UNet self-attention at 64x64 latents (one image of the batch).
		{"4096x4096_d40_h8", kernels.Attention{B: 1, Heads: 8, Lq: 4096, Lk: 4096, HeadDim: 40}},
		// UNet cross-attention on the prompt, batch 2 (guidance).
		{"4096x77_d40_h8_b2", kernels.Attention{B: 2, Heads: 8, Lq: 4096, Lk: 77, HeadDim: 40}},
		// VAE mid-block attention at 512x512 pixels: one head of 512.
		{"4096x4096_d512_h1", kernels.Attention{B: 1, Heads: 1, Lq: 4096, Lk: 4096, HeadDim: 512}},
	}
	for _, a := range attention {
		for _, mode := range []kernels.AttentionMode{kernels.AttentionChunked, kernels.AttentionOriginal} {
			p := a.p
			p.Scale = float32(1 / math.Sqrt(float64(p.HeadDim)))
			p.Mode = mode
			b.Run(fmt.Sprintf("Attention_%s_%v", a.name, mode), func(b *testing.B) { BenchAttention(b, impl, p) })
		}
	}
	b.Run("GroupNormSiLU_2x320x64x64", func(b *testing.B) { BenchGroupNorm(b, impl, 2, 320, 64*64, 32, true) })
}

// loop runs f under b.Loop and reports work units (FLOPs or elements) per
// second, wall clock and CPU time, in the given unit.
func loop(b *testing.B, work float64, unit string, f func()) {
	f() // warm-up: implementations size their buffers
	c0, ok := processCPU()
	for b.Loop() {
		f()
	}
	total := work * float64(b.N) / 1e9
	b.ReportMetric(total/b.Elapsed().Seconds(), unit+"/s")
	if c1, ok1 := processCPU(); ok && ok1 && c1 > c0 {
		b.ReportMetric(total/(c1-c0).Seconds(), unit+"/cpu-s")
	}
}

// BenchLinear measures impl.Linear on one shape.
func BenchLinear(b *testing.B, impl kernels.Kernels, s GEMMShape) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randSlice(r, s.M*s.K, -1, 1)
	wdata := randSlice(r, s.N*s.K, -1, 1)
	kind := weightKinds[0]
	switch s.DType {
	case tensor.F16:
		kind = weightKinds[2]
	case tensor.BF16:
		kind = weightKinds[3]
	}
	w, _ := kind.build(wdata, []int{s.N, s.K})
	bias := randSlice(r, s.N, -1, 1)
	dst := make([]float32, s.M*s.N)
	loop(b, 2*float64(s.M)*float64(s.K)*float64(s.N), "GFLOP", func() { impl.Linear(dst, x, s.M, s.K, w, bias) })
}

// BenchConv2D measures impl.Conv2D with float32 weights.
func BenchConv2D(b *testing.B, impl kernels.Kernels, p kernels.Conv2D) {
	r := rand.New(rand.NewPCG(1, 3))
	x := randSlice(r, p.N*p.C*p.H*p.W, -1, 1)
	K := p.C * p.KH * p.KW
	w, _ := weightKinds[0].build(randSlice(r, p.OutC*K, -1, 1), []int{p.OutC, p.C, p.KH, p.KW})
	bias := randSlice(r, p.OutC, -1, 1)
	npix := p.OutH() * p.OutW()
	dst := make([]float32, p.N*p.OutC*npix)
	loop(b, 2*float64(p.N)*float64(p.OutC)*float64(npix)*float64(K), "GFLOP", func() { impl.Conv2D(dst, x, p, w, bias) })
}

// BenchAttention measures impl.Attention; the FLOP count is that of the
// two products, 4·B·Heads·Lq·Lk·HeadDim.
func BenchAttention(b *testing.B, impl kernels.Kernels, p kernels.Attention) {
	r := rand.New(rand.NewPCG(1, 4))
	inner := p.Heads * p.HeadDim
	q := randSlice(r, p.B*p.Lq*inner, -1, 1)
	k := randSlice(r, p.B*p.Lk*inner, -1, 1)
	v := randSlice(r, p.B*p.Lk*inner, -1, 1)
	dst := make([]float32, p.B*p.Lq*inner)
	flops := 4 * float64(p.B*p.Heads) * float64(p.Lq) * float64(p.Lk) * float64(p.HeadDim)
	loop(b, flops, "GFLOP", func() { impl.Attention(dst, q, k, v, p) })
}

// BenchGroupNorm measures impl.GroupNorm and reports elements per second.
func BenchGroupNorm(b *testing.B, impl kernels.Kernels, N, C, HW, groups int, silu bool) {
	r := rand.New(rand.NewPCG(1, 5))
	x := randSlice(r, N*C*HW, -1, 1)
	gamma := randSlice(r, C, 0.5, 1.5)
	beta := randSlice(r, C, -1, 1)
	dst := make([]float32, len(x))
	loop(b, float64(len(x)), "Gelem", func() { impl.GroupNorm(dst, x, N, C, HW, groups, 1e-5, gamma, beta, silu) })
}
