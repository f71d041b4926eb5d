// Package kerneltest is the conformance suite of package kernels, in the
// manner of gonum's blas/testblas: every implementation runs Run, which
// checks each method against the reference implementation kernels/ref on
// table-driven cases, and may run Bench for its speed on Stable Diffusion
// shapes.
//
// Tolerances. The oracle accumulates in float64; an implementation
// accumulates in float32, in another order, and may use approximations of
// exp that are within a few ulp. A K-term dot product of float32 values
// then differs from the exact one by about √K·u·|x|·|w| (u = 2⁻²⁴ ≈ 6e-8)
// for the random inputs used here; GEMM-like results are accepted within
// 1e-5·√K·max|x|·max|w|, over a hundred times that, which still fails
// any indexing or packing mistake (those err by O(|x|·|w|)). Element-wise
// results that the oracle and a correct implementation compute with the
// same float32 operations are compared within a few ulp, and results with
// no arithmetic (copies) exactly.
package kerneltest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Run checks every method of impl against the reference implementation.
func Run(t *testing.T, impl kernels.Kernels) {
	t.Run("Linear", func(t *testing.T) { testLinear(t, impl) })
	t.Run("MatMul", func(t *testing.T) { testMatMul(t, impl) })
	t.Run("Conv2D", func(t *testing.T) { testConv2D(t, impl) })
	t.Run("GroupNorm", func(t *testing.T) { testGroupNorm(t, impl) })
	t.Run("LayerNorm", func(t *testing.T) { testLayerNorm(t, impl) })
	t.Run("Softmax", func(t *testing.T) { testSoftmax(t, impl) })
	t.Run("Attention", func(t *testing.T) { testAttention(t, impl) })
	t.Run("Activations", func(t *testing.T) { testActivations(t, impl) })
	t.Run("GEGLU", func(t *testing.T) { testGEGLU(t, impl) })
	t.Run("Upsample2x", func(t *testing.T) { testUpsample(t, impl) })
	t.Run("Add", func(t *testing.T) { testAdd(t, impl) })
}

// guard is the number of values after each destination that an
// implementation must leave alone.
const guard = 33

// sentinel fills destinations before a call, so that a value the
// implementation forgets to write shows up as NaN.
var sentinel = float32(math.NaN())

// newDst returns a destination of n values filled with NaN, followed by a
// guard zone (see checkGuard).
func newDst(n int) []float32 {
	buf := make([]float32, n+guard)
	for i := range buf {
		buf[i] = sentinel
	}
	return buf[:n]
}

// checkGuard fails when the guard zone after dst was written.
func checkGuard(t *testing.T, what string, dst []float32) {
	t.Helper()
	for i, v := range dst[len(dst) : len(dst)+guard] {
		if !math.IsNaN(float64(v)) {
			t.Errorf("%s: wrote %v at %d past the end of dst (len %d)", what, v, len(dst)+i, len(dst))
			return
		}
	}
}

func randSlice(r *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*r.Float32()
	}
	return s
}

func maxAbs(s []float32) float64 {
	var m float64
	for _, v := range s {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

// checkClose fails when |got-want| > atol + rtol·|want| anywhere, or when
// got has a NaN where want has none; it reports the first few offenders.
func checkClose(t *testing.T, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	bad := 0
	worst, worstAt := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		if math.IsNaN(g) != math.IsNaN(w) || d > atol+rtol*math.Abs(w) || (math.IsInf(w, 0) && g != w) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %v, want %v (diff %.3g, atol %.3g, rtol %.3g)", what, i, g, w, d, atol, rtol)
			}
			bad++
		}
		if d > worst {
			worst, worstAt = d, i
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d values out of tolerance (worst diff %.3g at %d)", what, bad, len(want), worst, worstAt)
	}
}

// gemmTol is the tolerance of a K-term dot product of values bounded by
// xMax and wMax (see the package comment), plus a few ulp of the bias.
func gemmTol(K int, xMax, wMax, biasMax float64) float64 {
	return 1e-5*math.Sqrt(float64(K))*xMax*wMax + 1e-6*biasMax + 1e-30
}

// weightKind builds a weights.Tensor of one storage kind from float32
// values, and returns the values the tensor really holds (rounded to the
// storage type).
type weightKind struct {
	name  string
	build func(data []float32, shape []int) (weights.Tensor, []float32)
}

// rowsOnly hides Float32View, so implementations must read through
// ReadRows.
type rowsOnly struct{ weights.Tensor }

var weightKinds = []weightKind{
	{"f32", func(d []float32, s []int) (weights.Tensor, []float32) { return weights.NewDense(d, s...), d }},
	{"f32-readrows", func(d []float32, s []int) (weights.Tensor, []float32) {
		return rowsOnly{weights.NewDense(d, s...)}, d
	}},
	{"f16", func(d []float32, s []int) (weights.Tensor, []float32) { return rawWeights(d, s, tensor.F16) }},
	{"bf16", func(d []float32, s []int) (weights.Tensor, []float32) { return rawWeights(d, s, tensor.BF16) }},
}

// paletteKinds are palettized weights of every index width, with one
// table per tensor, and with one per 5 output channels (groups that
// panels of any height straddle).
var paletteKinds = func() []weightKind {
	var kinds []weightKind
	for _, bits := range palette.Widths() {
		for _, group := range []int{0, 5} {
			if group > 0 && bits != 3 && bits != 6 {
				continue
			}
			name := fmt.Sprintf("pal%d", bits)
			if group > 0 {
				name += fmt.Sprintf("g%d", group)
			}
			kinds = append(kinds, weightKind{name, func(d []float32, s []int) (weights.Tensor, []float32) {
				return paletteWeights(d, s, bits, group)
			}})
		}
	}
	return kinds
}()

// paletteWeights palettizes data with bits-bit uniform tables (fast to
// build; the kernels see the same format as with k-means tables).
func paletteWeights(data []float32, shape []int, bits, group int) (weights.Tensor, []float32) {
	p, err := palette.Palettize("w", data, shape, palette.Options{Bits: bits, Mode: palette.Uniform, GroupSize: group, TableF32: true})
	if err != nil {
		panic(fmt.Sprintf("kerneltest: %v", err))
	}
	return p, weights.ReadAll(p)
}

func rawWeights(data []float32, shape []int, dt tensor.DType) (weights.Tensor, []float32) {
	raw := make([]byte, 2*len(data))
	vals := make([]float32, len(data))
	for i, v := range data {
		var h uint16
		if dt == tensor.F16 {
			h = tensor.Float32ToFloat16(v)
			vals[i] = tensor.Float16ToFloat32(h)
		} else {
			h = tensor.Float32ToBFloat16(v)
			vals[i] = tensor.BFloat16ToFloat32(h)
		}
		raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
	}
	w, err := weights.NewRaw(raw, dt, shape)
	if err != nil {
		panic(fmt.Sprintf("kerneltest: %v", err))
	}
	return w, vals
}

func testLinear(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct{ M, K, N int }{
		{1, 1, 1}, {1, 7, 3}, {5, 3, 33}, {14, 32, 32}, {15, 33, 31},
		{29, 64, 65}, {77, 96, 80}, {30, 300, 17}, {3, 520, 70},
		{250, 20, 40}, {2, 3, 0}, {3, 0, 5}, {4, 16000, 70},
	}
	kinds := append(append([]weightKind(nil), weightKinds...), paletteKinds...)
	for ci, c := range cases {
		for ki, kind := range kinds {
			if c.K*c.N > 1<<20 && ki > 1 {
				continue // the big case checks the weight-range split, once per path
			}
			if c.K*c.N == 0 && ki >= len(weightKinds) {
				continue // an empty tensor cannot be palettized
			}
			for _, withBias := range []bool{false, true} {
				name := fmt.Sprintf("M%d_K%d_N%d_%s_bias%v", c.M, c.K, c.N, kind.name, withBias)
				r := rand.New(rand.NewPCG(uint64(ci), uint64(ki)))
				x := randSlice(r, c.M*c.K, -1, 1)
				w, wv := kind.build(randSlice(r, c.N*c.K, -0.5, 0.5), []int{c.N, c.K})
				var bias []float32
				if withBias {
					bias = randSlice(r, c.N, -2, 2)
				}
				want := make([]float32, c.M*c.N)
				oracle.Linear(want, x, c.M, c.K, w, bias)
				got := newDst(c.M * c.N)
				impl.Linear(got, x, c.M, c.K, w, bias)
				checkClose(t, name, got, want, gemmTol(c.K, maxAbs(x), maxAbs(wv), maxAbs(bias)), 1e-6)
				checkGuard(t, name, got)
			}
		}
	}
}

func testMatMul(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct{ M, N, K int }{
		{1, 1, 1}, {7, 5, 3}, {33, 17, 29}, {64, 48, 300}, {14, 32, 256}, {3, 100, 9}, {2, 2, 0},
	}
	for ci, c := range cases {
		for _, trans := range []bool{false, true} {
			name := fmt.Sprintf("M%d_N%d_K%d_transB%v", c.M, c.N, c.K, trans)
			r := rand.New(rand.NewPCG(uint64(ci), 7))
			a := randSlice(r, c.M*c.K, -1, 1)
			b := randSlice(r, c.K*c.N, -1, 1)
			want := make([]float32, c.M*c.N)
			oracle.MatMul(want, a, b, c.M, c.N, c.K, trans)
			got := newDst(c.M * c.N)
			impl.MatMul(got, a, b, c.M, c.N, c.K, trans)
			checkClose(t, name, got, want, gemmTol(c.K, 1, 1, 0), 1e-6)
			checkGuard(t, name, got)
		}
	}
}

func testConv2D(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	conv := func(n, c, h, w, oc, kh, kw, sh, sw, pt, pl, pb, pr int) kernels.Conv2D {
		return kernels.Conv2D{N: n, C: c, H: h, W: w, OutC: oc, KH: kh, KW: kw,
			StrideH: sh, StrideW: sw, PadTop: pt, PadLeft: pl, PadBottom: pb, PadRight: pr}
	}
	cases := []struct {
		name string
		p    kernels.Conv2D
	}{
		{"1x1", conv(2, 5, 7, 9, 6, 1, 1, 1, 1, 0, 0, 0, 0)},
		{"1x1_outc1", conv(1, 8, 4, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0)},
		{"1x1_stride2", conv(1, 4, 8, 7, 5, 1, 1, 2, 2, 0, 0, 0, 0)},
		{"3x3_pad1", conv(2, 6, 9, 11, 7, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"3x3_stride2_pad1", conv(1, 5, 10, 13, 9, 3, 3, 2, 2, 1, 1, 1, 1)},
		{"vae_downsample_pad0101", conv(2, 4, 12, 12, 4, 3, 3, 2, 2, 0, 0, 1, 1)},
		{"3x3_on_1x1", conv(1, 3, 1, 1, 4, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"3x3_on_2x3", conv(1, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"3x3_wide", conv(1, 3, 5, 40, 16, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"3x3_deep", conv(1, 40, 6, 6, 33, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"4x2_asym", conv(1, 3, 7, 7, 5, 4, 2, 1, 3, 2, 0, 1, 1)},
		{"3x3_nopad", conv(2, 3, 6, 5, 4, 3, 3, 1, 1, 0, 0, 0, 0)},
		{"3x3_many_weights", conv(1, 128, 2, 2, 1000, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"3x3_many_outputs", conv(2, 24, 5, 5, 300, 3, 3, 1, 1, 1, 1, 1, 1)},
		{"no_input_channels", conv(1, 0, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1, 1)},
	}
	kinds := append([]weightKind{weightKinds[0], weightKinds[1], weightKinds[2]}, paletteKinds...)
	for ci, c := range cases {
		for ki, kind := range kinds {
			if c.p.OutC*c.p.C > 1<<14 && ki > 0 {
				continue
			}
			if c.p.C == 0 && ki >= 3 {
				continue // an empty tensor cannot be palettized
			}
			for _, withBias := range []bool{false, true} {
				p := c.p
				name := fmt.Sprintf("%s_%s_bias%v", c.name, kind.name, withBias)
				r := rand.New(rand.NewPCG(uint64(ci), uint64(ki)))
				x := randSlice(r, p.N*p.C*p.H*p.W, -1, 1)
				K := p.C * p.KH * p.KW
				w, wv := kind.build(randSlice(r, p.OutC*K, -0.5, 0.5), []int{p.OutC, p.C, p.KH, p.KW})
				var bias []float32
				if withBias {
					bias = randSlice(r, p.OutC, -2, 2)
				}
				n := p.N * p.OutC * p.OutH() * p.OutW()
				want := make([]float32, n)
				oracle.Conv2D(want, x, p, w, bias)
				got := newDst(n)
				impl.Conv2D(got, x, p, w, bias)
				checkClose(t, name, got, want, gemmTol(K, maxAbs(x), maxAbs(wv), maxAbs(bias)), 1e-6)
				checkGuard(t, name, got)
			}
		}
	}
}

// normTol: the implementation computes float32((x-mean)·inv)·gamma + beta
// as the oracle does, from statistics that differ only in float64
// rounding, so results agree within a few ulp of the output scale (the
// fused SiLU adds the few-ulp error of a fast exp).
func normTol(want, beta []float32) float64 {
	return 4e-7 * (maxAbs(want) + maxAbs(beta) + 1)
}

func testGroupNorm(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct {
		N, C, HW, groups int
		eps              float32
		offset           float32
	}{
		{1, 4, 5, 2, 1e-5, 0}, {2, 32, 17, 32, 1e-6, 0}, {2, 64, 9, 32, 1e-5, 0},
		{1, 6, 100, 3, 1e-6, 50}, {1, 32, 1, 32, 1e-5, 0}, {2, 64, 300, 32, 1e-5, -3},
	}
	for ci, c := range cases {
		for _, silu := range []bool{false, true} {
			for _, inPlace := range []bool{false, true} {
				name := fmt.Sprintf("N%d_C%d_HW%d_G%d_silu%v_inplace%v", c.N, c.C, c.HW, c.groups, silu, inPlace)
				r := rand.New(rand.NewPCG(uint64(ci), 3))
				n := c.N * c.C * c.HW
				x := randSlice(r, n, c.offset-2, c.offset+2)
				gamma := randSlice(r, c.C, 0.5, 1.5)
				beta := randSlice(r, c.C, -1, 1)
				want := make([]float32, n)
				oracle.GroupNorm(want, x, c.N, c.C, c.HW, c.groups, c.eps, gamma, beta, silu)
				var got []float32
				if inPlace {
					got = append([]float32(nil), x...)
					impl.GroupNorm(got, got, c.N, c.C, c.HW, c.groups, c.eps, gamma, beta, silu)
				} else {
					got = newDst(n)
					impl.GroupNorm(got, x, c.N, c.C, c.HW, c.groups, c.eps, gamma, beta, silu)
					checkGuard(t, name, got)
				}
				checkClose(t, name, got, want, normTol(want, beta), 2e-6)
			}
		}
	}
}

func testLayerNorm(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct{ rows, cols int }{{1, 1}, {3, 7}, {77, 64}, {5, 320}, {300, 96}}
	for ci, c := range cases {
		for _, inPlace := range []bool{false, true} {
			name := fmt.Sprintf("%dx%d_inplace%v", c.rows, c.cols, inPlace)
			r := rand.New(rand.NewPCG(uint64(ci), 4))
			n := c.rows * c.cols
			x := randSlice(r, n, -3, 5)
			gamma := randSlice(r, c.cols, 0.5, 1.5)
			beta := randSlice(r, c.cols, -1, 1)
			want := make([]float32, n)
			oracle.LayerNorm(want, x, c.rows, c.cols, 1e-5, gamma, beta)
			var got []float32
			if inPlace {
				got = append([]float32(nil), x...)
				impl.LayerNorm(got, got, c.rows, c.cols, 1e-5, gamma, beta)
			} else {
				got = newDst(n)
				impl.LayerNorm(got, x, c.rows, c.cols, 1e-5, gamma, beta)
				checkGuard(t, name, got)
			}
			checkClose(t, name, got, want, normTol(want, beta), 2e-6)
		}
	}
}

// softmaxTol: both sides subtract the row maximum with the same float32
// operation; the exponentials may differ by a few ulp and the sums by
// their rounding, so probabilities agree to a few parts in a million.
const softmaxRtol, softmaxAtol = 4e-6, 1e-9

func testSoftmax(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct {
		rows, cols int
		scale      float32
		masked     bool
	}{
		{1, 1, 1, false}, {3, 17, 1, false}, {4, 100, 1e4, false}, {5, 33, 100, true},
		{2, 4096, 30, false}, {600, 40, 5, true},
	}
	for ci, c := range cases {
		name := fmt.Sprintf("%dx%d_scale%g_masked%v", c.rows, c.cols, c.scale, c.masked)
		r := rand.New(rand.NewPCG(uint64(ci), 5))
		x := randSlice(r, c.rows*c.cols, -c.scale, c.scale)
		if c.masked {
			for row := 0; row < c.rows; row++ {
				for col := row%c.cols + 1; col < c.cols; col += 2 {
					x[row*c.cols+col] = float32(math.Inf(-1))
				}
			}
		}
		want := append([]float32(nil), x...)
		oracle.Softmax(want, c.rows, c.cols)
		got := append([]float32(nil), x...)
		impl.Softmax(got, c.rows, c.cols)
		checkClose(t, name, got, want, softmaxAtol, softmaxRtol)
	}
}

// attentionTol bounds the error of an attention output. The scores are
// HeadDim-term dot products (GEMM tolerance, times |Scale|); an error δ in
// the scores moves each softmax weight by at most a relative 2δ (numerator
// and denominator), so the output, a convex combination of values bounded
// by max|v|, by 2δ·max|v|. The output is also an Lk-term float32 sum of
// positive weights, off by at most Lk·u ≈ 5e-6 relative for the Lk ≤ 81
// used here, and the exp approximation adds a few ulp: 1e-5·max|v|.
func attentionTol(p kernels.Attention, q, k, v []float32) float64 {
	sErr := math.Abs(float64(p.Scale)) * gemmTol(p.HeadDim, maxAbs(q), maxAbs(k), 0)
	return maxAbs(v) * (2*sErr + 1e-5)
}

func testAttention(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	cases := []struct {
		B, H, Lq, Lk, D int
		causal          bool
		chunk           int
		qkRange         float32
	}{
		{1, 1, 1, 1, 4, false, 0, 1},
		{2, 8, 37, 29, 4, false, 5, 1},
		{1, 2, 50, 50, 40, true, 7, 1},
		{1, 3, 33, 77, 8, false, 0, 1},
		{2, 1, 40, 40, 160, false, 16, 1},
		{1, 4, 19, 45, 80, false, 16, 1},
		{1, 8, 64, 64, 64, true, 30, 1},
		{1, 2, 30, 10, 16, true, 9, 1},
		{1, 2, 10, 30, 16, true, 4, 1},
		{1, 1, 70, 70, 512, false, 33, 0.3},
		{1, 2, 45, 45, 64, false, 100, 4},
		{2, 5, 81, 81, 24, true, 32, 2},
	}
	for ci, c := range cases {
		r := rand.New(rand.NewPCG(uint64(ci), 6))
		inner := c.H * c.D
		q := randSlice(r, c.B*c.Lq*inner, -c.qkRange, c.qkRange)
		k := randSlice(r, c.B*c.Lk*inner, -c.qkRange, c.qkRange)
		v := randSlice(r, c.B*c.Lk*inner, -1, 1)
		p := kernels.Attention{B: c.B, Heads: c.H, Lq: c.Lq, Lk: c.Lk, HeadDim: c.D,
			Scale: float32(1 / math.Sqrt(float64(c.D))), Causal: c.causal, Chunk: c.chunk}
		want := make([]float32, c.B*c.Lq*inner)
		oracle.Attention(want, q, k, v, p)
		for _, mode := range []kernels.AttentionMode{kernels.AttentionOriginal, kernels.AttentionChunked} {
			p.Mode = mode
			name := fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_D%d_causal%v_%v_chunk%d", c.B, c.H, c.Lq, c.Lk, c.D, c.causal, mode, c.chunk)
			got := newDst(len(want))
			impl.Attention(got, q, k, v, p)
			checkClose(t, name, got, want, attentionTol(p, q, k, v), 1e-6)
			checkGuard(t, name, got)
		}
	}
}

// activationInput spans the range where the functions bend, the large
// magnitudes where exp overflows or underflows, and random values.
func activationInput(r *rand.Rand, n int) []float32 {
	x := randSlice(r, n, -6, 6)
	edges := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-6, -1e-6, 20, -20, 87, -87, 89, -89, 100, -100, 1e4, -1e4, -7.5, -9, -12, 7.5}
	for i := 0; i < n && i < len(edges); i++ {
		x[i] = edges[i]
	}
	return x
}

// activationTol: the oracle evaluates in float64; an implementation may
// use a float32 exp within a few ulp, which moves x·sigmoid(x) by a few
// ulp of the result, plus tiny absolute noise where the result underflows.
const activationRtol, activationAtol = 2e-6, 1e-30

// geluAtol: the oracle computes GELU as x/2·(1+erf(x/√2)) in float64, where
// 1+erf cancels: below x ≈ -7 (GELU ≈ -1e-11) it has no correct digits
// left and returns 0 below x ≈ -8.3. An implementation computing erfc
// directly is more accurate there, so the comparison allows that much
// absolute difference.
const geluAtol = 1e-11

func testActivations(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	fns := []struct {
		name      string
		impl, ref func(dst, x []float32)
		atol      float64
	}{
		{"SiLU", impl.SiLU, oracle.SiLU, activationAtol},
		{"GELU", impl.GELU, oracle.GELU, geluAtol},
		{"QuickGELU", impl.QuickGELU, oracle.QuickGELU, activationAtol},
	}
	for _, f := range fns {
		for ni, n := range []int{0, 1, 17, 40000} {
			for _, inPlace := range []bool{false, true} {
				name := fmt.Sprintf("%s_n%d_inplace%v", f.name, n, inPlace)
				x := activationInput(rand.New(rand.NewPCG(uint64(ni), 8)), n)
				want := make([]float32, n)
				f.ref(want, x)
				var got []float32
				if inPlace {
					got = append([]float32(nil), x...)
					f.impl(got, got)
				} else {
					got = newDst(n)
					f.impl(got, x)
					checkGuard(t, name, got)
				}
				checkClose(t, name, got, want, f.atol, activationRtol)
			}
		}
	}
}

func testGEGLU(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	for ci, c := range []struct{ rows, cols int }{{1, 1}, {3, 5}, {64, 640}, {7, 33}} {
		name := fmt.Sprintf("%dx%d", c.rows, c.cols)
		x := activationInput(rand.New(rand.NewPCG(uint64(ci), 9)), 2*c.rows*c.cols)
		want := make([]float32, c.rows*c.cols)
		oracle.GEGLU(want, x, c.rows, c.cols)
		got := newDst(len(want))
		impl.GEGLU(got, x, c.rows, c.cols)
		// The values multiply GELU(gate); |value| <= 1e4 in this input.
		checkClose(t, name, got, want, 1e4*geluAtol, activationRtol)
		checkGuard(t, name, got)
	}
}

func testUpsample(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	for ci, c := range []struct{ NC, H, W int }{{1, 1, 1}, {3, 2, 5}, {64, 16, 16}, {2, 7, 1}} {
		name := fmt.Sprintf("%dx%dx%d", c.NC, c.H, c.W)
		x := randSlice(rand.New(rand.NewPCG(uint64(ci), 10)), c.NC*c.H*c.W, -1, 1)
		want := make([]float32, 4*len(x))
		oracle.Upsample2x(want, x, c.NC, c.H, c.W)
		got := newDst(len(want))
		impl.Upsample2x(got, x, c.NC, c.H, c.W)
		checkClose(t, name, got, want, 0, 0)
		checkGuard(t, name, got)
	}
}

func testAdd(t *testing.T, impl kernels.Kernels) {
	oracle := ref.New()
	for ni, n := range []int{0, 1, 7, 70000} {
		r := rand.New(rand.NewPCG(uint64(ni), 11))
		a := randSlice(r, n, -1, 1)
		b := randSlice(r, n, -1, 1)
		want := make([]float32, n)
		oracle.Add(want, a, b)
		got := newDst(n)
		impl.Add(got, a, b)
		checkClose(t, fmt.Sprintf("n%d", n), got, want, 0, 0)
		checkGuard(t, fmt.Sprintf("n%d", n), got)
		ga := append([]float32(nil), a...)
		impl.Add(ga, ga, b)
		checkClose(t, fmt.Sprintf("n%d_dst=a", n), ga, want, 0, 0)
		gb := append([]float32(nil), b...)
		impl.Add(gb, a, gb)
		checkClose(t, fmt.Sprintf("n%d_dst=b", n), gb, want, 0, 0)
	}
}
