package cpu

import (
	"sync/atomic"

	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// The GEMM follows BLIS: C = A·B is computed in mr x nr tiles by a
// micro-kernel that reads A from panels of mr rows and B from panels of nr
// columns, each packed k-major so the kernel streams them linearly.
//
// One operand is the "weight side" W: it is packed once over its whole
// depth K, a range of rows at a time, into a buffer its worker keeps while
// it computes every tile that needs that range (a weight is read through
// ReadRows exactly once per range and worker). The other operand, the
// "activation side" X, is packed per block of kc values of K. For Linear
// and MatMul W is B and X is A; for Conv2D W is the weight (A, output
// channels as rows) and X the implicit im2col matrix (B, pixels as
// columns), so the output comes out directly in NCHW order.
//
// Work items are (W range, X block) pairs, each covering every image of a
// batch, handed out through an atomic counter in W-major order, so a worker
// usually keeps its packed W range for several items in a row.
//
// That schedule packs X once per W range. When X is small against W (the
// deep, low-resolution levels of a UNet: few pixels or tokens against large
// weights) and W is too large for one range, the GEMM streams instead: the
// workers first pack all of X, block by block of K, into one shared buffer,
// then share out ranges of W; a worker expands each panel of W for one
// block of K straight from storage into a small buffer that stays in cache
// and multiplies it at once with every X panel of that block, for every
// image. Each element of X and of W is then packed exactly once per call.
// When X exceeds the shared buffer, K is processed in chunks of blocks.

const (
	kcMax   = 384     // largest depth of one packed block (KC)
	wBudget = 1 << 20 // floats of packed weight rows a worker holds at once
	xRowsMC = 16      // X-side panels per item for Linear (MC = 16·mr)
	xColsNC = 8       // X-side panels per item for Conv2D (NC = 8·nr)
	// minParallelFlops is the size under which a GEMM runs on one worker:
	// waking the others would cost more than it saves.
	minParallelFlops = 1 << 18
	// streamBudget is the most floats of packed X the streaming schedule
	// holds at once (one buffer shared by the workers). streamSlabMax is
	// the largest packed X of one block of K (all images) it takes on:
	// every panel of W streams through that block, so it must stay in
	// the caches; larger X is better served by the W-range schedule.
	streamBudget  = 1 << 21
	streamSlabMax = 1 << 20
	// streamItems is the number of W ranges per thread the streaming
	// schedule aims for, so that a worker slowed by other load hands its
	// share to the others.
	streamItems = 8
)

type opKind uint8

const (
	opRows    opKind = iota // element (i,k) = data[i*ld+k]
	opCols                  // element (i,k) = data[k*ld+i]
	opWeights               // element (i,k) = w[i, k], read with ReadRows
	opIm2col                // element (i,k) = im2col(data)[k, pixel i]
	opF16                   // element (i,k) = raw[i*ld+k] as float16
	opBF16                  // element (i,k) = raw[i*ld+k] as bfloat16
	opPanel                 // element (i,k) = w[i, k], read with ReadPanel
)

// operand is one GEMM input viewed as a function of (i, k), i indexing the
// rows of A or the columns of B.
type operand struct {
	kind opKind
	data []float32
	raw  []byte
	ld   int
	w    weights.Tensor
	pr   weights.PanelReader
}

// streamable reports whether any block of rows and columns of a weight-side
// operand can be packed on its own (ReadRows reads whole rows only).
func (op *operand) streamable() bool { return op.kind != opWeights }

// weightOperand returns w as an operand with rows of length K. Float32
// storage is read in place; float16 and bfloat16 storage is converted
// while packing when the level can (packHalf), and tensors that expand
// into panels themselves (weights.PanelReader) do so, without a ReadRows
// copy.
func weightOperand(is *isa, w weights.Tensor, rows, K int) operand {
	switch t := w.(type) {
	case weights.Float32Viewer:
		if d := t.Float32View(); len(d) >= rows*K {
			return operand{kind: opRows, data: d, ld: K}
		}
	case *weights.Raw:
		if b := t.Bytes(); is.packHalf != nil && len(b) >= 2*rows*K {
			switch t.DType() {
			case tensor.F16:
				return operand{kind: opF16, raw: b, ld: K}
			case tensor.BF16:
				return operand{kind: opBF16, raw: b, ld: K}
			}
		}
	}
	if pr, ok := w.(weights.PanelReader); ok {
		return operand{kind: opPanel, pr: pr, ld: K}
	}
	return operand{kind: opWeights, w: w, ld: K}
}

// tuning holds the limits of the streaming schedule, which tests lower to
// reach every branch on small shapes.
type tuning struct {
	streamBudget  int  // see the constant
	streamSlabMax int  // see the constant
	forceStream   bool // stream whenever the weight side allows it
}

// convGeom is the geometry the im2col packing needs.
type convGeom struct {
	C, H, W, KH, KW, SH, SW, PT, PL, OH, OW int
}

// gemmJob is one parallel GEMM: c[m, n] = Σ_k a(m,k)·b(n,k) (+ bias).
type gemmJob struct {
	is         *isa
	M, N, K    int
	a, b       operand
	wOnA       bool // the weight side is a (Conv2D) instead of b
	c          []float32
	ldc        int
	bias       []float32
	biasOnRows bool // bias indexed by m rather than n
	batch      int  // images; the X operand and c advance per image
	xStride    int
	cStride    int
	conv       convGeom
	kc         int // depth of the packed blocks (the last may be shorter)
	wStep      int // W-side rows per item
	xStep      int // X-side rows per item
	nW, nX     int
	gen        uint64
	next       atomic.Int64
	itemsTotal int64

	// The streaming schedule (see the top of the file).
	tune       tuning
	stream     bool
	packing    bool      // the current pass packs X rather than computes
	nPc        int       // blocks of K
	pcLo, pcHi int       // blocks of the current chunk
	pcChunk    int       // blocks per chunk
	slab       int       // floats of packed X per block and image
	xShared    []float32 // packed X of the chunk: slab per (block, image)
}

// plan splits the job into items for the given thread count, and the
// depth K into blocks of equal size, at most kcMax, so that no block is a
// short remainder.
func (j *gemmJob) plan(threads int) {
	is := j.is
	j.kc = ceilDiv(j.K, ceilDiv(j.K, kcMax))
	wDim, xDim := j.N, j.M
	wUnit, xUnit := is.nr, is.mr
	j.xStep = xRowsMC * is.mr
	if j.wOnA {
		wDim, xDim = j.M, j.N
		wUnit, xUnit = is.mr, is.nr
		j.xStep = xColsNC * is.nr
	}
	wStep := max(wUnit, wBudget/max(j.K, 1)/wUnit*wUnit)
	wStep = min(wStep, roundUp(wDim, wUnit))
	nW := ceilDiv(wDim, wStep)
	nX := ceilDiv(xDim, j.xStep)
	if threads > 1 {
		// Aim for a few items per thread so a worker slowed by other
		// load hands its share to the others: first by splitting the
		// weight side (each range is still read once), then the other.
		if want := 4 * threads; nW*nX < want {
			nW = min(ceilDiv(want, nX), ceilDiv(wDim, wUnit))
		}
		if nW*nX < 2*threads && nX < ceilDiv(xDim, xUnit) {
			nX = min(ceilDiv(2*threads, nW), ceilDiv(xDim, xUnit))
			j.xStep = roundUp(ceilDiv(xDim, nX), xUnit)
			nX = ceilDiv(xDim, j.xStep)
		}
	}
	j.wStep = roundUp(ceilDiv(wDim, nW), wUnit)
	j.nW = ceilDiv(wDim, j.wStep)
	j.nX = nX
	j.itemsTotal = int64(j.nW * j.nX)
	j.next.Store(0)
	wOp := &j.b
	if j.wOnA {
		wOp = &j.a
	}
	xPanels := ceilDiv(xDim, xUnit)
	slab := xPanels * xUnit * j.kc * j.batch
	if wOp.streamable() && (j.tune.forceStream || j.nW > 1 && slab <= j.tune.streamSlabMax) {
		j.planStream(threads, wDim, wUnit, xPanels*xUnit)
	}
}

// planStream sets up the streaming schedule: W ranges of whole panels as
// items, X packed in chunks of blocks of K that fit streamBudget.
func (j *gemmJob) planStream(threads, wDim, wUnit, xPadded int) {
	j.stream = true
	panels := ceilDiv(wDim, wUnit)
	items := 1
	if threads > 1 {
		items = min(panels, streamItems*threads)
	}
	j.wStep = ceilDiv(panels, items) * wUnit
	j.nW = ceilDiv(wDim, j.wStep)
	j.nPc = ceilDiv(j.K, j.kc)
	j.slab = xPadded * j.kc
	j.pcChunk = max(1, min(j.nPc, j.tune.streamBudget/(j.slab*j.batch)))
}

// startPass prepares the job for one pass over the workers: packing the X
// of the chunk of blocks [pcLo, pcHi), or computing with it.
func (j *gemmJob) startPass(packing bool) {
	j.packing = packing
	if packing {
		j.itemsTotal = int64((j.pcHi - j.pcLo) * j.batch)
	} else {
		j.itemsTotal = int64(j.nW)
	}
	j.next.Store(0)
}

func (j *gemmJob) run(w *worker) {
	for {
		t := j.next.Add(1) - 1
		if t >= j.itemsTotal {
			return
		}
		switch {
		case !j.stream:
			w.gemmItem(j, int(t)/j.nX, int(t)%j.nX)
		case j.packing:
			w.streamPack(j, int(t))
		default:
			w.streamItem(j, int(t))
		}
	}
}

// streamPack packs X for one block of K and one image into the shared
// buffer: unit t of the chunk is block pcLo + t/batch, image t%batch.
func (w *worker) streamPack(j *gemmJob, t int) {
	pcI, img := j.pcLo+t/j.batch, t%j.batch
	pc := pcI * j.kc
	kc := min(j.kc, j.K-pc)
	dst := j.xShared[t*j.slab : (t+1)*j.slab]
	if j.wOnA {
		x := j.b
		x.data = x.data[img*j.xStride:]
		w.packXInto(dst, j.is, j, x, 0, j.N, pc, kc, true)
		return
	}
	w.packXInto(dst, j.is, j, j.a, 0, j.M, pc, kc, false)
}

// streamItem computes with W range iw against the packed X of the chunk:
// for each block of K, each panel of the range is packed for that block
// only and multiplied with every X panel of every image.
func (w *worker) streamItem(j *gemmJob, iw int) {
	is := j.is
	mr, nr := is.mr, is.nr
	wLo := iw * j.wStep
	for pcI := j.pcLo; pcI < j.pcHi; pcI++ {
		pc := pcI * j.kc
		kc := min(j.kc, j.K-pc)
		last := pc+kc == j.K
		slabs := j.xShared[(pcI-j.pcLo)*j.batch*j.slab:]
		if j.wOnA {
			wHi := min(wLo+j.wStep, j.M)
			for m0 := wLo; m0 < wHi; m0 += mr {
				rows := min(mr, wHi-m0)
				ap := grow(&w.panel, kc*mr)
				is.packBlock(ap, &j.a, m0, rows, pc, kc, mr)
				for img := 0; img < j.batch; img++ {
					bs := slabs[img*j.slab:]
					c := j.c[img*j.cStride:]
					for jr, n0 := 0, 0; n0 < j.N; jr, n0 = jr+1, n0+nr {
						cols := min(nr, j.N-n0)
						narrow := cols <= nr/2 && is.narrow != nil
						w.tile(is, kc, ap, bs[jr*kc*nr:], c[m0*j.ldc+n0:], j.ldc, rows, cols, narrow, pc > 0)
						if last && j.bias != nil {
							addBias(c[m0*j.ldc+n0:], j.ldc, rows, cols, j.bias, m0, n0, j.biasOnRows)
						}
					}
				}
			}
			continue
		}
		wHi := min(wLo+j.wStep, j.N)
		for n0 := wLo; n0 < wHi; n0 += nr {
			cols := min(nr, wHi-n0)
			narrow := cols <= nr/2 && is.narrow != nil
			bp := grow(&w.panel, kc*nr)
			is.packBlock(bp, &j.b, n0, cols, pc, kc, bStride(is, cols))
			for ir, m0 := 0, 0; m0 < j.M; ir, m0 = ir+1, m0+mr {
				rows := min(mr, j.M-m0)
				w.tile(is, kc, slabs[ir*kc*mr:], bp, j.c[m0*j.ldc+n0:], j.ldc, rows, cols, narrow, pc > 0)
				if last && j.bias != nil {
					addBias(j.c[m0*j.ldc+n0:], j.ldc, rows, cols, j.bias, m0, n0, j.biasOnRows)
				}
			}
		}
	}
}

// gemmItem computes the tiles of one item, for every image of the batch.
func (w *worker) gemmItem(j *gemmJob, iw, ix int) {
	for img := 0; img < j.batch; img++ {
		w.gemmItemImage(j, iw, ix, img)
	}
}

func (w *worker) gemmItemImage(j *gemmJob, iw, ix, img int) {
	is := j.is
	mr, nr := is.mr, is.nr
	K := j.K
	c := j.c[img*j.cStride:]
	if j.wOnA {
		wLo := iw * j.wStep
		wHi := min(wLo+j.wStep, j.M)
		xLo := ix * j.xStep
		xHi := min(xLo+j.xStep, j.N)
		x := j.b
		x.data = x.data[img*j.xStride:]
		pw := w.packW(j, j.a, wLo, wHi, false)
		for pc := 0; pc < K; pc += j.kc {
			kc := min(j.kc, K-pc)
			last := pc+kc == K
			pb := w.packX(is, j, x, xLo, xHi, pc, kc, true)
			for jr, n0 := 0, xLo; n0 < xHi; jr, n0 = jr+1, n0+nr {
				cols := min(nr, xHi-n0)
				narrow := cols <= nr/2 && is.narrow != nil
				bp := pb[jr*kc*nr:]
				for ir, m0 := 0, wLo; m0 < wHi; ir, m0 = ir+1, m0+mr {
					rows := min(mr, wHi-m0)
					ap := pw[ir*K*mr+pc*mr:]
					w.tile(is, kc, ap, bp, c[m0*j.ldc+n0:], j.ldc, rows, cols, narrow, pc > 0)
					if last && j.bias != nil {
						addBias(c[m0*j.ldc+n0:], j.ldc, rows, cols, j.bias, m0, n0, j.biasOnRows)
					}
				}
			}
		}
		return
	}
	wLo := iw * j.wStep
	wHi := min(wLo+j.wStep, j.N)
	xLo := ix * j.xStep
	xHi := min(xLo+j.xStep, j.M)
	pw := w.packW(j, j.b, wLo, wHi, true)
	for pc := 0; pc < K; pc += j.kc {
		kc := min(j.kc, K-pc)
		last := pc+kc == K
		pa := w.packX(is, j, j.a, xLo, xHi, pc, kc, false)
		for jr, n0 := 0, wLo; n0 < wHi; jr, n0 = jr+1, n0+nr {
			cols := min(nr, wHi-n0)
			narrow := cols <= nr/2 && is.narrow != nil
			bp := pw[jr*K*nr+pc*bStride(is, cols):]
			for ir, m0 := 0, xLo; m0 < xHi; ir, m0 = ir+1, m0+mr {
				rows := min(mr, xHi-m0)
				ap := pa[ir*kc*mr:]
				w.tile(is, kc, ap, bp, c[m0*j.ldc+n0:], j.ldc, rows, cols, narrow, pc > 0)
				if last && j.bias != nil {
					addBias(c[m0*j.ldc+n0:], j.ldc, rows, cols, j.bias, m0, n0, j.biasOnRows)
				}
			}
		}
	}
}

// bStride is the stride of a packed B panel holding cols columns: panels
// narrow enough for the narrow kernel are packed at half width.
func bStride(is *isa, cols int) int {
	if cols <= is.nr/2 && is.narrow != nil {
		return is.nr / 2
	}
	return is.nr
}

// tile runs the micro-kernel on one tile, through a scratch tile when the
// tile is cut by the matrix edge.
func (w *worker) tile(is *isa, kc int, a, b, c []float32, ldc, rows, cols int, narrow, acc bool) {
	kern, width := is.kern, is.nr
	if narrow {
		kern, width = is.narrow, is.nr/2
	}
	if rows == is.mr && cols == width {
		// The slice bounds the assembly's writes to the tile.
		kern(kc, a, b, c[:(is.mr-1)*ldc+width], ldc, acc)
		return
	}
	t := w.tileBuf(is.mr * width)
	kern(kc, a, b, t, width, false)
	for i := 0; i < rows; i++ {
		src := t[i*width : i*width+cols]
		dst := c[i*ldc : i*ldc+cols]
		if acc {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

func addBias(c []float32, ldc, rows, cols int, bias []float32, m0, n0 int, onRows bool) {
	for i := 0; i < rows; i++ {
		dst := c[i*ldc : i*ldc+cols]
		if onRows {
			b := bias[m0+i]
			for j := range dst {
				dst[j] += b
			}
		} else {
			bs := bias[n0 : n0+cols]
			for j := range dst {
				dst[j] += bs[j]
			}
		}
	}
}

// packW packs rows [lo, hi) of the weight side over the whole depth K into
// the worker's weight buffer, in panels of mr (A side) or nr (B side)
// rows; panel p starts at p·K·(panel rows). It reuses the buffer when it
// already holds that range for this job.
func (w *worker) packW(j *gemmJob, op operand, lo, hi int, bSide bool) []float32 {
	key := wKey{gen: j.gen, lo: lo, hi: hi}
	if w.wKey == key {
		return w.wBuf
	}
	is := j.is
	p := is.mr
	if bSide {
		p = is.nr
	}
	K := j.K
	np := ceilDiv(hi-lo, p)
	buf := grow(&w.wBuf, np*K*p)
	for pi := 0; pi < np; pi++ {
		r0 := lo + pi*p
		rows := min(p, hi-r0)
		stride := p
		if bSide {
			stride = bStride(is, rows)
		}
		dst := buf[pi*K*p:]
		if op.kind == opWeights {
			rb := grow(&w.rowBuf, rows*K)
			op.w.ReadRows(rb, r0, r0+rows)
			is.packRows(dst, rb, K, rows, 0, K, stride)
			continue
		}
		is.packBlock(dst, &op, r0, rows, 0, K, stride)
	}
	w.wKey = key
	return buf
}

// packBlock packs rows [r0, r0+rows), depth [k0, k0+kc) of a weight-side
// operand into a panel of the given stride (any kind but opWeights and
// opIm2col).
func (is *isa) packBlock(dst []float32, op *operand, r0, rows, k0, kc, stride int) {
	switch op.kind {
	case opRows:
		is.packRows(dst, op.data[r0*op.ld:], op.ld, rows, k0, kc, stride)
	case opCols:
		packCols(dst, op.data[r0:], op.ld, rows, k0, kc, stride)
	case opF16, opBF16:
		is.packHalf(dst, op.raw[2*r0*op.ld:], op.kind == opBF16, op.ld, rows, k0, kc, stride)
	case opPanel:
		op.pr.ReadPanel(dst, r0, rows, k0, kc, stride)
	}
}

// packX packs rows [lo, hi) of the activation side, depth [pc, pc+kc),
// into the worker's activation buffer; panel p starts at p·kc·(panel rows).
func (w *worker) packX(is *isa, j *gemmJob, op operand, lo, hi, pc, kc int, bSide bool) []float32 {
	p := is.mr
	if bSide {
		p = is.nr
	}
	buf := grow(&w.xBuf, ceilDiv(hi-lo, p)*kc*p)
	w.packXInto(buf, is, j, op, lo, hi, pc, kc, bSide)
	return buf
}

// packXInto is packX into buf.
func (w *worker) packXInto(buf []float32, is *isa, j *gemmJob, op operand, lo, hi, pc, kc int, bSide bool) {
	p := is.mr
	if bSide {
		p = is.nr
	}
	np := ceilDiv(hi-lo, p)
	for pi := 0; pi < np; pi++ {
		r0 := lo + pi*p
		rows := min(p, hi-r0)
		stride := p
		if bSide {
			stride = bStride(is, rows)
		}
		dst := buf[pi*kc*p:]
		switch op.kind {
		case opRows:
			is.packRows(dst, op.data[r0*op.ld:], op.ld, rows, pc, kc, stride)
		case opCols:
			packCols(dst, op.data[r0:], op.ld, rows, pc, kc, stride)
		case opIm2col:
			w.packIm2col(dst, op.data, &j.conv, r0, rows, pc, kc, stride)
		}
	}
}

// packRowsGo packs rows of a row-major matrix: dst[k*stride+r] =
// src[r*ld+k0+k] for r < rows, k < kc; lanes rows..stride-1 are zeroed.
func packRowsGo(dst, src []float32, ld, rows, k0, kc, stride int) {
	if kc == 0 {
		return
	}
	dst = dst[:kc*stride]
	for r := 0; r < rows; r++ {
		s := src[r*ld+k0 : r*ld+k0+kc]
		d := dst[r:]
		for k, v := range s {
			d[k*stride] = v
		}
	}
	if rows < stride {
		for k := 0; k < kc; k++ {
			clear(dst[k*stride+rows : k*stride+stride])
		}
	}
}

// packCols packs columns of a row-major matrix: dst[k*stride+r] =
// src[(k0+k)*ld+r] for r < cols, k < kc; lanes cols..stride-1 are zeroed.
func packCols(dst, src []float32, ld, cols, k0, kc, stride int) {
	dst = dst[:kc*stride]
	for k := 0; k < kc; k++ {
		d := dst[k*stride : k*stride+stride]
		copy(d[:cols], src[(k0+k)*ld:(k0+k)*ld+cols])
		if cols < stride {
			clear(d[cols:])
		}
	}
}

// packHalfGo packs rows of a row-major float16 (or, with bf16, bfloat16)
// matrix of little-endian bytes like packRowsGo.
func packHalfGo(dst []float32, src []byte, bf16 bool, ld, rows, k0, kc, stride int) {
	if kc == 0 {
		return
	}
	dst = dst[:kc*stride]
	for r := 0; r < rows; r++ {
		s := src[2*(r*ld+k0) : 2*(r*ld+k0+kc)]
		d := dst[r:]
		for k := 0; k < kc; k++ {
			h := uint16(s[2*k]) | uint16(s[2*k+1])<<8
			if bf16 {
				d[k*stride] = tensor.BFloat16ToFloat32(h)
			} else {
				d[k*stride] = tensor.Float16ToFloat32(h)
			}
		}
	}
	if rows < stride {
		for k := 0; k < kc; k++ {
			clear(dst[k*stride+rows : k*stride+stride])
		}
	}
}

// pixelRun is a stretch of output pixels of one output row inside a
// packed panel.
type pixelRun struct {
	oy, ox, n, off int
}

// packIm2col packs pixels [p0, p0+np) of one image's im2col matrix, depth
// [k0, k0+kc) (k = (c·KH + ky)·KW + kx), as columns of a B panel:
// dst[k*stride+i] = x[c, oy·SH-PT+ky, ox·SW-PL+kx] for pixel p0+i, zero
// in the padding.
func (w *worker) packIm2col(dst, x []float32, g *convGeom, p0, np, k0, kc, stride int) {
	runs := w.runs[:0]
	for i := 0; i < np; {
		p := p0 + i
		oy, ox := p/g.OW, p%g.OW
		n := min(np-i, g.OW-ox)
		runs = append(runs, pixelRun{oy: oy, ox: ox, n: n, off: i})
		i += n
	}
	w.runs = runs
	khw := g.KH * g.KW
	c, rem := k0/khw, k0%khw
	ky, kx := rem/g.KW, rem%g.KW
	hw := g.H * g.W
	for k := 0; k < kc; k++ {
		d := dst[k*stride : k*stride+stride]
		plane := x[c*hw : c*hw+hw]
		for _, r := range runs {
			seg := d[r.off : r.off+r.n]
			iy := r.oy*g.SH - g.PT + ky
			if iy < 0 || iy >= g.H {
				clear(seg)
				continue
			}
			row := plane[iy*g.W : iy*g.W+g.W]
			ix0 := r.ox*g.SW - g.PL + kx
			if g.SW == 1 {
				lo := max(0, -ix0)
				hi := min(r.n, g.W-ix0)
				if hi <= lo {
					clear(seg)
					continue
				}
				if lo > 0 {
					clear(seg[:lo])
				}
				copy(seg[lo:hi], row[ix0+lo:ix0+hi])
				if hi < r.n {
					clear(seg[hi:])
				}
				continue
			}
			for t := range seg {
				if ix := ix0 + t*g.SW; ix >= 0 && ix < g.W {
					seg[t] = row[ix]
				} else {
					seg[t] = 0
				}
			}
		}
		if np < stride {
			clear(d[np:])
		}
		if kx++; kx == g.KW {
			kx = 0
			if ky++; ky == g.KH {
				ky = 0
				c++
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// grow returns (*buf)[:n], reallocating only when the capacity is short.
func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	*buf = (*buf)[:n]
	return *buf
}
