package nn

import (
	"math"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Attention is multi-head scaled dot-product attention with query, key,
// value and output projections: out = Out(softmax(Q·Kᵀ/√HeadDim)·V).
type Attention struct {
	Q, K, V, Out   *Linear
	Heads, HeadDim int
	// Causal lets query i attend to keys j <= i only (CLIP's text mask).
	Causal bool
}

// NewAttention binds a diffusers Attention: prefix.to_q [heads·headDim,
// queryDim], prefix.to_k and prefix.to_v [heads·headDim, contextDim] (with
// biases when qkvBias), prefix.to_out.0 [queryDim, heads·headDim] with bias.
// For self-attention contextDim equals queryDim.
func NewAttention(src weights.Source, prefix string, queryDim, contextDim, heads, headDim int, qkvBias bool) (*Attention, error) {
	inner := heads * headDim
	q, err := NewLinear(src, prefix+".to_q", queryDim, inner, qkvBias)
	if err != nil {
		return nil, err
	}
	k, err := NewLinear(src, prefix+".to_k", contextDim, inner, qkvBias)
	if err != nil {
		return nil, err
	}
	v, err := NewLinear(src, prefix+".to_v", contextDim, inner, qkvBias)
	if err != nil {
		return nil, err
	}
	out, err := NewLinear(src, prefix+".to_out.0", inner, queryDim, true)
	if err != nil {
		return nil, err
	}
	return &Attention{Q: q, K: k, V: v, Out: out, Heads: heads, HeadDim: headDim}, nil
}

// Forward attends from x [B, Lq, queryDim] to context [B, Lk, contextDim]
// (to x itself when context is nil) and returns a new [B, Lq, queryDim].
func (a *Attention) Forward(c *Ctx, x, context *tensor.Tensor) *tensor.Tensor {
	if context == nil {
		context = x
	}
	b, lq, lk := x.Shape[0], x.Shape[1], context.Shape[1]
	q := a.Q.Forward(c, x)
	k := a.K.Forward(c, context)
	v := a.V.Forward(c, context)
	o := c.New(b, lq, a.Heads*a.HeadDim)
	c.K.Attention(o.Data, q.Data, k.Data, v.Data, kernels.Attention{
		B: b, Heads: a.Heads, Lq: lq, Lk: lk, HeadDim: a.HeadDim,
		Scale:  float32(1 / math.Sqrt(float64(a.HeadDim))),
		Causal: a.Causal, Mode: c.Attention, Chunk: c.Chunk,
	})
	c.Free(q, k, v)
	y := a.Out.Forward(c, o)
	c.Free(o)
	return y
}

// FeedForward is diffusers' GEGLU feed-forward: prefix.net.0.proj
// [2·Inner, Dim] (value and gate halves), GELU-gated, then prefix.net.2
// [Dim, Inner].
type FeedForward struct {
	Proj, Out *Linear
	Inner     int
}

// NewFeedForward binds a GEGLU feed-forward of width inner (4·dim in SD).
func NewFeedForward(src weights.Source, prefix string, dim, inner int) (*FeedForward, error) {
	proj, err := NewLinear(src, prefix+".net.0.proj", dim, 2*inner, true)
	if err != nil {
		return nil, err
	}
	out, err := NewLinear(src, prefix+".net.2", inner, dim, true)
	if err != nil {
		return nil, err
	}
	return &FeedForward{Proj: proj, Out: out, Inner: inner}, nil
}

// Forward maps x [..., Dim] to a new [..., Dim].
func (f *FeedForward) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	p := f.Proj.Forward(c, x)
	rows := len(p.Data) / (2 * f.Inner)
	shape := append([]int(nil), x.Shape...)
	shape[len(shape)-1] = f.Inner
	g := c.New(shape...)
	c.K.GEGLU(g.Data, p.Data, rows, f.Inner)
	c.Free(p)
	y := f.Out.Forward(c, g)
	c.Free(g)
	return y
}

// TransformerBlock is diffusers' BasicTransformerBlock: LayerNorm,
// self-attention, residual; LayerNorm, cross-attention on the context,
// residual; LayerNorm, GEGLU feed-forward, residual.
type TransformerBlock struct {
	Norm1, Norm2, Norm3 *LayerNorm
	Attn1, Attn2        *Attention
	FF                  *FeedForward
}

// NewTransformerBlock binds prefix.{norm1,attn1,norm2,attn2,norm3,ff} for
// width dim, heads of headDim (heads·headDim == dim) and a context of
// contextDim. LayerNorm eps is 1e-5, the projections q/k/v have no bias.
func NewTransformerBlock(src weights.Source, prefix string, dim, heads, headDim, contextDim int) (*TransformerBlock, error) {
	var (
		blk TransformerBlock
		err error
	)
	if blk.Norm1, err = NewLayerNorm(src, prefix+".norm1", dim, 1e-5); err != nil {
		return nil, err
	}
	if blk.Attn1, err = NewAttention(src, prefix+".attn1", dim, dim, heads, headDim, false); err != nil {
		return nil, err
	}
	if blk.Norm2, err = NewLayerNorm(src, prefix+".norm2", dim, 1e-5); err != nil {
		return nil, err
	}
	if blk.Attn2, err = NewAttention(src, prefix+".attn2", dim, contextDim, heads, headDim, false); err != nil {
		return nil, err
	}
	if blk.Norm3, err = NewLayerNorm(src, prefix+".norm3", dim, 1e-5); err != nil {
		return nil, err
	}
	if blk.FF, err = NewFeedForward(src, prefix+".ff", dim, 4*dim); err != nil {
		return nil, err
	}
	return &blk, nil
}

// Forward updates x [B, L, dim] in place (x must be owned by the caller)
// attending to context [B, Lc, contextDim].
func (t *TransformerBlock) Forward(c *Ctx, x, context *tensor.Tensor) {
	n := t.Norm1.Forward(c, x)
	a := t.Attn1.Forward(c, n, nil)
	c.Free(n)
	c.K.Add(x.Data, x.Data, a.Data)
	c.Free(a)

	n = t.Norm2.Forward(c, x)
	a = t.Attn2.Forward(c, n, context)
	c.Free(n)
	c.K.Add(x.Data, x.Data, a.Data)
	c.Free(a)

	n = t.Norm3.Forward(c, x)
	a = t.FF.Forward(c, n)
	c.Free(n)
	c.K.Add(x.Data, x.Data, a.Data)
	c.Free(a)
}

// Transformer2D is diffusers' Transformer2DModel on continuous input:
// GroupNorm (eps 1e-6), proj_in, TransformerBlocks over the H·W positions,
// proj_out, plus the input as residual.
type Transformer2D struct {
	Norm            *GroupNorm
	ProjIn, ProjOut *Linear
	Blocks          []*TransformerBlock
	Channels        int
}

// Transformer2DConfig describes a Transformer2D.
type Transformer2DConfig struct {
	Channels   int // input and inner width (heads·headDim)
	Heads      int
	ContextDim int
	Layers     int // transformer blocks
	Groups     int // GroupNorm groups
	// LinearProjection: proj_in/proj_out are Linear [C, C] (SD 2.x);
	// otherwise 1x1 convolutions [C, C, 1, 1] (SD 1.x). Both are the same
	// arithmetic on channels-last rows.
	LinearProjection bool
}

// NewTransformer2D binds prefix.norm, prefix.proj_in,
// prefix.transformer_blocks.N and prefix.proj_out.
func NewTransformer2D(src weights.Source, prefix string, cfg Transformer2DConfig) (*Transformer2D, error) {
	ch := cfg.Channels
	norm, err := NewGroupNorm(src, prefix+".norm", cfg.Groups, ch, 1e-6)
	if err != nil {
		return nil, err
	}
	proj := NewConv1x1
	if cfg.LinearProjection {
		proj = NewLinear
	}
	t := &Transformer2D{Norm: norm, Channels: ch}
	if t.ProjIn, err = proj(src, prefix+".proj_in", ch, ch, true); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Layers; i++ {
		blk, err := NewTransformerBlock(src, prefix+".transformer_blocks."+itoa(i), ch, cfg.Heads, ch/cfg.Heads, cfg.ContextDim)
		if err != nil {
			return nil, err
		}
		t.Blocks = append(t.Blocks, blk)
	}
	if t.ProjOut, err = proj(src, prefix+".proj_out", ch, ch, true); err != nil {
		return nil, err
	}
	return t, nil
}

// Forward maps x [B, C, H, W] to a new [B, C, H, W], attending to context
// [B, Lc, ContextDim].
func (t *Transformer2D) Forward(c *Ctx, x, context *tensor.Tensor) *tensor.Tensor {
	h, w := x.Shape[2], x.Shape[3]
	n := t.Norm.Forward(c, x, false)
	rows := ToChannelsLast(c, n)
	c.Free(n)
	hs := t.ProjIn.Forward(c, rows)
	c.Free(rows)
	for _, blk := range t.Blocks {
		blk.Forward(c, hs, context)
	}
	out := t.ProjOut.Forward(c, hs)
	c.Free(hs)
	y := ToChannelsFirst(c, out, h, w)
	c.Free(out)
	c.K.Add(y.Data, y.Data, x.Data)
	return y
}

// AttentionBlock is the VAE's spatial self-attention (diffusers' Attention
// with a group norm and a residual connection): GroupNorm, single- or
// multi-head self-attention over the H·W positions, output projection,
// plus the input.
type AttentionBlock struct {
	Norm *GroupNorm
	Attn *Attention
}

// NewAttentionBlock binds prefix.group_norm and prefix.to_q, to_k, to_v,
// to_out.0 (all with biases; [C, C] Linear weights, or [C, C, 1, 1] as
// original-layout checkpoints store them) for channels split into heads.
func NewAttentionBlock(src weights.Source, prefix string, channels, heads, groups int, eps float32) (*AttentionBlock, error) {
	norm, err := NewGroupNorm(src, prefix+".group_norm", groups, channels, eps)
	if err != nil {
		return nil, err
	}
	attn, err := NewAttention(src, prefix, channels, channels, heads, channels/heads, true)
	if err != nil {
		return nil, err
	}
	return &AttentionBlock{Norm: norm, Attn: attn}, nil
}

// Forward maps x [B, C, H, W] to a new [B, C, H, W].
func (a *AttentionBlock) Forward(c *Ctx, x *tensor.Tensor) *tensor.Tensor {
	h, w := x.Shape[2], x.Shape[3]
	n := a.Norm.Forward(c, x, false)
	rows := ToChannelsLast(c, n)
	c.Free(n)
	o := a.Attn.Forward(c, rows, nil)
	c.Free(rows)
	y := ToChannelsFirst(c, o, h, w)
	c.Free(o)
	c.K.Add(y.Data, y.Data, x.Data)
	return y
}
