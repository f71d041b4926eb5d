package vae

import (
	"math"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/parallel"
)

// Band processing.
//
// The autoencoder works on one image at a time, and every convolution runs
// on bands of output rows: a 3x3 convolution of rows [a, b) reads rows
// [a-1, b+1) of its input, which are copied into a small buffer (with the
// image's zero padding only at its top and bottom edges), so its result
// equals those rows of the whole convolution. Activations are held as row
// pieces (see act), allocated as a band pipeline produces them and freed
// as the next one consumes them.
//
// GroupNorm needs statistics over the whole image. The producer of a
// tensor accumulates them band by band (in float64, merged across bands
// with Chan's update), and the consumer applies the normalization and SiLU
// to each band of rows it reads, computing every value as the GroupNorm
// kernels do, float32((x-mean)·inv)·gamma + beta. The statistics are not
// summed in the kernels' order, so their last float64 bits can differ,
// which now and then moves a normalized value by a float32 rounding step;
// the convolutions spread such steps. On the tiny fixture models the
// results are bit-identical to the whole-tensor layers
// (TestBandsMatchLayers); at 512x512 with random SD 1.5 weights and
// kernels/cpu the decoded image (std 0.5) differs from them by at most
// 2.1e-6 and the encoded moments by 5.2e-6, against the fixtures' margin
// of 1e-4. These loops run in Go, on the kernels' worker pool.
//
// With that, a ResnetBlock2D holds at most its input and conv1's output
// (or, with a 1x1 shortcut, its input shrinking while conv1's and the
// shortcut's outputs grow), plus a band: two 128-channel tensors at full
// resolution for SD's decoder. The nearest-neighbour upsampling is done a
// band at a time too, so the 4x larger upsampled tensor only ever exists
// as one band.

// tuning holds settings the tests change to force small bands on small
// models.
type tuning struct {
	bandRows int // rows per band when positive
}

// rowsFor returns the rows of a band of a convolution output of c channels
// and width w: a piece's worth.
func (v *VAE) rowsFor(c, w int) int {
	if v.tune.bandRows > 0 {
		return v.tune.bandRows
	}
	return max(1, pieceFloats/(c*w))
}

// convAt returns the kernel parameters of l over one image of c x h x w
// with the given top and bottom padding.
func convAt(l *nn.Conv2d, c, h, w, padTop, padBottom int) kernels.Conv2D {
	return kernels.Conv2D{N: 1, C: c, H: h, W: w, OutC: l.Out, KH: l.Kernel, KW: l.Kernel,
		StrideH: l.Stride, StrideW: l.Stride,
		PadTop: padTop, PadLeft: l.PadLeft, PadBottom: padBottom, PadRight: l.PadRight}
}

// inputRows returns the input rows [lo, hi) that output rows [a, b) of l
// read from an input of h rows, and the zero padding above and below them.
func inputRows(l *nn.Conv2d, a, b, h int) (lo, hi, padTop, padBottom int) {
	lo = a*l.Stride - l.PadTop
	hi = (b-1)*l.Stride - l.PadTop + l.Kernel
	return max(lo, 0), min(hi, h), max(-lo, 0), max(hi-h, 0)
}

// maxInputRows is the most input rows a band of rows output rows of l
// reads from an input of h rows.
func maxInputRows(l *nn.Conv2d, rows, h int) int {
	return min(h, (rows-1)*l.Stride+l.Kernel)
}

// moments accumulates an act's per-group statistics band by band.
type moments struct {
	groups   int
	n        float64   // values per group so far
	mean, m2 []float64 // per group: mean and sum of squared deviations
}

func newMoments(groups int) *moments {
	return &moments{groups: groups, mean: make([]float64, groups), m2: make([]float64, groups)}
}

// add merges rows [y0, y1) of x into the statistics. Each group's band
// is summed in one pass around a shift (the mean so far, or the band's
// first value), which keeps the float64 sums exact to far below float32
// precision; bands are merged with Chan's update.
func (m *moments) add(p *parallel.Pool, x *act, y0, y1 int) {
	cpg := x.c / m.groups
	nb := float64(cpg * (y1 - y0) * x.w)
	n := m.n + nb
	p.For(m.groups, func(g int) {
		shift := m.mean[g]
		if m.n == 0 {
			x.segments(g*cpg, y0, y0+1, func(s []float32) { shift = float64(s[0]) })
		}
		var sum, sq float64
		for ch := g * cpg; ch < (g+1)*cpg; ch++ {
			x.segments(ch, y0, y1, func(s []float32) {
				a, b := shiftedSums(s, shift)
				sum += a
				sq += b
			})
		}
		mean := shift + sum/nb
		m2 := sq - sum*sum/nb // Σ (x-mean)² = Σ (x-shift)² - (Σ (x-shift))²/nb
		d := mean - m.mean[g]
		m.mean[g] += d * nb / n
		m.m2[g] += m2 + d*d*m.n*nb/n
	})
	m.n = n
}

// shiftedSums returns Σ (x-shift) and Σ (x-shift)² in float64.
func shiftedSums(x []float32, shift float64) (sum, sq float64) {
	var s0, s1, q0, q1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		d0, d1 := float64(x[i])-shift, float64(x[i+1])-shift
		s0 += d0
		s1 += d1
		q0 += d0 * d0
		q1 += d1 * d1
	}
	if i < len(x) {
		d := float64(x[i]) - shift
		s0 += d
		q0 += d * d
	}
	return s0 + s1, q0 + q1
}

// normStats are a GroupNorm's statistics over a whole image, to apply it
// (with SiLU) a band at a time.
type normStats struct {
	gn        *nn.GroupNorm
	mean, inv []float64 // per group: mean and 1/sqrt(biased variance + eps)
}

// stats returns gn's statistics over x, from the moments x's producer
// accumulated or else from a pass over x.
func (x *act) stats(p *parallel.Pool, gn *nn.GroupNorm) *normStats {
	m := x.mom
	if m == nil || m.groups != gn.Groups || m.n != float64(x.c/gn.Groups*x.h*x.w) {
		m = newMoments(gn.Groups)
		m.add(p, x, 0, x.h)
		x.mom = m
	}
	s := &normStats{gn: gn, mean: m.mean, inv: make([]float64, gn.Groups)}
	for g := range s.inv {
		s.inv[g] = 1 / math.Sqrt(m.m2[g]/m.n+float64(gn.Eps))
	}
	return s
}

// gather copies rows [lo, hi) of every channel of x into dst [c, hi-lo,
// w]; with st, normalized and SiLU applied on the way.
func gather(k kernels.Kernels, dst []float32, x *act, lo, hi int, st *normStats) {
	if st == nil {
		x.copyRows(dst, lo, hi)
		return
	}
	n, w := hi-lo, x.w
	cpg := x.c / st.gn.Groups
	k.Pool().For(x.c, func(ch int) {
		mean, inv := st.mean[ch/cpg], st.inv[ch/cpg]
		gamma, beta := st.gn.Gamma[ch], st.gn.Beta[ch]
		out := dst[ch*n*w : (ch+1)*n*w]
		x.segments(ch, lo, hi, func(s []float32) {
			o := out[:len(s)]
			for i, v := range s {
				o[i] = float32((float64(v)-mean)*inv)*gamma + beta
			}
			out = out[len(s):]
		})
	})
	k.SiLU(dst[:x.c*n*w], dst[:x.c*n*w])
}

// addInto adds o, rows [a, b) of every channel as [c, b-a, w], into those
// rows of x in place.
func addInto(k kernels.Kernels, x *act, o []float32, a, b int) {
	w := x.w
	for _, p := range x.pieces {
		lo, hi := max(a, p.y0), min(b, p.y1)
		if lo >= hi {
			continue
		}
		if p.y0 == a && p.y1 == b {
			k.Add(p.data, p.data, o[:len(p.data)])
			continue
		}
		pn := p.y1 - p.y0
		for ch := range x.c {
			d := p.data[(ch*pn+lo-p.y0)*w : (ch*pn+hi-p.y0)*w]
			k.Add(d, d, o[(ch*(b-a)+lo-a)*w:(ch*(b-a)+hi-a)*w])
		}
	}
}

// conv applies l to x band by band into a new act whose statistics it
// accumulates. With st, x's rows are normalized (and SiLU applied) first.
// With consume, x's pieces are freed as the bands move past them, then x.
func (v *VAE) conv(ctx *nn.Ctx, l *nn.Conv2d, x *act, st *normStats, consume bool) *act {
	k := ctx.K
	p := convAt(l, x.c, x.h, x.w, l.PadTop, l.PadBottom)
	h, w := p.OutH(), p.OutW()
	y := newRows(l.Out, h, w)
	if l.Out%v.cfg.NormNumGroups == 0 {
		y.mom = newMoments(v.cfg.NormNumGroups)
	}
	// A piece of output per band, unless its input rows would take more
	// than two pieces (conv_out's 3 channels, strided convolutions).
	rows := min(v.rowsFor(l.Out, w), 2*v.rowsFor(x.c*l.Stride, x.w))
	g := getBuf(ctx, x.c*maxInputRows(l, rows, x.h)*x.w)
	for a := 0; a < h; a += rows {
		v.checkCancel()
		b := min(a+rows, h)
		lo, hi, pt, pb := inputRows(l, a, b, x.h)
		gb := g[:x.c*(hi-lo)*x.w]
		gather(k, gb, x, lo, hi, st)
		k.Conv2D(y.addRows(ctx, a, b), gb, convAt(l, x.c, hi-lo, x.w, pt, pb), l.Weight, l.Bias)
		if y.mom != nil {
			y.mom.add(k.Pool(), y, a, b)
		}
		if consume {
			next, _, _, _ := inputRows(l, b, b+1, x.h)
			x.freeAbove(ctx, next)
		}
	}
	if consume {
		x.free(ctx)
	}
	ctx.Arena.Put(g)
	return y
}

// upsample doubles x by nearest neighbour and applies u's convolution, band
// by band, consuming x: each band's input rows are built from x's rows as
// they are gathered, so the doubled tensor only ever exists as one band.
func (v *VAE) upsample(ctx *nn.Ctx, u *nn.Upsample2D, x *act) *act {
	k := ctx.K
	l := u.Conv
	c, h, w := x.c, x.h, x.w
	H, W := 2*h, 2*w
	y := newRows(l.Out, H, W)
	y.mom = newMoments(v.cfg.NormNumGroups)
	rows := v.rowsFor(l.Out, W)
	up := getBuf(ctx, c*maxInputRows(l, rows, H)*W)
	for a := 0; a < H; a += rows {
		v.checkCancel()
		b := min(a+rows, H)
		lo, hi, pt, pb := inputRows(l, a, b, H)
		n := hi - lo
		k.Pool().For(c, func(ch int) {
			for r := lo; r < hi; r++ {
				dst := up[(ch*n+r-lo)*W : (ch*n+r-lo+1)*W]
				for i, val := range x.row(ch, r/2) {
					dst[2*i], dst[2*i+1] = val, val
				}
			}
		})
		x.freeAbove(ctx, (b-1)/2) // the next band starts reading at row (b-1)/2
		k.Conv2D(y.addRows(ctx, a, b), up[:c*n*W], convAt(l, c, n, W, pt, pb), l.Weight, l.Bias)
		y.mom.add(k.Pool(), y, a, b)
	}
	x.free(ctx)
	ctx.Arena.Put(up)
	return y
}

// resnet runs r on x, which it consumes, accumulating the result's
// statistics when stats is set. The first pass reads x's rows normalized
// and writes conv1's output (and, with a shortcut, the shortcut's output
// of x's raw rows, freeing x behind it); the second pass reads conv1's
// output normalized and adds conv2's output in place to the shortcut's
// output, or to x.
func (v *VAE) resnet(ctx *nn.Ctx, r *nn.ResnetBlock2D, x *act, stats bool) *act {
	k := ctx.K
	c1, c2 := r.Conv1, r.Conv2
	h, w := x.h, x.w
	rows := v.rowsFor(r.Out, w)
	norm1 := x.stats(k.Pool(), r.Norm1)
	g := getBuf(ctx, max(r.In, r.Out)*maxInputRows(c1, rows, h)*w)
	hid := newRows(r.Out, h, w)
	hid.mom = newMoments(r.Norm2.Groups)
	var short *act
	var raw []float32
	if r.Shortcut != nil {
		short = newRows(r.Out, h, w)
		raw = getBuf(ctx, r.In*min(rows, h)*w)
	}
	for a := 0; a < h; a += rows {
		v.checkCancel()
		b := min(a+rows, h)
		lo, hi, pt, pb := inputRows(c1, a, b, h)
		gb := g[:r.In*(hi-lo)*w]
		gather(k, gb, x, lo, hi, norm1)
		if short != nil {
			rb := raw[:r.In*(b-a)*w]
			x.copyRows(rb, a, b)
			x.freeAbove(ctx, b-1) // the next band starts reading at row b-1
			k.Conv2D(short.addRows(ctx, a, b), rb, convAt(r.Shortcut, r.In, b-a, w, 0, 0), r.Shortcut.Weight, r.Shortcut.Bias)
		}
		k.Conv2D(hid.addRows(ctx, a, b), gb, convAt(c1, r.In, hi-lo, w, pt, pb), c1.Weight, c1.Bias)
		hid.mom.add(k.Pool(), hid, a, b)
	}
	ctx.Arena.Put(raw)
	res := x
	if short != nil {
		x.free(ctx)
		res = short
	}

	norm2 := hid.stats(k.Pool(), r.Norm2)
	res.mom = nil
	if stats {
		res.mom = newMoments(v.cfg.NormNumGroups)
	}
	o := getBuf(ctx, r.Out*min(rows, h)*w)
	for a := 0; a < h; a += rows {
		v.checkCancel()
		b := min(a+rows, h)
		lo, hi, pt, pb := inputRows(c2, a, b, h)
		gb := g[:r.Out*(hi-lo)*w]
		gather(k, gb, hid, lo, hi, norm2)
		hid.freeAbove(ctx, b-1)
		ob := o[:r.Out*(b-a)*w]
		k.Conv2D(ob, gb, convAt(c2, r.Out, hi-lo, w, pt, pb), c2.Weight, c2.Bias)
		addInto(k, res, ob, a, b)
		if stats {
			res.mom.add(k.Pool(), res, a, b)
		}
	}
	hid.free(ctx)
	ctx.Arena.Put(g)
	ctx.Arena.Put(o)
	return res
}

// mid runs the mid block (resnet, attention, resnet) on x, which it
// consumes.
func (v *VAE) mid(ctx *nn.Ctx, cd *coder, x *act) *act {
	x = v.resnet(ctx, cd.mid[0], x, true)
	if cd.attn != nil {
		v.checkCancel()
		x.join(ctx)
		y := cd.attn.Forward(ctx, x.tensor())
		x.free(ctx)
		x = wrap(y)
	}
	return v.resnet(ctx, cd.mid[1], x, true)
}
