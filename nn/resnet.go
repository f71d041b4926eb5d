package nn

import (
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// ResnetBlock2D is diffusers' ResnetBlock2D: GroupNorm+SiLU, conv1 (plus the
// projected time embedding as a per-channel bias), GroupNorm+SiLU, conv2,
// plus the input (through a 1x1 conv_shortcut when the widths differ).
type ResnetBlock2D struct {
	Norm1, Norm2 *GroupNorm
	Conv1, Conv2 *Conv2d
	TimeEmbProj  *Linear // nil without time embedding (VAE)
	Shortcut     *Conv2d // nil when In == Out
	In, Out      int
}

// NewResnetBlock2D binds prefix.{norm1,conv1,time_emb_proj,norm2,conv2,
// conv_shortcut}. tembDim 0 means no time embedding.
func NewResnetBlock2D(src weights.Source, prefix string, in, out, tembDim, groups int, eps float32) (*ResnetBlock2D, error) {
	r := &ResnetBlock2D{In: in, Out: out}
	var err error
	if r.Norm1, err = NewGroupNorm(src, prefix+".norm1", groups, in, eps); err != nil {
		return nil, err
	}
	if r.Conv1, err = NewConv2d(src, prefix+".conv1", in, out, 3, 1, 1); err != nil {
		return nil, err
	}
	if tembDim > 0 {
		if r.TimeEmbProj, err = NewLinear(src, prefix+".time_emb_proj", tembDim, out, true); err != nil {
			return nil, err
		}
	}
	if r.Norm2, err = NewGroupNorm(src, prefix+".norm2", groups, out, eps); err != nil {
		return nil, err
	}
	if r.Conv2, err = NewConv2d(src, prefix+".conv2", out, out, 3, 1, 1); err != nil {
		return nil, err
	}
	if in != out {
		if r.Shortcut, err = NewConv2d(src, prefix+".conv_shortcut", in, out, 1, 1, 0); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Forward maps x [B, In, H, W] to a new [B, Out, H, W]. tembAct is the
// time embedding after SiLU, [B, tembDim] (nil without time embedding).
func (r *ResnetBlock2D) Forward(c *Ctx, x, tembAct *tensor.Tensor) *tensor.Tensor {
	a := r.Norm1.Forward(c, x, true)
	var h *tensor.Tensor
	if r.TimeEmbProj != nil && tembAct != nil {
		t := r.TimeEmbProj.Forward(c, tembAct)
		h = r.Conv1.ForwardAddBias(c, a, t.Data)
		c.Free(t)
	} else {
		h = r.Conv1.Forward(c, a)
	}
	c.Free(a)
	c.K.GroupNorm(h.Data, h.Data, h.Shape[0], r.Out, len(h.Data)/(h.Shape[0]*r.Out),
		r.Norm2.Groups, r.Norm2.Eps, r.Norm2.Gamma, r.Norm2.Beta, true)
	y := r.Conv2.Forward(c, h)
	c.Free(h)
	if r.Shortcut != nil {
		s := r.Shortcut.Forward(c, x)
		c.K.Add(y.Data, y.Data, s.Data)
		c.Free(s)
	} else {
		c.K.Add(y.Data, y.Data, x.Data)
	}
	return y
}

// Downsample2D halves the resolution with a 3x3 stride-2 convolution
// prefix.conv. With padding 1 it pads every side by 1 (UNet); with padding
// 0 it pads only the bottom and right by 1 (VAE encoder, diffusers'
// F.pad(x, (0, 1, 0, 1))).
type Downsample2D struct {
	Conv *Conv2d
}

// NewDownsample2D binds prefix.conv for channels in and out.
func NewDownsample2D(src weights.Source, prefix string, channels, padding int) (*Downsample2D, error) {
	conv, err := NewConv2d(src, prefix+".conv", channels, channels, 3, 2, padding)
	if err != nil {
		return nil, err
	}
	if padding == 0 {
		conv.PadBottom, conv.PadRight = 1, 1
	}
	return &Downsample2D{Conv: conv}, nil
}

// Forward maps x [B, C, H, W] to a new half-resolution tensor.
func (d *Downsample2D) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	return d.Conv.Forward(c, x)
}

// Upsample2D is nearest-neighbour upsampling followed by a 3x3 convolution
// prefix.conv.
type Upsample2D struct {
	Conv *Conv2d
}

// NewUpsample2D binds prefix.conv.
func NewUpsample2D(src weights.Source, prefix string, channels int) (*Upsample2D, error) {
	conv, err := NewConv2d(src, prefix+".conv", channels, channels, 3, 1, 1)
	if err != nil {
		return nil, err
	}
	return &Upsample2D{Conv: conv}, nil
}

// Forward upsamples x [B, C, H, W] to [B, C, outH, outW] by nearest
// neighbour (2H x 2W is the usual case; other sizes follow PyTorch's
// interpolate(size=...) rule, as the UNet needs for latents not divisible
// by its total downsampling) and convolves.
func (u *Upsample2D) Forward(c *Ctx, x *tensor.Tensor, outH, outW int) *tensor.Tensor {
	up := ResizeNearest(c, x, outH, outW)
	y := u.Conv.Forward(c, up)
	c.Free(up)
	return y
}
