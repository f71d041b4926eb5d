package unet

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/pigment-sd/pigment/internal/memstat"
	"github.com/pigment-sd/pigment/internal/randweights"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/kernels/cpu"
	"github.com/pigment-sd/pigment/kernels/profile"
	"github.com/pigment-sd/pigment/kernels/ref"
	"github.com/pigment-sd/pigment/tensor"
)

// benchKernels picks the kernels the benchmarks run on from
// PIGMENT_KERNELS: "cpu" (the default, the fast kernels), "ref" (a 512x512
// step takes far too long with it to be useful) or "null" (no arithmetic:
// measures what the network costs besides its kernels).
func benchKernels(b *testing.B) kernels.Kernels {
	switch name := os.Getenv("PIGMENT_KERNELS"); name {
	case "", "cpu":
		k := cpu.New(0)
		b.Cleanup(k.Close)
		return k
	case "ref":
		return ref.New()
	case "null":
		return testmodel.NullKernels{}
	default:
		b.Fatalf("PIGMENT_KERNELS=%q: unknown kernels (cpu, ref, null)", name)
		return nil
	}
}

// BenchmarkUNetSD15Step512 runs one full-size SD 1.5 UNet step at 512x512
// (64x64 latents, batch 2 as classifier-free guidance does) with random
// float16 weights built in memory (~1.7 GB; a few seconds to generate,
// outside the timer). It reports GFLOP/s (model FLOPs over wall time), the
// peak of live activations and the process's peak RSS.
//
//	go test -run '^$' -bench UNetSD15Step512 -benchtime 1x ./model/unet
func BenchmarkUNetSD15Step512(b *testing.B) {
	if testing.Short() {
		b.Skip("full-size UNet step; skipped in -short")
	}
	k := profile.Wrap(benchKernels(b))
	data := realConfig(b, "stable-diffusion-v1-5")
	cfg, err := ParseConfig(data)
	if err != nil {
		b.Fatal(err)
	}
	u, err := New(data, randweights.New(k.Pool(), WeightShapes(cfg), 1, tensor.F16), k)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	sample, context := tensor.New(2, 4, 64, 64), tensor.New(2, 77, 768)
	for _, t := range []*tensor.Tensor{sample, context} {
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64())
		}
	}
	k.Reset()
	b.ResetTimer()
	for b.Loop() {
		if _, err := u.Forward(sample, 981, context); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(k.Total().FLOPs/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(float64(u.Arena().Stats().Peak)/1e6, "peak-MB")
	b.ReportMetric(float64(memstat.PeakRSS())/1e6, "peak-RSS-MB")
}
