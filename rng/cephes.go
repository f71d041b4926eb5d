package rng

import "math"

// PyTorch builds its CPU kernels once per instruction set and picks one at
// run time. On x86 machines with AVX2, the float32 normal fill uses
// vectorised Cephes-style logf and sincosf approximations (Julien Pommier's
// avx_mathfun, as shipped with PyTorch) instead of the C library's logf, sinf
// and cosf. Those approximations are not correctly rounded, so reproducing
// PyTorch's noise bit-for-bit means repeating them operation by operation in
// float32.
//
// PyTorch's compiler contracts a product followed by an addition into one
// fused multiply-add wherever the product has no other use, so those steps
// use fma32 (one rounding); every other product is wrapped in float32() so
// that the Go compiler cannot fuse it (the Go spec allows fusion on some
// architectures unless an explicit conversion rounds the product).

// Cephes logf constants, as float32.
const (
	cephesSQRTHF = float32(0.707106781186547524)
	cephesLogP0  = float32(7.0376836292e-2)
	cephesLogP1  = float32(-1.1514610310e-1)
	cephesLogP2  = float32(1.1676998740e-1)
	cephesLogP3  = float32(-1.2420140846e-1)
	cephesLogP4  = float32(+1.4249322787e-1)
	cephesLogP5  = float32(-1.6668057665e-1)
	cephesLogP6  = float32(+2.0000714765e-1)
	cephesLogP7  = float32(-2.4999993993e-1)
	cephesLogP8  = float32(+3.3333331174e-1)
	cephesLogQ1  = float32(-2.12194440e-4)
	cephesLogQ2  = float32(0.693359375)
)

// cephesLogf is log256_ps for one lane, for x > 0 (the only inputs the
// normal fill passes: 1-u with u in [0, 1)).
func cephesLogf(x float32) float32 {
	const minNormPos = 0x00800000
	if math.Float32bits(x) < minNormPos { // positive subnormal or zero: max(x, min_norm_pos)
		x = math.Float32frombits(minNormPos)
	}
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23)-0x7f) + 1
	// Keep the mantissa, with the exponent of 0.5: x in [0.5, 1).
	x = math.Float32frombits(bits&^0x7f800000 | math.Float32bits(0.5))
	if x < cephesSQRTHF {
		e -= 1
		x = (x - 1) + x
	} else {
		x = x - 1
	}
	z := float32(x * x)
	y := cephesLogP0
	y = fma32(y, x, cephesLogP1)
	y = fma32(y, x, cephesLogP2)
	y = fma32(y, x, cephesLogP3)
	y = fma32(y, x, cephesLogP4)
	y = fma32(y, x, cephesLogP5)
	y = fma32(y, x, cephesLogP6)
	y = fma32(y, x, cephesLogP7)
	y = fma32(y, x, cephesLogP8)
	y = float32(y * x)
	y = fma32(y, z, float32(e*cephesLogQ1))
	y = fma32(-z, 0.5, y)
	x = fma32(e, cephesLogQ2, x+y)
	return x
}

// Cephes sinf/cosf constants, as float32.
const (
	cephesMinusDP1 = float32(-0.78515625)
	cephesMinusDP2 = float32(-2.4187564849853515625e-4)
	cephesMinusDP3 = float32(-3.77489497744594108e-8)
	sincofP0       = float32(-1.9515295891e-4)
	sincofP1       = float32(8.3321608736e-3)
	sincofP2       = float32(-1.6666654611e-1)
	coscofP0       = float32(2.443315711809948e-005)
	coscofP1       = float32(-1.388731625493765e-003)
	coscofP2       = float32(4.166664568298827e-002)
	cephesFOPI     = float32(1.27323954473516) // 4/π
)

// cephesSincosf is sincos256_ps for one lane. It is accurate for |x| up to
// about 8192; the normal fill only passes angles in [0, 2π).
func cephesSincosf(x float32) (sin, cos float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = math.Float32frombits(math.Float32bits(x) &^ 0x80000000)

	// j = (int(x·4/π) + 1) &^ 1: the even octant index.
	j := int32(float32(x*cephesFOPI)) + 1
	j &^= 1
	y := float32(j)

	swapSin := uint32(j&4) << 29
	polyMask := j&2 == 0 // true: sin uses the sine polynomial

	// Extended-precision reduction: x = ((x - y·DP1) - y·DP2) - y·DP3.
	x = fma32(y, cephesMinusDP1, x)
	x = fma32(y, cephesMinusDP2, x)
	x = fma32(y, cephesMinusDP3, x)

	signCos := uint32(^(j-2)&4) << 29
	signSin ^= swapSin

	z := float32(x * x)
	// Cosine polynomial, for the first octant.
	yc := coscofP0
	yc = fma32(yc, z, coscofP1)
	yc = fma32(yc, z, coscofP2)
	yc = float32(yc * z)
	yc = fma32(yc, z, -float32(z*0.5))
	yc = yc + 1
	// Sine polynomial.
	ys := sincofP0
	ys = fma32(ys, z, sincofP1)
	ys = fma32(ys, z, sincofP2)
	ys = float32(ys * z)
	ys = fma32(ys, x, x)

	var s, c float32
	if polyMask {
		s, c = ys, yc
	} else {
		s, c = yc, ys
	}
	sin = math.Float32frombits(math.Float32bits(s) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(c) ^ signCos)
	return sin, cos
}
