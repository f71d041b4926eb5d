//go:build amd64 && !purego

package cpu

import "math"

// The routines of vec_amd64.s. They handle whole vectors only; the
// wrappers below finish the remaining elements in Go.

//go:noescape
func vmax16(x []float32) float32

//go:noescape
func vexpsub16(x []float32, m float32) float64

//go:noescape
func vsigmul16(dst, x []float32, negAlpha float32)

//go:noescape
func vsum8(x []float32) float64

//go:noescape
func vsqdev8(x []float32, mean float64) float64

//go:noescape
func vnorms8(dst, x []float32, mean, inv float64, gamma, beta float32)

//go:noescape
func vnormv8(dst, x []float32, mean, inv float64, gamma, beta []float32)

//go:noescape
func vgelu8(dst, x []float32)

//go:noescape
func vgeglu8(dst, val, gate []float32)

//go:noescape
func vscale(dst, x []float32, s float32)

//go:noescape
func vadd16(dst, a, b []float32)

//go:noescape
func colmax32(s []float32, rows int, sc float32, m []float32)

//go:noescape
func colexp32(s []float32, rows int, m []float32, sum []float64)

func vecAVX512() vecOps {
	return vecOps{
		max:        maxAVX512,
		expSub:     expSubAVX512,
		scale:      scaleAVX512,
		sigmoidMul: sigmoidMulAVX512,
		sum:        sumAVX512,
		sqDev:      sqDevAVX512,
		normScalar: normScalarAVX512,
		normVec:    normVecAVX512,
		gelu:       geluAVX512,
		geglu:      gegluAVX512,
		add:        addAVX512,
		colMax:     colMaxAVX512,
		colExp:     colExpAVX512,
	}
}

func maxAVX512(x []float32) float32 {
	n := len(x) &^ 15
	if n == 0 {
		return maxGo(x)
	}
	m := vmax16(x[:n])
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	return m
}

func expSubAVX512(x []float32, m float32) float64 {
	n := len(x) &^ 15
	s := vexpsub16(x[:n], m)
	for i, v := range x[n:] {
		e := float32(math.Exp(float64(v - m)))
		x[n+i] = e
		s += float64(e)
	}
	return s
}

func sigmoidMulAVX512(dst, x []float32, alpha float32) {
	n := len(x) &^ 15
	dst = dst[:len(x)]
	vsigmul16(dst[:n], x[:n], -alpha)
	sigmoidMulGo(dst[n:], x[n:], alpha)
}

func sumAVX512(x []float32) float64 {
	n := len(x) &^ 7
	return vsum8(x[:n]) + sumGo(x[n:])
}

func sqDevAVX512(x []float32, mean float64) float64 {
	n := len(x) &^ 7
	return vsqdev8(x[:n], mean) + sqDevGo(x[n:], mean)
}

func normScalarAVX512(dst, x []float32, mean, inv float64, g, b float32) {
	n := len(x) &^ 7
	dst = dst[:len(x)]
	vnorms8(dst[:n], x[:n], mean, inv, g, b)
	normScalarGo(dst[n:], x[n:], mean, inv, g, b)
}

func normVecAVX512(dst, x []float32, mean, inv float64, g, b []float32) {
	n := len(x) &^ 7
	dst = dst[:len(x)]
	g = g[:len(x)]
	b = b[:len(x)]
	vnormv8(dst[:n], x[:n], mean, inv, g[:n], b[:n])
	normVecGo(dst[n:], x[n:], mean, inv, g[n:], b[n:])
}

func geluAVX512(dst, x []float32) {
	n := len(x) &^ 7
	dst = dst[:len(x)]
	vgelu8(dst[:n], x[:n])
	geluGo(dst[n:], x[n:])
}

func gegluAVX512(dst, val, gate []float32) {
	n := len(dst) &^ 7
	val = val[:len(dst)]
	gate = gate[:len(dst)]
	vgeglu8(dst[:n], val[:n], gate[:n])
	gegluGo(dst[n:], val[n:], gate[n:])
}

func scaleAVX512(dst, x []float32, s float32) {
	vscale(dst[:len(x)], x, s)
}

func addAVX512(dst, a, b []float32) {
	n := len(dst) &^ 15
	a = a[:len(dst)]
	b = b[:len(dst)]
	vadd16(dst[:n], a[:n], b[:n])
	addGo(dst[n:], a[n:], b[n:])
}

func colMaxAVX512(s []float32, rows, nr int, sc float32, m []float32) {
	if nr != 32 {
		colMaxGo(s, rows, nr, sc, m)
		return
	}
	colmax32(s[:rows*32], rows, sc, m[:32])
}

func colExpAVX512(s []float32, rows, nr int, m []float32, sum []float64) {
	if nr != 32 {
		colExpGo(s, rows, nr, m, sum)
		return
	}
	colexp32(s[:rows*32], rows, m[:32], sum[:32])
}
