// Package rng generates standard normal noise that is bit-for-bit equal to
// PyTorch's CPU generator: torch.Generator().manual_seed(seed) followed by
// torch.randn(shape, generator=g, dtype=torch.float32), and further randn
// calls on the same generator, as PyTorch runs them on x86-64 machines with
// AVX2 (what diffusers users on a typical PC get).
//
// PyTorch's CPU generator is a 32-bit Mersenne Twister seeded with the low 32
// bits of the seed. torch.randn on a contiguous float32 tensor takes one of
// two paths, chosen by the element count n of each call:
//
//   - n >= 16: n uniforms u = (mt() & (2^24-1)) / 2^24 are drawn in order;
//     every full block of 16 is turned into normals by Box–Muller in float32,
//     pairing element j with element j+8 of the block (j < 8):
//     r = sqrt(-2 log(1-u[j])), θ = float32(2π)·u[j+8],
//     out[j] = r cos θ, out[j+8] = r sin θ.
//     log, sin and cos are PyTorch's vectorised Cephes approximations, not
//     the correctly rounded functions (see cephes.go).
//     If n is not a multiple of 16, 16 fresh uniforms are drawn into the
//     last 16 positions (overwriting some finished values) and that block is
//     transformed again.
//   - n < 16: each element comes from a float64 Box–Muller draw made from two
//     53-bit uniforms (each from two engine outputs); the second value of
//     each pair (r sin θ) is cached in the generator and returned by the next
//     scalar-path draw, even one in a later call.
//
// The shape of a request does not matter, only its element count.
package rng

import "math"

// Generator is a PyTorch-compatible CPU random generator. It is not safe
// for concurrent use.
type Generator struct {
	mt         mt19937
	seed       uint64
	cached     float64 // second value of the last scalar-path Box–Muller pair
	haveCached bool
}

// New returns a generator in the state of
// torch.Generator().manual_seed(seed): the engine is seeded with the low 32
// bits of seed.
func New(seed uint64) *Generator {
	g := &Generator{seed: seed}
	g.mt.seed(uint32(seed))
	return g
}

// Seed is the seed the generator was created with.
func (g *Generator) Seed() uint64 { return g.seed }

// Randn returns n standard normal float32 values, as torch.randn with n
// elements would on this generator, and advances the generator. It returns
// nil for n <= 0.
func (g *Generator) Randn(n int) []float32 {
	if n <= 0 {
		return nil
	}
	out := make([]float32, n)
	g.RandnInto(out)
	return out
}

// RandnInto fills dst as torch.randn fills a contiguous float32 tensor of
// len(dst) elements, and advances the generator.
func (g *Generator) RandnInto(dst []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	if n < 16 {
		for i := range dst {
			dst[i] = float32(g.normal64())
		}
		return
	}
	for i := range dst {
		dst[i] = g.uniform32()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16((*[16]float32)(dst[i : i+16]))
	}
	if n%16 != 0 {
		tail := (*[16]float32)(dst[n-16:])
		for i := range tail {
			tail[i] = g.uniform32()
		}
		boxMuller16(tail)
	}
}

// uniform32 is at::uniform_real_distribution<float>(0, 1): the low 24 bits
// of one engine output, scaled by 2^-24. The result is exact in float32.
func (g *Generator) uniform32() float32 {
	return float32(g.mt.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform64 is at::uniform_real_distribution<double>(0, 1): two engine
// outputs joined high word first, the low 53 bits scaled by 2^-53.
func (g *Generator) uniform64() float64 {
	hi := uint64(g.mt.uint32())
	lo := uint64(g.mt.uint32())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is at::normal_distribution<double>(0, 1), including the
// generator's cache of the second Box–Muller value.
func (g *Generator) normal64() float64 {
	if g.haveCached {
		g.haveCached = false
		return g.cached
	}
	u1 := g.uniform64()
	u2 := g.uniform64()
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	sin, cos := math.Sincos(theta)
	g.cached, g.haveCached = r*sin, true
	return r * cos
}

// boxMuller16 turns 16 uniforms in [0, 1) into 16 normals in place, as
// PyTorch's normal_fill_16_AVX2 does (mean 0, std 1).
func boxMuller16(d *[16]float32) {
	const twoPi = float32(2 * math.Pi)
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j] // exact, in (0, 1]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(float32(-2 * cephesLogf(u1)))))
		theta := float32(twoPi * u2)
		sin, cos := cephesSincosf(theta)
		d[j] = float32(radius * cos)
		d[j+8] = float32(radius * sin)
	}
}
