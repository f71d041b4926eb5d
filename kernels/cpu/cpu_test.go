package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/kerneltest"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// TestConformance runs the conformance suite on every instruction-set
// level this CPU supports, on one worker and on three (more than the
// cores of small machines, so the work splitting is exercised too).
func TestConformance(t *testing.T) {
	for _, is := range allLevels() {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/threads%d", is.name, threads), func(t *testing.T) {
				k := newKernels(parallel.New(threads), true, is)
				defer k.Close()
				kerneltest.Run(t, k)
			})
		}
	}
}

// TestStreamSchedule runs the conformance suite with every GEMM that can
// stream forced onto the streaming schedule: on every level with X packed
// one block of K at a time (many chunks) on three workers, and on the best
// level also with X packed whole on one worker.
func TestStreamSchedule(t *testing.T) {
	for li, is := range allLevels() {
		for _, c := range []struct {
			threads, budget int
		}{{3, 1}, {1, streamBudget}} {
			if c.threads == 1 && li > 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/threads%d_budget%d", is.name, c.threads, c.budget), func(t *testing.T) {
				k := newKernels(parallel.New(c.threads), true, is)
				defer k.Close()
				k.tune = tuning{streamBudget: c.budget, streamSlabMax: streamSlabMax, forceStream: true}
				kerneltest.Run(t, k)
			})
		}
	}
}

func TestNew(t *testing.T) {
	k := New(0)
	defer k.Close()
	if got, want := k.Threads(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("New(0).Threads() = %d, want GOMAXPROCS %d", got, want)
	}
	if want := "cpu-" + isaFor(noASM()).name; k.Name() != want {
		t.Errorf("Name() = %q, want %q", k.Name(), want)
	}
	k3 := New(3)
	defer k3.Close()
	if k3.Threads() != 3 {
		t.Errorf("New(3).Threads() = %d", k3.Threads())
	}
}

func TestNoASMEnvironment(t *testing.T) {
	for _, v := range []string{"1", "true"} {
		t.Setenv("PIGMENT_NOASM", v)
		k := New(1)
		if k.Name() != "cpu-go" {
			t.Errorf("PIGMENT_NOASM=%s: Name() = %q, want cpu-go", v, k.Name())
		}
		k.Close()
	}
}

// TestClose checks that Close stops the helper goroutines.
func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	k := New(4)
	if got := runtime.NumGoroutine(); got < before+3 {
		t.Fatalf("New(4) started %d goroutines, want 3", got-before)
	}
	k.Close()
	k.Close() // a second Close is harmless
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > before {
		t.Errorf("%d goroutines left after Close, want %d", got, before)
	}
}

// TestPanicInWorker checks that a panic on a helper goroutine (here an
// output slice too short for the operation) reaches the caller instead of
// killing the process, and that the Kernels stays usable.
func TestPanicInWorker(t *testing.T) {
	k := New(3)
	defer k.Close()
	const M, K, N = 300, 64, 64
	x := make([]float32, M*K)
	w := weights.NewDense(make([]float32, N*K), N, K)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Linear with a short dst did not panic")
			}
		}()
		k.Linear(make([]float32, M*N-1), x, M, K, w, nil)
	}()
	dst := make([]float32, M*N)
	k.Linear(dst, x, M, K, w, nil)
}

// TestDeterministic checks that results do not depend on the number of
// workers: every output is accumulated in the same order whatever the
// split, so they agree bit for bit.
func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = r.Float32()*2 - 1
		}
		return s
	}
	is := isaFor(false)
	k1 := newKernels(parallel.New(1), true, is)
	defer k1.Close()
	k3 := newKernels(parallel.New(3), true, is)
	defer k3.Close()

	const M, K, N = 150, 700, 90
	x, w, bias := rnd(M*K), weights.NewDense(rnd(N*K), N, K), rnd(N)
	a, b := make([]float32, M*N), make([]float32, M*N)
	k1.Linear(a, x, M, K, w, bias)
	k3.Linear(b, x, M, K, w, bias)
	if !slices.Equal(a, b) {
		t.Error("Linear differs between 1 and 3 workers")
	}

	p := kernels.Conv2D{N: 2, C: 16, H: 20, W: 18, OutC: 24, KH: 3, KW: 3, StrideH: 1, StrideW: 1,
		PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	cx, cw := rnd(2*16*20*18), weights.NewDense(rnd(24*16*9), 24, 16, 3, 3)
	a, b = make([]float32, 2*24*20*18), make([]float32, 2*24*20*18)
	k1.Conv2D(a, cx, p, cw, nil)
	k3.Conv2D(b, cx, p, cw, nil)
	if !slices.Equal(a, b) {
		t.Error("Conv2D differs between 1 and 3 workers")
	}

	for _, mode := range []kernels.AttentionMode{kernels.AttentionChunked, kernels.AttentionOriginal} {
		ap := kernels.Attention{B: 1, Heads: 1, Lq: 150, Lk: 120, HeadDim: 24, Scale: 0.2, Mode: mode, Chunk: 64}
		q, kk, v := rnd(150*24), rnd(120*24), rnd(120*24)
		a, b = make([]float32, 150*24), make([]float32, 150*24)
		k1.Attention(a, q, kk, v, ap)
		k3.Attention(b, q, kk, v, ap)
		if !slices.Equal(a, b) {
			t.Errorf("Attention %v differs between 1 and 3 workers", mode)
		}
	}
}

// TestNoAllocs checks that after a first call of each size the hot paths
// allocate nothing: buffers are reused and dispatching to the pool is free.
func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = r.Float32()*2 - 1
		}
		return s
	}
	k := New(2)
	defer k.Close()
	const M, K, N = 200, 300, 96
	x := rnd(M * K)
	dense := weights.NewDense(rnd(N*K), N, K)
	f16 := f16Weights(rnd(N*K), N, K)
	pal, err := palette.Palettize("w", rnd(N*K), []int{N, K}, palette.Options{Bits: 6, Mode: palette.Uniform})
	if err != nil {
		t.Fatal(err)
	}
	bias := rnd(N)
	out := make([]float32, M*N)
	p := kernels.Conv2D{N: 2, C: 16, H: 24, W: 24, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2,
		PadTop: 0, PadLeft: 0, PadBottom: 1, PadRight: 1}
	cx := rnd(2 * 16 * 24 * 24)
	cw := weights.NewDense(rnd(32*16*9), 32, 16, 3, 3)
	p1 := kernels.Conv2D{N: 2, C: 16, H: 24, W: 24, OutC: 32, KH: 1, KW: 1, StrideH: 1, StrideW: 1}
	cw1 := weights.NewDense(rnd(32*16), 32, 16, 1, 1)
	cout := make([]float32, 2*32*24*24)
	ap := kernels.Attention{B: 2, Heads: 4, Lq: 200, Lk: 150, HeadDim: 40, Scale: 0.15, Causal: true, Chunk: 64}
	aq, akv := rnd(2*200*160), rnd(2*150*160)
	aout := make([]float32, len(aq))
	big := rnd(1 << 17)
	bigOut := make([]float32, len(big))
	gamma, beta := rnd(64), rnd(64)

	ops := []struct {
		name string
		f    func()
	}{
		{"Linear/f32", func() { k.Linear(out, x, M, K, dense, bias) }},
		{"Linear/f16", func() { k.Linear(out, x, M, K, f16, bias) }},
		{"Linear/palettized", func() { k.Linear(out, x, M, K, pal, bias) }},
		{"MatMul", func() { k.MatMul(out, x, dense.Float32View(), M, N, K, true) }},
		{"Conv2D/3x3s2", func() { k.Conv2D(cout, cx, p, cw, bias[:32]) }},
		{"Conv2D/1x1", func() { k.Conv2D(cout, cx, p1, cw1, nil) }},
		{"Attention/chunked", func() { ap.Mode = kernels.AttentionChunked; k.Attention(aout, aq, akv, akv, ap) }},
		{"Attention/original", func() { ap.Mode = kernels.AttentionOriginal; k.Attention(aout, aq, akv, akv, ap) }},
		{"Attention/shared", func() {
			k.Attention(aout, aq, akv, akv, kernels.Attention{B: 1, Heads: 1, Lq: 200, Lk: 150, HeadDim: 160,
				Scale: 0.1, Mode: kernels.AttentionOriginal})
		}},
		{"GroupNorm", func() { k.GroupNorm(bigOut, big, 2, 64, len(big)/128, 32, 1e-5, gamma, beta, true) }},
		{"LayerNorm", func() { k.LayerNorm(bigOut, big, len(big)/64, 64, 1e-5, gamma, beta) }},
		{"Softmax", func() { k.Softmax(bigOut, len(big)/512, 512) }},
		{"SiLU", func() { k.SiLU(bigOut, big) }},
		{"GELU", func() { k.GELU(bigOut, big) }},
		{"QuickGELU", func() { k.QuickGELU(bigOut, big) }},
		{"GEGLU", func() { k.GEGLU(bigOut[:len(big)/2], big, 128, len(big)/256) }},
		{"Upsample2x", func() { k.Upsample2x(bigOut, big[:len(big)/4], 64, 16, len(big)/4/64/16) }},
		{"Add", func() { k.Add(bigOut, big, bigOut) }},
	}
	for _, op := range ops {
		op.f() // warm-up: buffers grow to size
		if n := testing.AllocsPerRun(5, op.f); n != 0 {
			t.Errorf("%s: %v allocations per call after warm-up", op.name, n)
		}
	}
	// After Trim the buffers are allocated again, and results still agree.
	k.Linear(out, x, M, K, f16, bias)
	want := append([]float32(nil), out...)
	k.Trim()
	k.Linear(out, x, M, K, f16, bias)
	if !slices.Equal(out, want) {
		t.Error("Linear after Trim differs")
	}
}

func f16Weights(data []float32, shape ...int) weights.Tensor {
	raw := make([]byte, 2*len(data))
	for i, v := range data {
		h := tensor.Float32ToFloat16(v)
		raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
	}
	w, err := weights.NewRaw(raw, tensor.F16, shape)
	if err != nil {
		panic(err)
	}
	return w
}

// TestExpAccuracy sweeps the vector exp of every level (through expSub)
// over the whole float32 range against math.Exp: within 2.5e-7 relative
// (2 ulp) where the result is a normal float32, +Inf where it overflows,
// and at most the smallest normal float32 where it underflows.
func TestExpAccuracy(t *testing.T) {
	var xs []float32
	for x := float32(-110); x < 89; x += 0.0037 {
		xs = append(xs, x)
	}
	xs = append(xs, 0, float32(math.Inf(-1)), 88.72, -87.33)
	for _, is := range allLevels() {
		got := append([]float32(nil), xs...)
		is.vec.expSub(got, 0)
		for i, x := range xs {
			want := math.Exp(float64(x))
			g := float64(got[i])
			switch {
			case want > math.MaxFloat32:
				if !math.IsInf(g, 1) {
					t.Errorf("%s: exp(%v) = %v, want +Inf", is.name, x, g)
				}
			case want < 0x1p-126: // denormal or zero: only tiny absolute noise allowed
				if g > 0x1p-126 {
					t.Errorf("%s: exp(%v) = %v, want %v", is.name, x, g, want)
				}
			case math.Abs(g-want) > 2.5e-7*want:
				t.Errorf("%s: exp(%v) = %v, want %v (rel err %.3g)", is.name, x, g, want, math.Abs(g-want)/want)
			}
		}
	}
}

// TestGELUAccuracy sweeps GELU of every level against the exact
// x·Φ(x) computed with math.Erfc (no cancellation): within 3e-7 relative,
// including the negative tail where the reference kernels lose digits.
func TestGELUAccuracy(t *testing.T) {
	var xs []float32
	for x := float32(-13); x < 10; x += 0.00131 {
		xs = append(xs, x)
	}
	for _, is := range allLevels() {
		got := make([]float32, len(xs))
		is.vec.gelu(got, xs)
		for i, x := range xs {
			want := float64(float32(0.5 * float64(x) * math.Erfc(-float64(x)/math.Sqrt2)))
			tol := 3e-7 * math.Abs(want)
			if is.name != "avx512" {
				// The other levels use the reference formula, 1+erf.
				tol += 1e-11
			}
			if d := math.Abs(float64(got[i]) - want); d > tol && math.Abs(want) >= 0x1p-126 {
				t.Errorf("%s: GELU(%v) = %v, want %v", is.name, x, got[i], want)
			}
		}
	}
}
