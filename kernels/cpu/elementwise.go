package cpu

// minParallelElems is the size under which an element-wise operation runs
// on one worker.
const minParallelElems = 1 << 15

// ewBlock is the number of elements one item of an element-wise task
// covers.
const ewBlock = 1 << 14

type ewOp uint8

const (
	ewSiLU ewOp = iota
	ewGELU
	ewQuickGELU
	ewGEGLU
	ewAdd
	ewUpsample
	ewSoftmax
)

// ewJob is an element-wise or row-wise operation split into items of
// rows (GEGLU, Softmax, Upsample2x: an item is a set of rows or channels)
// or of ewBlock elements (the others).
type ewJob struct {
	vec        *vecOps
	op         ewOp
	dst, a, b  []float32
	rows, cols int
	perItem    int // rows per item for the row-wise operations
	cnt        counter
}

func (k *Kernels) runEW(units, perItem, work int) {
	j := &k.ew
	j.vec = &k.is.vec
	j.perItem = perItem
	j.cnt.reset(ceilDiv(units, perItem))
	n := k.threads
	if work < minParallelElems {
		n = 1
	}
	k.pool.run(j, n)
	*j = ewJob{}
}

func (j *ewJob) run(w *worker) {
	for {
		i, ok := j.cnt.take()
		if !ok {
			return
		}
		lo := i * j.perItem
		switch j.op {
		case ewSiLU, ewQuickGELU, ewGELU, ewAdd:
			hi := min(lo+j.perItem, len(j.dst))
			j.elementwise(lo, hi)
		case ewGEGLU:
			hi := min(lo+j.perItem, j.rows)
			for r := lo; r < hi; r++ {
				in := j.a[2*r*j.cols : (2*r+2)*j.cols]
				j.vec.geglu(j.dst[r*j.cols:(r+1)*j.cols], in[:j.cols], in[j.cols:])
			}
		case ewSoftmax:
			hi := min(lo+j.perItem, j.rows)
			for r := lo; r < hi; r++ {
				softmaxRow(j.vec, j.a[r*j.cols:(r+1)*j.cols])
			}
		case ewUpsample:
			hi := min(lo+j.perItem, j.rows)
			upsample(j.dst, j.a, lo, hi, j.cols/2)
		}
	}
}

func (j *ewJob) elementwise(lo, hi int) {
	dst := j.dst[lo:hi]
	x := j.a[lo:hi]
	switch j.op {
	case ewSiLU:
		j.vec.sigmoidMul(dst, x, 1)
	case ewQuickGELU:
		j.vec.sigmoidMul(dst, x, 1.702)
	case ewGELU:
		j.vec.gelu(dst, x)
	case ewAdd:
		j.vec.add(dst, x, j.b[lo:hi])
	}
}

func softmaxRow(v *vecOps, row []float32) {
	if len(row) == 0 {
		return
	}
	m := v.max(row)
	s := v.expSub(row, m)
	v.scale(row, row, float32(1/s))
}

// SiLU implements kernels.Kernels.
func (k *Kernels) SiLU(dst, x []float32) { k.elementwiseOp(ewSiLU, dst, x, nil) }

// GELU implements kernels.Kernels.
func (k *Kernels) GELU(dst, x []float32) { k.elementwiseOp(ewGELU, dst, x, nil) }

// QuickGELU implements kernels.Kernels.
func (k *Kernels) QuickGELU(dst, x []float32) { k.elementwiseOp(ewQuickGELU, dst, x, nil) }

// Add implements kernels.Kernels.
func (k *Kernels) Add(dst, a, b []float32) { k.elementwiseOp(ewAdd, dst, a, b) }

func (k *Kernels) elementwiseOp(op ewOp, dst, a, b []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	j := &k.ew
	j.op, j.dst, j.a, j.b = op, dst, a[:n], b
	k.runEW(n, ewBlock, n)
}

// GEGLU implements kernels.Kernels.
func (k *Kernels) GEGLU(dst, x []float32, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	j := &k.ew
	j.op, j.dst, j.a, j.rows, j.cols = ewGEGLU, dst, x, rows, cols
	k.runEW(rows, max(1, ewBlock/cols), rows*cols)
}

// Softmax implements kernels.Kernels.
func (k *Kernels) Softmax(x []float32, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	j := &k.ew
	j.op, j.a, j.rows, j.cols = ewSoftmax, x, rows, cols
	k.runEW(rows, max(1, ewBlock/cols), rows*cols)
}

// Upsample2x implements kernels.Kernels.
func (k *Kernels) Upsample2x(dst, x []float32, NC, H, W int) {
	if NC == 0 || H == 0 || W == 0 {
		return
	}
	j := &k.ew
	// An item is a set of input rows (channel c, row y): NC·H rows of W.
	j.op, j.dst, j.a, j.rows, j.cols = ewUpsample, dst, x, NC*H, 2*W
	k.runEW(NC*H, max(1, ewBlock/(4*W)), 4*NC*H*W)
}

// upsample writes output rows 2y and 2y+1 for input rows [lo, hi) of W
// values each (rows are numbered across channels: input row r is row r of
// x viewed as [NC·H, W], output rows 2r and 2r+1 of dst viewed as
// [2·NC·H, 2W]).
func upsample(dst, x []float32, lo, hi, W int) {
	for r := lo; r < hi; r++ {
		in := x[r*W : r*W+W]
		out := dst[2*r*2*W : (2*r+1)*2*W]
		for i, v := range in {
			out[2*i] = v
			out[2*i+1] = v
		}
		copy(dst[(2*r+1)*2*W:(2*r+2)*2*W], out)
	}
}
