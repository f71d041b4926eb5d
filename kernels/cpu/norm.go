package cpu

import "math"

// normJob is a GroupNorm (an item is one group of one image) or a
// LayerNorm (an item is a block of rows). Statistics are accumulated in
// float64 and the normalized value is computed as the reference does,
// float32((x-mean)·inv)·gamma + beta.
type normJob struct {
	vec         *vecOps
	layer       bool
	dst, x      []float32
	C, HW, cpg  int // GroupNorm geometry
	rows, cols  int // LayerNorm geometry
	perItem     int
	eps         float64
	gamma, beta []float32
	silu        bool
	cnt         counter
}

// GroupNorm implements kernels.Kernels.
func (k *Kernels) GroupNorm(dst, x []float32, N, C, HW, groups int, eps float32, gamma, beta []float32, silu bool) {
	if N == 0 || C == 0 || HW == 0 {
		return
	}
	j := &k.norm
	*j = normJob{
		vec: &k.is.vec, dst: dst, x: x, C: C, HW: HW, cpg: C / groups,
		eps: float64(eps), gamma: gamma, beta: beta, silu: silu,
	}
	j.cnt.reset(N * groups)
	k.runNorm(N * C * HW)
}

// LayerNorm implements kernels.Kernels.
func (k *Kernels) LayerNorm(dst, x []float32, rows, cols int, eps float32, gamma, beta []float32) {
	if rows == 0 || cols == 0 {
		return
	}
	j := &k.norm
	*j = normJob{
		vec: &k.is.vec, layer: true, dst: dst, x: x, rows: rows, cols: cols,
		perItem: max(1, ewBlock/cols), eps: float64(eps), gamma: gamma, beta: beta,
	}
	j.cnt.reset(ceilDiv(rows, j.perItem))
	k.runNorm(rows * cols)
}

func (k *Kernels) runNorm(work int) {
	n := k.threads
	if work < minParallelElems {
		n = 1
	}
	k.pool.run(&k.norm, n)
	k.norm = normJob{}
}

func (j *normJob) run(w *worker) {
	for {
		i, ok := j.cnt.take()
		if !ok {
			return
		}
		if j.layer {
			for r := i * j.perItem; r < min((i+1)*j.perItem, j.rows); r++ {
				x := j.x[r*j.cols : (r+1)*j.cols]
				mean, inv := j.stats(x)
				j.vec.normVec(j.dst[r*j.cols:(r+1)*j.cols], x, mean, inv, j.gamma, j.beta)
			}
			continue
		}
		groups := j.C / j.cpg
		n, g := i/groups, i%groups
		off := (n*j.C + g*j.cpg) * j.HW
		mean, inv := j.stats(j.x[off : off+j.cpg*j.HW])
		for c := 0; c < j.cpg; c++ {
			ch := g*j.cpg + c
			o := off + c*j.HW
			dst := j.dst[o : o+j.HW]
			j.vec.normScalar(dst, j.x[o:o+j.HW], mean, inv, j.gamma[ch], j.beta[ch])
			if j.silu {
				j.vec.sigmoidMul(dst, dst, 1)
			}
		}
	}
}

// stats returns the mean of x and 1/sqrt(biased variance + eps), the
// variance taken in a second pass around the mean.
func (j *normJob) stats(x []float32) (mean, inv float64) {
	n := float64(len(x))
	mean = j.vec.sum(x) / n
	return mean, 1 / math.Sqrt(j.vec.sqDev(x, mean)/n+j.eps)
}
