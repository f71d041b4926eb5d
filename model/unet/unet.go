// Package unet is Stable Diffusion's denoising network, diffusers'
// UNet2DConditionModel (v0.21) for the SD 1.x / 2.x block types:
// CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn,
// CrossAttnUpBlock2D and UpBlock2D, with a sinusoidal timestep embedding.
//
// Weights use diffusers' state-dict names (conv_in.weight,
// down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight, ...).
//
// Memory: activations come from an arena that is reused from step to step,
// so after the first steps a step allocates nothing. For SD 1.5 at 512x512
// (64x64 latents, batch 2 for classifier-free guidance) the peak of live
// activations is 0.19 GB and the arena holds 0.26 GB (measured by
// TestActivationMemory): the 12 saved skip tensors (~53 MB) plus the
// widest transformer step, where the GEGLU projection [8192, 2560] (84 MB)
// and its gated half (42 MB) live next to the block's hidden states. The
// kernels' own scratch (attention score chunks, packing buffers) comes on
// top.
package unet

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Options are the network options shared by all models. The UNet's hook
// names are "time_proj", "time_embedding", "conv_in", "down_blocks.N",
// "mid_block", "up_blocks.N", "conv_norm_out" (before SiLU) and "conv_out".
type Options = nn.Options

// UNet is the denoising network. Forward is not safe for concurrent use.
type UNet struct {
	cfg  Config
	opts Options
	ctx  *nn.Ctx

	time1, time2 *nn.Linear
	convIn       *nn.Conv2d
	down         []*block
	mid          *block // nil without mid block
	up           []*block
	normOut      *nn.GroupNorm
	convOut      *nn.Conv2d
}

// block is a down, mid or up block: resnets, each optionally followed by a
// transformer (the mid block starts with a resnet, then alternates), and an
// optional resampler.
type block struct {
	resnets    []*nn.ResnetBlock2D
	attns      []*nn.Transformer2D // nil entries, or none, without attention
	downsample *nn.Downsample2D
	upsample   *nn.Upsample2D
}

// New builds the UNet from a diffusers config.json and its weights. At most
// one Options value is used.
func New(cfg []byte, src weights.Source, k kernels.Kernels, opts ...Options) (*UNet, error) {
	c, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	u, err := build(c, src)
	if err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	u.opts, u.ctx = o, nn.NewCtx(k, o)
	return u, nil
}

// WeightShapes lists every tensor the UNet reads, with its shape. It
// returns nil if cfg is invalid.
func WeightShapes(cfg Config) map[string][]int {
	if cfg.Validate() != nil {
		return nil
	}
	shapes, err := nn.RecordShapes(func(src weights.Source) error {
		_, err := build(cfg, src)
		return err
	})
	if err != nil {
		return nil
	}
	return shapes
}

// Config returns the model's configuration.
func (u *UNet) Config() Config { return u.cfg }

// Arena exposes the model's activation arena (for memory statistics, or
// Release after an unusual image size).
func (u *UNet) Arena() *nn.Arena { return u.ctx.Arena }

func build(c Config, src weights.Source) (*UNet, error) {
	u := &UNet{cfg: c}
	n := len(c.BlockOutChannels)
	c0 := c.BlockOutChannels[0]
	temb := c.TimeEmbedDim()
	groups := c.NormNumGroups
	eps := float32(c.NormEps)
	var err error

	if u.time1, err = nn.NewLinear(src, "time_embedding.linear_1", c0, temb, true); err != nil {
		return nil, err
	}
	if u.time2, err = nn.NewLinear(src, "time_embedding.linear_2", temb, temb, true); err != nil {
		return nil, err
	}
	if u.convIn, err = nn.NewConv2d(src, "conv_in", c.InChannels, c0, c.ConvInKernel, 1, (c.ConvInKernel-1)/2); err != nil {
		return nil, err
	}

	transformer := func(prefix string, ch, heads, layers, ctxDim int) (*nn.Transformer2D, error) {
		return nn.NewTransformer2D(src, prefix, nn.Transformer2DConfig{
			Channels: ch, Heads: heads, ContextDim: ctxDim, Layers: layers, Groups: groups,
			LinearProjection: c.UseLinearProjection,
		})
	}

	out := c0
	for i := 0; i < n; i++ {
		in := out
		out = c.BlockOutChannels[i]
		p := "down_blocks." + strconv.Itoa(i)
		b := &block{}
		cross := c.DownBlockTypes[i] == "CrossAttnDownBlock2D"
		for j := 0; j < c.LayersPerBlock[i]; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.NewResnetBlock2D(src, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, temb, groups, eps)
			if err != nil {
				return nil, err
			}
			b.resnets = append(b.resnets, r)
			if cross {
				a, err := transformer(fmt.Sprintf("%s.attentions.%d", p, j), out, c.Heads[i], c.TransformerLayersPerBlock[i], c.CrossAttentionDim[i])
				if err != nil {
					return nil, err
				}
				b.attns = append(b.attns, a)
			}
		}
		if i < n-1 {
			if b.downsample, err = nn.NewDownsample2D(src, p+".downsamplers.0", out, c.DownsamplePadding); err != nil {
				return nil, err
			}
		}
		u.down = append(u.down, b)
	}

	if c.MidBlockType != "" {
		ch := c.BlockOutChannels[n-1]
		b := &block{}
		for j := 0; j < 2; j++ {
			r, err := nn.NewResnetBlock2D(src, fmt.Sprintf("mid_block.resnets.%d", j), ch, ch, temb, groups, eps)
			if err != nil {
				return nil, err
			}
			b.resnets = append(b.resnets, r)
		}
		a, err := transformer("mid_block.attentions.0", ch, c.Heads[n-1], c.TransformerLayersPerBlock[n-1], c.CrossAttentionDim[n-1])
		if err != nil {
			return nil, err
		}
		b.attns = []*nn.Transformer2D{a}
		u.mid = b
	}

	out = c.BlockOutChannels[n-1]
	for i := 0; i < n; i++ {
		ri := n - 1 - i // index into the per-down-block lists
		prev := out
		out = c.BlockOutChannels[ri]
		in := c.BlockOutChannels[max(ri-1, 0)]
		p := "up_blocks." + strconv.Itoa(i)
		b := &block{}
		cross := c.UpBlockTypes[i] == "CrossAttnUpBlock2D"
		layers := c.LayersPerBlock[ri] + 1
		for j := 0; j < layers; j++ {
			skip := out
			if j == layers-1 {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			r, err := nn.NewResnetBlock2D(src, fmt.Sprintf("%s.resnets.%d", p, j), rin+skip, out, temb, groups, eps)
			if err != nil {
				return nil, err
			}
			b.resnets = append(b.resnets, r)
			if cross {
				a, err := transformer(fmt.Sprintf("%s.attentions.%d", p, j), out, c.Heads[ri], c.TransformerLayersPerBlock[ri], c.CrossAttentionDim[ri])
				if err != nil {
					return nil, err
				}
				b.attns = append(b.attns, a)
			}
		}
		if i < n-1 {
			if b.upsample, err = nn.NewUpsample2D(src, p+".upsamplers.0", out); err != nil {
				return nil, err
			}
		}
		u.up = append(u.up, b)
	}

	if u.normOut, err = nn.NewGroupNorm(src, "conv_norm_out", groups, c0, eps); err != nil {
		return nil, err
	}
	if u.convOut, err = nn.NewConv2d(src, "conv_out", c0, c.OutChannels, c.ConvOutKernel, 1, (c.ConvOutKernel-1)/2); err != nil {
		return nil, err
	}
	return u, nil
}

// Cond is what the UNet is conditioned on besides the sample.
type Cond struct {
	// Timestep is the timestep of the whole batch (fractional values are
	// allowed, as Euler-type schedulers use them).
	Timestep float64
	// Timesteps, when set, gives one timestep per sample instead, as
	// diffusers accepts a timestep tensor of the batch's length.
	Timesteps []float64
	// Context is the text conditioning [B, L, cross_attention_dim].
	Context *tensor.Tensor
}

// timestep returns the timestep of sample b.
func (c *Cond) timestep(b int) float64 {
	if c.Timesteps != nil {
		return c.Timesteps[b]
	}
	return c.Timestep
}

// Forward predicts the noise (or v) for sample [B, in_channels, h, w] at
// timestep (the same for the whole batch), conditioned on context [B, L,
// cross_attention_dim]: ForwardCond with only these.
func (u *UNet) Forward(sample *tensor.Tensor, timestep float64, context *tensor.Tensor) (*tensor.Tensor, error) {
	return u.ForwardCond(sample, Cond{Timestep: timestep, Context: context})
}

// ForwardCond predicts the noise (or v) for sample [B, in_channels, h, w]
// under cond. It returns a new [B, out_channels, h, w]. Any latent size
// works; sizes not divisible by 2^(blocks-1) are handled as diffusers
// does (upsampling to the skip connection's size).
func (u *UNet) ForwardCond(sample *tensor.Tensor, cond Cond) (*tensor.Tensor, error) {
	if err := u.checkInputs(sample, &cond); err != nil {
		return nil, err
	}
	context := cond.Context
	c := u.ctx
	bsz := sample.Shape[0]

	// Time embedding.
	c0 := u.cfg.BlockOutChannels[0]
	tp := c.New(bsz, c0)
	for b := 0; b < bsz; b++ {
		timestepEmbedding(tp.Data[b*c0:(b+1)*c0], cond.timestep(b), u.cfg.FlipSinToCos, u.cfg.FreqShift)
	}
	u.opts.Emit("time_proj", tp)
	h1 := u.time1.Forward(c, tp)
	c.Free(tp)
	c.K.SiLU(h1.Data, h1.Data)
	emb := u.time2.Forward(c, h1)
	c.Free(h1)
	u.opts.Emit("time_embedding", emb)
	c.K.SiLU(emb.Data, emb.Data) // every resnet projects SiLU(emb)

	x := u.convIn.Forward(c, sample)
	u.opts.Emit("conv_in", x)

	// Down blocks: every intermediate output is kept as a skip connection.
	skips := []*tensor.Tensor{x}
	for i, b := range u.down {
		for j, r := range b.resnets {
			x = r.Forward(c, x, emb)
			if b.attns != nil {
				y := b.attns[j].Forward(c, x, context)
				c.Free(x)
				x = y
			}
			skips = append(skips, x)
		}
		if b.downsample != nil {
			x = b.downsample.Forward(c, x)
			skips = append(skips, x)
		}
		u.opts.Emit("down_blocks."+strconv.Itoa(i), x)
	}

	// Mid block; x is still owned by skips until the mid block replaces it.
	if u.mid != nil {
		y := u.mid.resnets[0].Forward(c, x, emb)
		z := u.mid.attns[0].Forward(c, y, context)
		c.Free(y)
		x = u.mid.resnets[1].Forward(c, z, emb)
		c.Free(z)
		u.opts.Emit("mid_block", x)
	} else {
		x = cloneArena(c, x)
	}

	// Up blocks consume the skips in reverse order.
	for i, b := range u.up {
		for j, r := range b.resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			cat := nn.ConcatChannels(c, x, skip)
			c.Free(x, skip)
			x = r.Forward(c, cat, emb)
			c.Free(cat)
			if b.attns != nil {
				y := b.attns[j].Forward(c, x, context)
				c.Free(x)
				x = y
			}
		}
		if b.upsample != nil {
			// The next skip fixes the size: 2x unless the latent size was
			// not divisible by the total downsampling.
			next := skips[len(skips)-1]
			y := b.upsample.Forward(c, x, next.Shape[2], next.Shape[3])
			c.Free(x)
			x = y
		}
		u.opts.Emit("up_blocks."+strconv.Itoa(i), x)
	}
	c.Free(emb)

	n := u.normOut.Forward(c, x, u.opts.Hook == nil)
	c.Free(x)
	if u.opts.Hook != nil {
		u.opts.Emit("conv_norm_out", n)
		c.K.SiLU(n.Data, n.Data)
	}
	out := u.convOut.Forward(c, n)
	c.Free(n)
	u.opts.Emit("conv_out", out)
	return c.Detach(out), nil
}

func cloneArena(c *nn.Ctx, x *tensor.Tensor) *tensor.Tensor {
	y := c.New(x.Shape...)
	copy(y.Data, x.Data)
	return y
}

func (u *UNet) checkInputs(sample *tensor.Tensor, cond *Cond) error {
	context := cond.Context
	if sample == nil || len(sample.Shape) != 4 || sample.Shape[1] != u.cfg.InChannels ||
		sample.Shape[0] <= 0 || sample.Shape[2] <= 0 || sample.Shape[3] <= 0 || len(sample.Data) != tensor.NumElements(sample.Shape) {
		var shape []int
		if sample != nil {
			shape = sample.Shape
		}
		return fmt.Errorf("unet: sample shape %v, want [batch, %d, height, width]", shape, u.cfg.InChannels)
	}
	if cond.Timesteps != nil && len(cond.Timesteps) != sample.Shape[0] {
		return fmt.Errorf("unet: %d timesteps for a batch of %d", len(cond.Timesteps), sample.Shape[0])
	}
	for b := range sample.Shape[0] {
		if t := cond.timestep(b); math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("unet: timestep %v is not finite", t)
		}
	}
	if context == nil || len(context.Shape) != 3 || context.Shape[0] != sample.Shape[0] || context.Shape[1] <= 0 ||
		len(context.Data) != tensor.NumElements(context.Shape) {
		var shape []int
		if context != nil {
			shape = context.Shape
		}
		return fmt.Errorf("unet: context shape %v, want [%d, tokens, dim]", shape, sample.Shape[0])
	}
	n := len(u.cfg.DownBlockTypes)
	for i := 0; i < n; i++ {
		uses := u.cfg.DownBlockTypes[i] == "CrossAttnDownBlock2D" ||
			u.cfg.UpBlockTypes[n-1-i] == "CrossAttnUpBlock2D" || (u.mid != nil && i == n-1)
		if d := u.cfg.CrossAttentionDim[i]; uses && context.Shape[2] != d {
			return fmt.Errorf("unet: context width %d, want cross_attention_dim %d", context.Shape[2], d)
		}
	}
	return nil
}

// timestepEmbedding writes diffusers' sinusoidal embedding of t into dst
// (len dst = block_out_channels[0]) in float32 arithmetic, as
// get_timestep_embedding computes it: freq_i = exp(-ln(10000)·i/(half -
// shift)), [sin(t·freq), cos(t·freq)], swapped to [cos, sin] with
// flipSinToCos, zero-padded when the width is odd.
func timestepEmbedding(dst []float32, t float64, flipSinToCos bool, shift float64) {
	half := len(dst) / 2
	tf := float32(t)
	lnMax := float32(-math.Log(10000))
	div := float32(float64(half) - shift)
	for i := 0; i < half; i++ {
		e := float32(lnMax*float32(i)) / div
		arg := float32(tf * float32(math.Exp(float64(e))))
		s := float32(math.Sin(float64(arg)))
		co := float32(math.Cos(float64(arg)))
		if flipSinToCos {
			dst[i], dst[half+i] = co, s
		} else {
			dst[i], dst[half+i] = s, co
		}
	}
	if len(dst)%2 == 1 {
		dst[len(dst)-1] = 0
	}
}
