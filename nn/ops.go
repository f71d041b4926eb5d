package nn

import (
	"strconv"

	"github.com/pigment-sd/pigment/tensor"
)

func itoa(i int) string { return strconv.Itoa(i) }

// ToChannelsLast copies x [B, C, H, W] into a new [B, H·W, C].
func ToChannelsLast(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	b, ch, hw := x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3]
	y := c.New(b, hw, ch)
	for n := 0; n < b; n++ {
		transpose(y.Data[n*ch*hw:(n+1)*ch*hw], x.Data[n*ch*hw:(n+1)*ch*hw], ch, hw)
	}
	return y
}

// ToChannelsFirst copies x [B, H·W, C] into a new [B, C, H, W].
func ToChannelsFirst(c *Ctx, x *tensor.Tensor, h, w int) *tensor.Tensor {
	b, hw, ch := x.Shape[0], x.Shape[1], x.Shape[2]
	y := c.New(b, ch, h, w)
	for n := 0; n < b; n++ {
		transpose(y.Data[n*ch*hw:(n+1)*ch*hw], x.Data[n*ch*hw:(n+1)*ch*hw], hw, ch)
	}
	return y
}

// transpose writes the [rows, cols] matrix src into dst as [cols, rows],
// in square tiles so both sides stay in cache.
func transpose(dst, src []float32, rows, cols int) {
	const tile = 32
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols : r*cols+c1]
				for k := c0; k < c1; k++ {
					dst[k*rows+r] = row[k]
				}
			}
		}
	}
}

// ConcatChannels copies a [B, Ca, H, W] and b [B, Cb, H, W] into a new
// [B, Ca+Cb, H, W] (a's channels first, as torch.cat(dim=1)).
func ConcatChannels(c *Ctx, a, b *tensor.Tensor) *tensor.Tensor {
	n, h, w := a.Shape[0], a.Shape[2], a.Shape[3]
	ca, cb := a.Shape[1], b.Shape[1]
	y := c.New(n, ca+cb, h, w)
	sa, sb := ca*h*w, cb*h*w
	for i := 0; i < n; i++ {
		out := y.Data[i*(sa+sb):]
		copy(out[:sa], a.Data[i*sa:(i+1)*sa])
		copy(out[sa:sa+sb], b.Data[i*sb:(i+1)*sb])
	}
	return y
}

// ResizeNearest copies x [B, C, H, W] into a new [B, C, outH, outW] by
// nearest neighbour, as PyTorch's interpolate(mode="nearest"): source index
// floor(dst·in/out) in float32, clamped. Doubling goes through the
// Upsample2x kernel.
func ResizeNearest(c *Ctx, x *tensor.Tensor, outH, outW int) *tensor.Tensor {
	b, ch, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	y := c.New(b, ch, outH, outW)
	if outH == 2*h && outW == 2*w {
		c.K.Upsample2x(y.Data, x.Data, b*ch, h, w)
		return y
	}
	ys := nearestIndex(h, outH)
	xs := nearestIndex(w, outW)
	for p := 0; p < b*ch; p++ {
		src := x.Data[p*h*w : (p+1)*h*w]
		dst := y.Data[p*outH*outW : (p+1)*outH*outW]
		for oy, iy := range ys {
			srow := src[iy*w : (iy+1)*w]
			drow := dst[oy*outW : (oy+1)*outW]
			for ox, ix := range xs {
				drow[ox] = srow[ix]
			}
		}
	}
	return y
}

// nearestIndex is PyTorch's nearest_idx: for each output index the input
// index it copies.
func nearestIndex(in, out int) []int {
	idx := make([]int, out)
	switch {
	case out == in:
		for i := range idx {
			idx[i] = i
		}
	case out == 2*in:
		for i := range idx {
			idx[i] = i >> 1
		}
	default:
		scale := float32(in) / float32(out)
		for i := range idx {
			j := int(float32(i) * scale)
			idx[i] = min(j, in-1)
		}
	}
	return idx
}
