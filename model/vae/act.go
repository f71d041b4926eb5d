package vae

import (
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
)

// act is the activation of one image, c channel planes of h x w values,
// held as row pieces: each piece holds a run of rows of every channel as
// dense [c, y1-y0, w] in an arena buffer. A band pipeline allocates an act
// a piece at a time as it produces it, and frees it a piece at a time as
// it consumes it. Pieces hold about pieceFloats values each, so that a
// freed piece of any tensor fits the next tensor's piece and the arena
// holds little more than the live activations.
type act struct {
	c, h, w int
	pieces  []piece // ordered top to bottom
	// mom accumulates the act's group statistics as it is produced
	// (nil when the producer did not).
	mom *moments
	// view marks an act over a caller's tensor, which is never freed.
	view bool
}

type piece struct {
	y0, y1 int
	data   []float32
}

// pieceFloats is the size of a row piece in values (4 MiB).
const pieceFloats = 1 << 20

// newRows returns an empty act of c x h x w to be produced band by band.
func newRows(c, h, w int) *act {
	return &act{c: c, h: h, w: w}
}

// viewOf returns an act over one image x [c, h, w] of a caller's tensor.
func viewOf(x []float32, c, h, w int) *act {
	return &act{c: c, h: h, w: w, pieces: []piece{{y1: h, data: x}}, view: true}
}

// wrap makes an act of an arena tensor [1, C, H, W], taking over its
// buffer.
func wrap(t *tensor.Tensor) *act {
	c, h, w := t.Shape[1], t.Shape[2], t.Shape[3]
	return &act{c: c, h: h, w: w, pieces: []piece{{y1: h, data: t.Data}}}
}

// getBuf returns an arena buffer of n values. Buffers of half a piece up
// to a piece are taken a whole piece large and larger ones exactly as
// large (with GetExact), so that every row piece is one size, a freed
// piece serves any later piece, and a large free buffer is left for the
// large request it was made for.
func getBuf(ctx *nn.Ctx, n int) []float32 {
	switch {
	case n < pieceFloats/2:
		return ctx.Arena.Get(n)
	case n <= pieceFloats:
		return ctx.Arena.GetExact(pieceFloats)[:n]
	}
	return ctx.Arena.GetExact(n)
}

// addRows appends a piece for rows [y0, y1) of every channel (the rows
// below the last piece) and returns its buffer, [c, y1-y0, w].
func (a *act) addRows(ctx *nn.Ctx, y0, y1 int) []float32 {
	p := piece{y0: y0, y1: y1, data: getBuf(ctx, a.c*(y1-y0)*a.w)}
	a.pieces = append(a.pieces, p)
	return p.data
}

// whole reports whether the act is held in one piece.
func (a *act) whole() bool {
	return len(a.pieces) == 1 && a.pieces[0].y0 == 0 && a.pieces[0].y1 == a.h
}

// join moves an act held in several pieces into one.
func (a *act) join(ctx *nn.Ctx) {
	if a.whole() {
		return
	}
	d := getBuf(ctx, a.c*a.h*a.w)
	a.copyRows(d, 0, a.h)
	a.free(ctx)
	a.pieces = []piece{{y1: a.h, data: d}}
}

// tensor views an act held in one piece as a tensor [1, c, h, w] sharing
// its buffer.
func (a *act) tensor() *tensor.Tensor {
	if !a.whole() {
		panic("vae: act is not held in one piece")
	}
	return &tensor.Tensor{Shape: []int{1, a.c, a.h, a.w}, Data: a.pieces[0].data}
}

// segments calls f with the values of rows [y0, y1) of channel ch, top to
// bottom, one piece at a time.
func (a *act) segments(ch, y0, y1 int, f func([]float32)) {
	w := a.w
	for _, p := range a.pieces {
		lo, hi := max(y0, p.y0), min(y1, p.y1)
		if lo < hi {
			pn := p.y1 - p.y0
			f(p.data[(ch*pn+lo-p.y0)*w : (ch*pn+hi-p.y0)*w])
		}
	}
}

// row returns row y of channel ch.
func (a *act) row(ch, y int) []float32 {
	for _, p := range a.pieces {
		if y >= p.y0 && y < p.y1 {
			o := (ch*(p.y1-p.y0) + y - p.y0) * a.w
			return p.data[o : o+a.w]
		}
	}
	panic("vae: row not held")
}

// copyRows copies rows [y0, y1) of every channel into dst, [c, y1-y0, w].
func (a *act) copyRows(dst []float32, y0, y1 int) {
	n, w := y1-y0, a.w
	for _, p := range a.pieces {
		lo, hi := max(y0, p.y0), min(y1, p.y1)
		if lo >= hi {
			continue
		}
		pn := p.y1 - p.y0
		for ch := range a.c {
			copy(dst[(ch*n+lo-y0)*w:], p.data[(ch*pn+lo-p.y0)*w:(ch*pn+hi-p.y0)*w])
		}
	}
}

// freeAbove frees the pieces that end at or above row y.
func (a *act) freeAbove(ctx *nn.Ctx, y int) {
	if a.view {
		return
	}
	kept := a.pieces[:0]
	for _, p := range a.pieces {
		if p.y1 <= y {
			ctx.Arena.Put(p.data)
			continue
		}
		kept = append(kept, p)
	}
	a.pieces = kept
}

// free gives every piece back to the arena.
func (a *act) free(ctx *nn.Ctx) {
	if !a.view {
		for _, p := range a.pieces {
			ctx.Arena.Put(p.data)
		}
	}
	a.pieces = nil
}

// clone copies the act into a new ordinary tensor [1, c, h, w].
func (a *act) clone() *tensor.Tensor {
	t := tensor.New(1, a.c, a.h, a.w)
	a.copyRows(t.Data, 0, a.h)
	return t
}
