package cpu

import (
	"math"

	"github.com/pigment-sd/pigment/kernels"
)

// Attention is computed per (batch, head, query block), the block being
// Attention.Chunk queries in chunked mode and all Lq queries in original
// mode. For one block the score matrix is materialized transposed, keys by
// queries, in strips of nr queries:
//
//	Sᵀ = K_h · Q_blockᵀ       (GEMM: keys are the A panels, queries the B panels)
//	P  = softmax over keys of Scale·Sᵀ, with the causal mask
//	Oᵀ = V_hᵀ · P             (GEMM: a strip of P is directly a packed B panel)
//
// so the softmax runs down the columns with the queries in vector lanes,
// no score is ever repacked, and both GEMMs keep whole register tiles
// (head dims like 40 only cost a partial A panel). Each block needs a score
// buffer of about block x Lk values, owned by the worker computing it.
//
// With at least as many (batch, head, block) triples as workers, workers
// take whole blocks, head-major. Otherwise (the VAE's single head in
// original mode, or many workers) the blocks run one after the other, each
// spread over all workers strip by strip, sharing one score buffer, with
// the three phases separated.

type attnScratch struct {
	key attnKey
	kp  []float32 // K_h as A panels of mr keys, depth HeadDim
	vp  []float32 // V_hᵀ as A panels of mr dims, depth Lk
	qp  []float32 // the block's queries as B panels of nr, depth HeadDim
	s   []float32 // the block's scores: strip-major, [strips][nkPad][nr]
	sum []float64 // softmax denominators, [strips][nr]
	ot  []float32 // Oᵀ of one strip, [dPad][nr]
	o   []float32 // O of one strip, [nr][HeadDim]
	m   []float32 // column maxima of one strip, [nr]
}

type attnKey struct {
	gen  uint64
	b, h int
}

const (
	phaseScores = iota
	phaseSoftmax
	phaseOutput
)

type attnJob struct {
	is           *isa
	p            kernels.Attention
	dst, q, k, v []float32
	block        int // queries per block
	nBlocks      int // blocks per head
	gen          uint64
	cnt          counter
	// Strip-parallel mode: the block being computed and the phase.
	shared       *attnScratch
	sb, sh, sq0  int
	sq1, phase   int
	stripsShared bool
}

// Attention implements kernels.Kernels.
func (k *Kernels) Attention(dst, q, kk, v []float32, p kernels.Attention) {
	if p.B == 0 || p.Heads == 0 || p.Lq == 0 || p.HeadDim == 0 {
		return
	}
	inner := p.Heads * p.HeadDim
	if p.Lk == 0 {
		clear(dst[:p.B*p.Lq*inner])
		return
	}
	block := p.Lq
	if p.Mode == kernels.AttentionChunked {
		block = p.Chunk
		if block <= 0 {
			block = kernels.DefaultChunk
		}
		block = min(block, p.Lq)
	}
	k.gen++
	j := &k.attn
	*j = attnJob{
		is: k.is, p: p, dst: dst, q: q, k: kk, v: v,
		block: block, nBlocks: ceilDiv(p.Lq, block), gen: k.gen,
	}
	items := p.B * p.Heads * j.nBlocks
	threads := k.threads
	if int64(p.B*p.Heads)*int64(p.Lq)*int64(p.Lk)*int64(p.HeadDim) < minParallelFlops {
		threads = 1
	}
	if items >= threads {
		j.cnt.reset(items)
		k.pool.run(j, min(threads, items))
		*j = attnJob{}
		return
	}
	// Few blocks: spread each over the workers.
	j.stripsShared = true
	sc := &k.pool.workers[0].attn
	j.shared = sc
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.Heads; h++ {
			j.prepKV(sc, b, h)
			for q0 := 0; q0 < p.Lq; q0 += block {
				j.sb, j.sh, j.sq0, j.sq1 = b, h, q0, min(q0+block, p.Lq)
				j.prepBlock(sc, j.sq1-j.sq0)
				strips := ceilDiv(j.sq1-j.sq0, k.is.nr)
				for ph := phaseScores; ph <= phaseOutput; ph++ {
					j.phase = ph
					j.cnt.reset(strips)
					k.pool.run(j, threads)
				}
			}
		}
	}
	*j = attnJob{}
}

func (j *attnJob) run(w *worker) {
	if j.stripsShared {
		for {
			s, ok := j.cnt.take()
			if !ok {
				return
			}
			j.strip(w, j.shared, j.phase, j.sb, j.sh, j.sq0, j.sq1, s)
		}
	}
	sc := &w.attn
	for {
		i, ok := j.cnt.take()
		if !ok {
			return
		}
		// Items run head-major, so a worker keeps K_h and V_h packed
		// while it takes several blocks of the same head.
		bh, blk := i/j.nBlocks, i%j.nBlocks
		b, h := bh/j.p.Heads, bh%j.p.Heads
		q0 := blk * j.block
		q1 := min(q0+j.block, j.p.Lq)
		j.prepKV(sc, b, h)
		j.prepBlock(sc, q1-q0)
		strips := ceilDiv(q1-q0, j.is.nr)
		for ph := phaseScores; ph <= phaseOutput; ph++ {
			for s := 0; s < strips; s++ {
				j.strip(w, sc, ph, b, h, q0, q1, s)
			}
		}
	}
}

// prepKV packs K_h and V_hᵀ of (b, h) into sc unless it holds them.
func (j *attnJob) prepKV(sc *attnScratch, b, h int) {
	key := attnKey{gen: j.gen, b: b, h: h}
	if sc.key == key {
		return
	}
	p := &j.p
	mr := j.is.mr
	d, inner := p.HeadDim, p.Heads*p.HeadDim
	nkPad := roundUp(p.Lk, mr)
	kp := grow(&sc.kp, nkPad*d)
	for r0 := 0; r0 < p.Lk; r0 += mr {
		j.is.packRows(kp[r0*d:], j.k[(b*p.Lk+r0)*inner+h*d:], inner, min(mr, p.Lk-r0), 0, d, mr)
	}
	vp := grow(&sc.vp, roundUp(d, mr)*p.Lk)
	for d0 := 0; d0 < d; d0 += mr {
		packCols(vp[d0*p.Lk:], j.v[b*p.Lk*inner+h*d+d0:], inner, min(mr, d-d0), 0, p.Lk, mr)
	}
	sc.key = key
}

// prepBlock sizes the block buffers of sc for nq queries.
func (j *attnJob) prepBlock(sc *attnScratch, nq int) {
	is := j.is
	strips := ceilDiv(nq, is.nr)
	grow(&sc.qp, strips*j.p.HeadDim*is.nr)
	grow(&sc.s, strips*roundUp(j.p.Lk, is.mr)*is.nr)
	if cap(sc.sum) < strips*is.nr {
		sc.sum = make([]float64, strips*is.nr)
	}
	sc.sum = sc.sum[:strips*is.nr]
}

// strip runs one phase on strip s (queries q0+s·nr ...) of block [q0, q1).
// The scores of the block live in sc; the per-strip temporaries (column
// maxima, Oᵀ) are the worker's own.
func (j *attnJob) strip(w *worker, sc *attnScratch, phase, b, h, q0, q1, s int) {
	p := &j.p
	is := j.is
	mr, nr := is.mr, is.nr
	d, inner := p.HeadDim, p.Heads*p.HeadDim
	nkPad := roundUp(p.Lk, mr)
	qs := q0 + s*nr      // first query of the strip
	nq := min(nr, q1-qs) // queries in the strip
	nk := p.Lk           // keys any query of the strip sees
	full := nk           // keys every query of the strip sees
	if p.Causal {
		nk = min(p.Lk, qs+nq)
		full = min(nk, qs+1)
	}
	sbuf := sc.s[s*nkPad*nr : (s+1)*nkPad*nr]
	sum := sc.sum[s*nr : (s+1)*nr]
	switch phase {
	case phaseScores:
		qp := sc.qp[s*d*nr : (s+1)*d*nr]
		is.packRows(qp, j.q[(b*p.Lq+qs)*inner+h*d:], inner, nq, 0, d, nr)
		for r0 := 0; r0 < nk; r0 += mr {
			is.kern(d, sc.kp[r0*d:], qp, sbuf[r0*nr:], nr, false)
		}
	case phaseSoftmax:
		m := grow(&w.attn.m, nr)
		fill(m, float32(math.Inf(-1)))
		is.vec.colMax(sbuf, full, nr, p.Scale, m)
		for r := full; r < nk; r++ {
			// Causal rows some queries of the strip must not see.
			row := sbuf[r*nr : r*nr+nr]
			for l, v := range row {
				v *= p.Scale
				if r > qs+l {
					v = float32(math.Inf(-1))
				} else if v > m[l] {
					m[l] = v
				}
				row[l] = v
			}
		}
		clear(sum)
		is.vec.colExp(sbuf, nk, nr, m, sum)
	case phaseOutput:
		dPad := roundUp(d, mr)
		ot := grow(&w.attn.ot, dPad*nr)
		for d0 := 0; d0 < d; d0 += mr {
			is.kern(nk, sc.vp[d0*p.Lk:], sbuf, ot[d0*nr:], nr, false)
		}
		// Transpose Oᵀ to one row per query, then normalize each row
		// into its place in the interleaved output.
		o := grow(&w.attn.o, nr*d)
		is.packRows(o, ot, nr, d, 0, nr, d)
		for l := 0; l < nq; l++ {
			out := j.dst[(b*p.Lq+qs+l)*inner+h*d:]
			is.vec.scale(out[:d], o[l*d:(l+1)*d], float32(1/sum[l]))
		}
	}
}
