// Package cpu is the fast implementation of package kernels: blocked,
// packed GEMMs with assembly micro-kernels (AVX-512 or AVX2/FMA on amd64,
// chosen at run time from the CPU's features, with a portable Go kernel
// otherwise), run on one persistent pool of worker goroutines.
//
// Linear weights are read a panel of rows at a time, straight from memory
// for float32, float16 and bfloat16 storage, through ReadPanel for tensors
// that expand into panels themselves (weights.PanelReader: palettized
// ones), through ReadRows otherwise. When the activations are large they
// are packed once per worker and range of weight rows; when they are small
// against the weight (deep UNet levels, low resolutions) they are packed
// once into a shared buffer and the weight streams through the cache one
// panel and block of depth at a time, so each weight element is expanded
// once per call (see gemm.go). Convolutions are GEMMs over an
// implicit im2col matrix packed on the fly, with the output written in NCHW
// order. Attention is two GEMMs around a fused scale, mask and softmax.
// The normalizations and activations use vector routines; on AVX-512 exp
// is a polynomial within 2 ulp and GELU uses an erfc fit within 1.2e-7
// relative, evaluated in float64.
//
// Every scratch buffer (packed panels, score blocks) belongs to a worker of
// the Kernels value and is reused, so after the first call of a given size
// the operations allocate nothing; Trim releases them. The results do not
// depend on the number of workers.
//
// The assembly is left out by the build tag purego and switched off for a
// process by the environment variable PIGMENT_NOASM=1, read by New.
package cpu

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/weights"
)

// Kernels is the fast implementation. Create it with New; it is not safe
// for concurrent use by several goroutines (see package kernels). Close
// stops its worker goroutines.
type Kernels struct {
	is      *isa
	threads int
	pool    *pool
	gen     uint64

	// The task of each kind of operation, reused so that dispatching one
	// allocates nothing.
	gemm    gemmJob
	tune    tuning
	xShared []float32 // packed X of the streaming GEMM schedule
	ew      ewJob
	norm    normJob
	attn    attnJob
}

var _ kernels.Kernels = (*Kernels)(nil)

// New returns kernels that run on a pool of their own of threads worker
// goroutines (the caller's plus threads-1 helpers); threads <= 0 means
// parallel.Threads(). The assembly kernels are used when the CPU supports
// them, unless the environment variable PIGMENT_NOASM is set to a true
// value (1, true) or the binary was built with the tag purego.
func New(threads int) *Kernels {
	return newKernels(parallel.New(threads), true, isaFor(noASM()))
}

// NewWithPool returns kernels that run on p, the process's shared pool;
// Close leaves p running.
func NewWithPool(p *parallel.Pool) *Kernels {
	return newKernels(p, false, isaFor(noASM()))
}

// noASM reports whether the environment turns the assembly off.
func noASM() bool {
	v, _ := strconv.ParseBool(os.Getenv("PIGMENT_NOASM"))
	return v
}

func newKernels(par *parallel.Pool, owned bool, is *isa) *Kernels {
	k := &Kernels{is: is, threads: par.Size(), pool: newPool(par, owned),
		tune: tuning{streamBudget: streamBudget, streamSlabMax: streamSlabMax}}
	// The helpers reference only the pool, never k, so an unreachable
	// Kernels is collected and its helpers stopped even without Close.
	runtime.AddCleanup(k, func(p *pool) { p.close() }, k.pool)
	return k
}

// Close stops the worker goroutines of kernels made with New. The Kernels
// must not be used after.
func (k *Kernels) Close() { k.pool.close() }

// Pool implements kernels.Kernels: the pool the kernels run on.
func (k *Kernels) Pool() *parallel.Pool { return k.pool.par }

// Trim drops the scratch buffers (packed panels, attention score blocks),
// which otherwise keep the size of the largest operation so far, so that
// their memory can be reclaimed; later operations allocate them again.
func (k *Kernels) Trim() {
	for _, w := range k.pool.workers {
		*w = worker{id: w.id}
	}
	k.xShared = nil
}

// Name implements kernels.Kernels: "cpu-" followed by the instruction set
// level (avx512, avx2 or go).
func (k *Kernels) Name() string { return "cpu-" + k.is.name }

// Threads is the number of workers.
func (k *Kernels) Threads() int { return k.threads }

// worker is the state one worker goroutine owns: its scratch buffers.
type worker struct {
	id     int
	wBuf   []float32 // packed weight-side rows, full depth
	wKey   wKey      // what wBuf holds
	xBuf   []float32 // packed activation-side block
	rowBuf []float32 // weight rows read with ReadRows before packing
	panel  []float32 // one weight panel of the streaming schedule
	tBuf   []float32 // scratch tile for edge tiles
	runs   []pixelRun
	attn   attnScratch
}

type wKey struct {
	gen    uint64
	lo, hi int
}

func (w *worker) tileBuf(n int) []float32 { return grow(&w.tBuf, n) }

// runGemm plans and runs a GEMM job already filled in by the caller.
func (k *Kernels) runGemm() {
	j := &k.gemm
	k.gen++
	j.gen = k.gen
	j.is = k.is
	j.tune = k.tune
	if j.batch == 0 {
		j.batch = 1
	}
	flops := int64(j.M) * int64(j.N) * int64(j.K) * int64(j.batch)
	threads := k.threads
	if flops < minParallelFlops {
		threads = 1
	}
	j.plan(threads)
	if j.stream {
		j.xShared = grow(&k.xShared, j.pcChunk*j.batch*j.slab)
		for lo := 0; lo < j.nPc; lo += j.pcChunk {
			j.pcLo, j.pcHi = lo, min(j.nPc, lo+j.pcChunk)
			j.startPass(true)
			k.pool.run(j, int(min(int64(threads), j.itemsTotal)))
			j.startPass(false)
			k.pool.run(j, int(min(int64(threads), j.itemsTotal)))
		}
	} else {
		k.pool.run(j, int(min(int64(threads), j.itemsTotal)))
	}
	// Drop the references to the caller's slices.
	*j = gemmJob{}
}

// Linear implements kernels.Kernels.
func (k *Kernels) Linear(dst, x []float32, M, K int, w weights.Tensor, bias []float32) {
	N := w.Shape()[0]
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		fillBias(dst[:M*N], N, bias)
		return
	}
	j := &k.gemm
	j.M, j.N, j.K = M, N, K
	j.a = operand{kind: opRows, data: x, ld: K}
	j.b = weightOperand(k.is, w, N, K)
	j.c, j.ldc = dst, N
	j.bias, j.biasOnRows = bias, false
	k.runGemm()
}

// MatMul implements kernels.Kernels.
func (k *Kernels) MatMul(dst, a, b []float32, M, N, K int, transB bool) {
	if M == 0 || N == 0 {
		return
	}
	if K == 0 {
		clear(dst[:M*N])
		return
	}
	j := &k.gemm
	j.M, j.N, j.K = M, N, K
	j.a = operand{kind: opRows, data: a, ld: K}
	if transB {
		j.b = operand{kind: opRows, data: b, ld: K}
	} else {
		j.b = operand{kind: opCols, data: b, ld: N}
	}
	j.c, j.ldc = dst, N
	k.runGemm()
}

// Conv2D implements kernels.Kernels.
func (k *Kernels) Conv2D(dst, x []float32, p kernels.Conv2D, w weights.Tensor, bias []float32) {
	oh, ow := p.OutH(), p.OutW()
	npix := oh * ow
	K := p.C * p.KH * p.KW
	if p.N == 0 || p.OutC == 0 || npix <= 0 {
		return
	}
	if K == 0 {
		for n := 0; n < p.N; n++ {
			out := dst[n*p.OutC*npix : (n+1)*p.OutC*npix]
			for oc := 0; oc < p.OutC; oc++ {
				v := float32(0)
				if bias != nil {
					v = bias[oc]
				}
				fill(out[oc*npix:(oc+1)*npix], v)
			}
		}
		return
	}
	j := &k.gemm
	j.M, j.N, j.K = p.OutC, npix, K
	j.wOnA = true
	j.a = weightOperand(k.is, w, p.OutC, K)
	j.batch = p.N
	j.xStride = p.C * p.H * p.W
	j.cStride = p.OutC * npix
	pointwise := p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 &&
		p.PadTop == 0 && p.PadLeft == 0 && p.PadBottom == 0 && p.PadRight == 0
	if pointwise {
		j.b = operand{kind: opCols, data: x, ld: p.H * p.W}
	} else {
		j.b = operand{kind: opIm2col, data: x}
		j.conv = convGeom{
			C: p.C, H: p.H, W: p.W, KH: p.KH, KW: p.KW,
			SH: p.StrideH, SW: p.StrideW, PT: p.PadTop, PL: p.PadLeft,
			OH: oh, OW: ow,
		}
	}
	j.c, j.ldc = dst, npix
	j.bias, j.biasOnRows = bias, true
	k.runGemm()
}

func fillBias(dst []float32, N int, bias []float32) {
	for i := 0; i < len(dst); i += N {
		if bias != nil {
			copy(dst[i:i+N], bias)
		} else {
			clear(dst[i : i+N])
		}
	}
}

func fill(dst []float32, v float32) {
	for i := range dst {
		dst[i] = v
	}
}

// counter hands out indices [0, n) to the workers of a task.
type counter struct {
	next atomic.Int64
	n    int64
}

func (c *counter) reset(n int) {
	c.next.Store(0)
	c.n = int64(n)
}

// take returns the next index, or false when all are taken.
func (c *counter) take() (int, bool) {
	i := c.next.Add(1) - 1
	return int(i), i < c.n
}
