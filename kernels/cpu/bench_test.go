package cpu

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/pigment-sd/pigment/kernels/kerneltest"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
)

// BenchmarkKernels runs the shared benchmarks (GEMM 1024³, the SD 1.5
// Linear and conv shapes, attention, group norm) on one worker and on
// GOMAXPROCS workers, reporting GFLOP/s.
func BenchmarkKernels(b *testing.B) {
	for _, threads := range threadCounts() {
		b.Run(fmt.Sprintf("threads%d", threads), func(b *testing.B) {
			k := New(threads)
			defer k.Close()
			kerneltest.Bench(b, k)
		})
	}
}

// BenchmarkLevels measures the 1024³ GEMM on one worker for each
// instruction-set level this CPU supports.
func BenchmarkLevels(b *testing.B) {
	for _, is := range allLevels() {
		b.Run(is.name, func(b *testing.B) {
			k := newKernels(parallel.New(1), true, is)
			defer k.Close()
			kerneltest.BenchLinear(b, k, kerneltest.GEMMShape{Name: "1024x1024x1024", M: 1024, K: 1024, N: 1024, DType: tensor.F32})
		})
	}
}

func threadCounts() []int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

// BenchmarkMicroKernel measures each level's micro-kernel alone on panels
// that stay in cache (kc = 256): the ceiling the GEMMs can approach.
func BenchmarkMicroKernel(b *testing.B) {
	for _, is := range allLevels() {
		b.Run(is.name, func(b *testing.B) {
			const kc = 256
			a := make([]float32, kc*is.mr)
			p := make([]float32, kc*is.nr)
			c := make([]float32, is.mr*is.nr)
			for b.Loop() {
				is.kern(kc, a, p, c, is.nr, true)
			}
			flops := 2 * float64(kc*is.mr*is.nr) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
