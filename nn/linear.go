package nn

import (
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Linear is y = x·Wᵀ + b over the last axis: prefix.weight [Out, In] and
// the optional prefix.bias [Out].
type Linear struct {
	Weight  weights.Tensor
	Bias    []float32 // nil when the layer has no bias
	In, Out int
}

// NewLinear binds prefix.weight [out, in] and, with bias, prefix.bias. A
// 1x1 convolution weight [out, in, 1, 1] is accepted as well (same
// arithmetic on a row of channels).
func NewLinear(src weights.Source, prefix string, in, out int, bias bool) (*Linear, error) {
	return newLinear(src, prefix, in, out, bias, []int{out, in}, []int{out, in, 1, 1})
}

// NewConv1x1 is NewLinear for a weight stored as a 1x1 convolution: it
// expects prefix.weight [out, in, 1, 1] (and accepts [out, in]). Applied to
// channels-last rows it equals the convolution.
func NewConv1x1(src weights.Source, prefix string, in, out int, bias bool) (*Linear, error) {
	return newLinear(src, prefix, in, out, bias, []int{out, in, 1, 1}, []int{out, in})
}

func newLinear(src weights.Source, prefix string, in, out int, bias bool, want, alt []int) (*Linear, error) {
	w, err := lookup(src, prefix+".weight", want, alt)
	if err != nil {
		return nil, err
	}
	l := &Linear{Weight: w, In: in, Out: out}
	if bias {
		if l.Bias, err = lookupVector(src, prefix+".bias", out); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Forward maps x [..., In] to a new [..., Out].
func (l *Linear) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	shape := append([]int(nil), x.Shape...)
	shape[len(shape)-1] = l.Out
	y := c.New(shape...)
	c.K.Linear(y.Data, x.Data, len(x.Data)/l.In, l.In, l.Weight, l.Bias)
	return y
}

// Conv2d is a 2-D convolution: prefix.weight [Out, In, K, K], prefix.bias
// [Out].
type Conv2d struct {
	Weight                               weights.Tensor
	Bias                                 []float32
	In, Out, Kernel, Stride              int
	PadTop, PadLeft, PadBottom, PadRight int
}

// NewConv2d binds a square convolution with bias and symmetric padding.
func NewConv2d(src weights.Source, prefix string, in, out, kernel, stride, pad int) (*Conv2d, error) {
	w, err := lookup(src, prefix+".weight", []int{out, in, kernel, kernel})
	if err != nil {
		return nil, err
	}
	b, err := lookupVector(src, prefix+".bias", out)
	if err != nil {
		return nil, err
	}
	return &Conv2d{Weight: w, Bias: b, In: in, Out: out, Kernel: kernel, Stride: stride,
		PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad}, nil
}

func (l *Conv2d) params(n, h, w int) kernels.Conv2D {
	return kernels.Conv2D{N: n, C: l.In, H: h, W: w, OutC: l.Out, KH: l.Kernel, KW: l.Kernel,
		StrideH: l.Stride, StrideW: l.Stride,
		PadTop: l.PadTop, PadLeft: l.PadLeft, PadBottom: l.PadBottom, PadRight: l.PadRight}
}

// Forward convolves x [N, In, H, W] into a new [N, Out, OH, OW].
func (l *Conv2d) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	p := l.params(x.Shape[0], x.Shape[2], x.Shape[3])
	y := c.New(p.N, l.Out, p.OutH(), p.OutW())
	c.K.Conv2D(y.Data, x.Data, p, l.Weight, l.Bias)
	return y
}

// ForwardAddBias is Forward with an extra per-sample, per-channel bias
// extra [N, Out] added to every position (a ResnetBlock2D's time embedding).
// It runs one convolution per sample with the bias folded in.
func (l *Conv2d) ForwardAddBias(c *Ctx, x *tensor.Tensor, extra []float32) *tensor.Tensor {
	n := x.Shape[0]
	p := l.params(1, x.Shape[2], x.Shape[3])
	y := c.New(n, l.Out, p.OutH(), p.OutW())
	in, out := l.In*p.H*p.W, l.Out*p.OutH()*p.OutW()
	bias := c.Arena.Get(l.Out)
	defer c.Arena.Put(bias)
	for i := 0; i < n; i++ {
		c.K.Add(bias, l.Bias, extra[i*l.Out:(i+1)*l.Out])
		c.K.Conv2D(y.Data[i*out:(i+1)*out], x.Data[i*in:(i+1)*in], p, l.Weight, bias)
	}
	return y
}

// GroupNorm normalizes NCHW activations over groups of channels, with
// per-channel scale prefix.weight and shift prefix.bias.
type GroupNorm struct {
	Gamma, Beta      []float32
	Groups, Channels int
	Eps              float32
}

// NewGroupNorm binds a GroupNorm of channels in groups.
func NewGroupNorm(src weights.Source, prefix string, groups, channels int, eps float32) (*GroupNorm, error) {
	g, err := lookupVector(src, prefix+".weight", channels)
	if err != nil {
		return nil, err
	}
	b, err := lookupVector(src, prefix+".bias", channels)
	if err != nil {
		return nil, err
	}
	return &GroupNorm{Gamma: g, Beta: b, Groups: groups, Channels: channels, Eps: eps}, nil
}

// Forward normalizes x [N, C, ...] into a new tensor; with silu it also
// applies SiLU.
func (l *GroupNorm) Forward(c *Ctx, x *tensor.Tensor, silu bool) *tensor.Tensor {
	y := c.New(x.Shape...)
	n := x.Shape[0]
	c.K.GroupNorm(y.Data, x.Data, n, l.Channels, len(x.Data)/(n*l.Channels), l.Groups, l.Eps, l.Gamma, l.Beta, silu)
	return y
}

// LayerNorm normalizes the last axis, with scale prefix.weight and shift
// prefix.bias.
type LayerNorm struct {
	Gamma, Beta []float32
	Dim         int
	Eps         float32
}

// NewLayerNorm binds a LayerNorm over dim values.
func NewLayerNorm(src weights.Source, prefix string, dim int, eps float32) (*LayerNorm, error) {
	g, err := lookupVector(src, prefix+".weight", dim)
	if err != nil {
		return nil, err
	}
	b, err := lookupVector(src, prefix+".bias", dim)
	if err != nil {
		return nil, err
	}
	return &LayerNorm{Gamma: g, Beta: b, Dim: dim, Eps: eps}, nil
}

// Forward normalizes x [..., Dim] into a new tensor.
func (l *LayerNorm) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	y := c.New(x.Shape...)
	c.K.LayerNorm(y.Data, x.Data, len(x.Data)/l.Dim, l.Dim, l.Eps, l.Gamma, l.Beta)
	return y
}
