package cpu

import "math"

// This file holds the portable Go versions of the micro-kernel and the
// vector routines; each doc comment in isa.go is their reference loop.

// kernGo4x4 is the portable 4x4 micro-kernel, for architectures with at
// least 32 floating-point registers (its 16 accumulators and 8 operands
// stay in registers).
func kernGo4x4(kc int, a, b, c []float32, ldc int, acc bool) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for k := 0; k < kc; k++ {
		ak := a[4*k : 4*k+4 : 4*k+4]
		bk := b[4*k : 4*k+4 : 4*k+4]
		a0, a1, a2, a3 := ak[0], ak[1], ak[2], ak[3]
		b0, b1, b2, b3 := bk[0], bk[1], bk[2], bk[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r0 := c[0:4:4]
	r1 := c[ldc : ldc+4 : ldc+4]
	r2 := c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r3 := c[3*ldc : 3*ldc+4 : 3*ldc+4]
	if acc {
		c00, c01, c02, c03 = c00+r0[0], c01+r0[1], c02+r0[2], c03+r0[3]
		c10, c11, c12, c13 = c10+r1[0], c11+r1[1], c12+r1[2], c13+r1[3]
		c20, c21, c22, c23 = c20+r2[0], c21+r2[1], c22+r2[2], c23+r2[3]
		c30, c31, c32, c33 = c30+r3[0], c31+r3[1], c32+r3[2], c33+r3[3]
	}
	r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
	r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
	r2[0], r2[1], r2[2], r2[3] = c20, c21, c22, c23
	r3[0], r3[1], r3[2], r3[3] = c30, c31, c32, c33
}

// kernGo4x2 is the portable 4x2 micro-kernel, for architectures with 16
// floating-point registers such as amd64, where the 4x4 one spills.
func kernGo4x2(kc int, a, b, c []float32, ldc int, acc bool) {
	var c00, c01, c10, c11, c20, c21, c30, c31 float32
	a = a[:kc*4]
	b = b[:kc*2]
	for k := 0; k < kc; k++ {
		ak := a[4*k : 4*k+4 : 4*k+4]
		bk := b[2*k : 2*k+2 : 2*k+2]
		a0, a1, a2, a3 := ak[0], ak[1], ak[2], ak[3]
		b0, b1 := bk[0], bk[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
	}
	r0 := c[0:2:2]
	r1 := c[ldc : ldc+2 : ldc+2]
	r2 := c[2*ldc : 2*ldc+2 : 2*ldc+2]
	r3 := c[3*ldc : 3*ldc+2 : 3*ldc+2]
	if acc {
		c00, c01 = c00+r0[0], c01+r0[1]
		c10, c11 = c10+r1[0], c11+r1[1]
		c20, c21 = c20+r2[0], c21+r2[1]
		c30, c31 = c30+r3[0], c31+r3[1]
	}
	r0[0], r0[1] = c00, c01
	r1[0], r1[1] = c10, c11
	r2[0], r2[1] = c20, c21
	r3[0], r3[1] = c30, c31
}

func vecGo() vecOps {
	return vecOps{
		max:        maxGo,
		expSub:     expSubGo,
		scale:      scaleGo,
		sigmoidMul: sigmoidMulGo,
		sum:        sumGo,
		sqDev:      sqDevGo,
		normScalar: normScalarGo,
		normVec:    normVecGo,
		gelu:       geluGo,
		geglu:      gegluGo,
		add:        addGo,
		colMax:     colMaxGo,
		colExp:     colExpGo,
	}
}

func maxGo(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

func expSubGo(x []float32, m float32) float64 {
	var s float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		x[i] = float32(e)
		s += float64(x[i])
	}
	return s
}

func scaleGo(dst, x []float32, s float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = v * s
	}
}

func sigmoidMulGo(dst, x []float32, alpha float32) {
	dst = dst[:len(x)]
	a := float64(alpha)
	for i, v := range x {
		f := float64(v)
		dst[i] = float32(f / (1 + math.Exp(-a*f)))
	}
}

func sumGo(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func sqDevGo(x []float32, mean float64) float64 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		d0 := float64(x[i]) - mean
		d1 := float64(x[i+1]) - mean
		s0 += d0 * d0
		s1 += d1 * d1
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - mean
		s0 += d * d
	}
	return s0 + s1
}

func normScalarGo(dst, x []float32, mean, inv float64, g, b float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float32((float64(v)-mean)*inv)*g + b
	}
}

func normVecGo(dst, x []float32, mean, inv float64, g, b []float32) {
	dst = dst[:len(x)]
	g = g[:len(x)]
	b = b[:len(x)]
	for i, v := range x {
		dst[i] = float32((float64(v)-mean)*inv)*g[i] + b[i]
	}
}

func geluGo(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = gelu(v)
	}
}

func gegluGo(dst, val, gate []float32) {
	val = val[:len(dst)]
	gate = gate[:len(dst)]
	for i := range dst {
		dst[i] = val[i] * gelu(gate[i])
	}
}

func gelu(v float32) float32 {
	x := float64(v)
	return float32(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
}

func addGo(dst, a, b []float32) {
	a = a[:len(dst)]
	b = b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

func colMaxGo(s []float32, rows, nr int, sc float32, m []float32) {
	m = m[:nr]
	for r := 0; r < rows; r++ {
		row := s[r*nr : r*nr+nr]
		for j, v := range row {
			v *= sc
			row[j] = v
			if v > m[j] {
				m[j] = v
			}
		}
	}
}

func colExpGo(s []float32, rows, nr int, m []float32, sum []float64) {
	m = m[:nr]
	sum = sum[:nr]
	for r := 0; r < rows; r++ {
		row := s[r*nr : r*nr+nr]
		for j, v := range row {
			e := float32(math.Exp(float64(v - m[j])))
			row[j] = e
			sum[j] += float64(e)
		}
	}
}
