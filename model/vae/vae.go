// Package vae is Stable Diffusion's image autoencoder, diffusers'
// AutoencoderKL (v0.21): the encoder maps an image in [-1, 1] to the mean
// and log-variance of a diagonal Gaussian over latents, the decoder maps
// latents back to an image.
//
// Weights use diffusers' state-dict names (encoder.*, decoder.*,
// quant_conv.*, post_quant_conv.*; the mid-block attention as
// *.mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}).
//
// Memory: images are decoded and encoded one at a time, and every layer
// runs band by band over rows (see band.go), on activations held in row
// pieces that are freed as soon as the next layer has read them. GroupNorm
// statistics are computed over the whole image, so the result equals the
// whole-tensor computation up to float32 rounding; no tiles are blended.
// The least a resnet can hold at once is its input (for the residual) and
// its conv1 output (whose statistics norm2 needs before any of it can be
// normalized): at 512x512 that is two 128-channel full-resolution tensors,
// 256 MiB, and a decode peaks at 277 MiB of live activations, an encode at
// 265 MiB (768x768: 637 and 625 MiB; TestActivationMemory). Going lower
// would take recomputation instead of storage: the decoder's upsampled
// 256-channel full-resolution tensor alone is 256 MiB, and recomputing it
// and the full-resolution conv1 outputs would add about a quarter to the
// decoder's arithmetic. Activations come from an arena reused across
// calls, which holds about 25% more than the peak; the kernels' own
// scratch comes on top.
package vae

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// Options are the network options shared by all models. The VAE's hook
// names are "post_quant_conv", "decoder.conv_in", "decoder.mid_block",
// "decoder.up_blocks.N" (decoding) and "encoder.down_blocks.N",
// "encoder.mid_block", "quant_conv" (encoding; the raw moments before the
// log-variance clamp).
type Options = nn.Options

// Config is diffusers' AutoencoderKL configuration. Keys missing from
// config.json take diffusers' defaults.
type Config struct {
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	SampleSize       int      `json:"sample_size"`
	// ScalingFactor multiplies encoded latents before diffusion; Decode
	// expects latents already divided by it.
	ScalingFactor        float64 `json:"scaling_factor"`
	ForceUpcast          bool    `json:"force_upcast"`
	MidBlockAddAttention bool    `json:"mid_block_add_attention"`
	UseQuantConv         bool    `json:"use_quant_conv"`
	UsePostQuantConv     bool    `json:"use_post_quant_conv"`
}

// DefaultConfig is diffusers' AutoencoderKL default.
func DefaultConfig() Config {
	return Config{
		InChannels: 3, OutChannels: 3,
		DownBlockTypes: []string{"DownEncoderBlock2D"}, UpBlockTypes: []string{"UpDecoderBlock2D"},
		BlockOutChannels: []int{64}, LayersPerBlock: 1, ActFn: "silu", LatentChannels: 4,
		NormNumGroups: 32, SampleSize: 32, ScalingFactor: 0.18215, ForceUpcast: true,
		MidBlockAddAttention: true, UseQuantConv: true, UsePostQuantConv: true,
	}
}

// Limits on config values, so a hostile config cannot ask for absurd sizes.
const (
	maxChannels = 1 << 15
	maxBlocks   = 16
	maxLayers   = 64
)

// ParseConfig reads a diffusers AutoencoderKL config.json and validates it.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("vae: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks that the network can be built from c.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0 || n > maxBlocks:
		return fmt.Errorf("vae: config: %d blocks (want 1..%d)", n, maxBlocks)
	case len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n:
		return fmt.Errorf("vae: config: down_block_types (%d), up_block_types (%d) and block_out_channels (%d) differ in length",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	case c.InChannels <= 0 || c.InChannels > maxChannels || c.OutChannels <= 0 || c.OutChannels > maxChannels:
		return fmt.Errorf("vae: config: in_channels %d / out_channels %d out of range", c.InChannels, c.OutChannels)
	case c.LatentChannels <= 0 || c.LatentChannels > maxChannels:
		return fmt.Errorf("vae: config: latent_channels %d out of range", c.LatentChannels)
	case c.LayersPerBlock <= 0 || c.LayersPerBlock > maxLayers:
		return fmt.Errorf("vae: config: layers_per_block %d out of range", c.LayersPerBlock)
	case c.NormNumGroups <= 0:
		return fmt.Errorf("vae: config: norm_num_groups %d out of range", c.NormNumGroups)
	case c.ActFn != "silu":
		return fmt.Errorf("vae: config: act_fn %q is not supported (silu)", c.ActFn)
	}
	for i := 0; i < n; i++ {
		if ch := c.BlockOutChannels[i]; ch <= 0 || ch > maxChannels || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("vae: config: block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
		if c.DownBlockTypes[i] != "DownEncoderBlock2D" {
			return fmt.Errorf("vae: config: down block type %q is not supported (DownEncoderBlock2D)", c.DownBlockTypes[i])
		}
		if c.UpBlockTypes[i] != "UpDecoderBlock2D" {
			return fmt.Errorf("vae: config: up block type %q is not supported (UpDecoderBlock2D)", c.UpBlockTypes[i])
		}
	}
	return nil
}

// VAE is the autoencoder. Encode and Decode are not safe for concurrent
// use.
type VAE struct {
	cfg  Config
	opts Options
	ctx  *nn.Ctx

	quantConv, postQuantConv *nn.Conv2d // nil when the config turns them off
	enc, dec                 coder

	tune tuning
	// call is the context of the Decode or Encode in progress, checked
	// before every band of work.
	call context.Context
}

// coder is the encoder or the decoder: conv_in, blocks, mid block,
// GroupNorm+SiLU, conv_out.
type coder struct {
	convIn  *nn.Conv2d
	blocks  []*block
	mid     [2]*nn.ResnetBlock2D
	attn    *nn.AttentionBlock // nil without mid-block attention
	normOut *nn.GroupNorm
	convOut *nn.Conv2d
}

type block struct {
	resnets    []*nn.ResnetBlock2D
	downsample *nn.Downsample2D
	upsample   *nn.Upsample2D
}

// GroupNorm eps of every VAE norm.
const eps = 1e-6

// New builds the autoencoder from a diffusers config.json and its weights.
// At most one Options value is used.
func New(cfg []byte, src weights.Source, k kernels.Kernels, opts ...Options) (*VAE, error) {
	c, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	v, err := build(c, src)
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	v.opts, v.ctx = o, nn.NewCtx(k, o)
	return v, nil
}

// WeightShapes lists every tensor the autoencoder reads, with its shape.
// It returns nil if cfg is invalid.
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
func (v *VAE) Config() Config { return v.cfg }

// Arena exposes the model's activation arena (for memory statistics, or
// Release after an unusual image size).
func (v *VAE) Arena() *nn.Arena { return v.ctx.Arena }

func build(c Config, src weights.Source) (*VAE, error) {
	v := &VAE{cfg: c}
	n := len(c.BlockOutChannels)
	g := c.NormNumGroups
	top := c.BlockOutChannels[n-1]
	lat := c.LatentChannels
	var err error

	mid := func(cd *coder, p string) error {
		for j := 0; j < 2; j++ {
			if cd.mid[j], err = nn.NewResnetBlock2D(src, fmt.Sprintf("%s.mid_block.resnets.%d", p, j), top, top, 0, g, eps); err != nil {
				return err
			}
		}
		if c.MidBlockAddAttention {
			cd.attn, err = nn.NewAttentionBlock(src, p+".mid_block.attentions.0", top, 1, g, eps)
		}
		return err
	}

	// Encoder.
	e := &v.enc
	if e.convIn, err = nn.NewConv2d(src, "encoder.conv_in", c.InChannels, c.BlockOutChannels[0], 3, 1, 1); err != nil {
		return nil, err
	}
	out := c.BlockOutChannels[0]
	for i := 0; i < n; i++ {
		in := out
		out = c.BlockOutChannels[i]
		p := "encoder.down_blocks." + strconv.Itoa(i)
		b := &block{}
		for j := 0; j < c.LayersPerBlock; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.NewResnetBlock2D(src, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, 0, g, eps)
			if err != nil {
				return nil, err
			}
			b.resnets = append(b.resnets, r)
		}
		if i < n-1 {
			if b.downsample, err = nn.NewDownsample2D(src, p+".downsamplers.0", out, 0); err != nil {
				return nil, err
			}
		}
		e.blocks = append(e.blocks, b)
	}
	if err := mid(e, "encoder"); err != nil {
		return nil, err
	}
	if e.normOut, err = nn.NewGroupNorm(src, "encoder.conv_norm_out", g, top, eps); err != nil {
		return nil, err
	}
	if e.convOut, err = nn.NewConv2d(src, "encoder.conv_out", top, 2*lat, 3, 1, 1); err != nil {
		return nil, err
	}
	if c.UseQuantConv {
		if v.quantConv, err = nn.NewConv2d(src, "quant_conv", 2*lat, 2*lat, 1, 1, 0); err != nil {
			return nil, err
		}
	}

	// Decoder.
	if c.UsePostQuantConv {
		if v.postQuantConv, err = nn.NewConv2d(src, "post_quant_conv", lat, lat, 1, 1, 0); err != nil {
			return nil, err
		}
	}
	d := &v.dec
	if d.convIn, err = nn.NewConv2d(src, "decoder.conv_in", lat, top, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := mid(d, "decoder"); err != nil {
		return nil, err
	}
	out = top
	for i := 0; i < n; i++ {
		in := out
		out = c.BlockOutChannels[n-1-i]
		p := "decoder.up_blocks." + strconv.Itoa(i)
		b := &block{}
		for j := 0; j < c.LayersPerBlock+1; j++ {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.NewResnetBlock2D(src, fmt.Sprintf("%s.resnets.%d", p, j), rin, out, 0, g, eps)
			if err != nil {
				return nil, err
			}
			b.resnets = append(b.resnets, r)
		}
		if i < n-1 {
			if b.upsample, err = nn.NewUpsample2D(src, p+".upsamplers.0", out); err != nil {
				return nil, err
			}
		}
		d.blocks = append(d.blocks, b)
	}
	if d.normOut, err = nn.NewGroupNorm(src, "decoder.conv_norm_out", g, c.BlockOutChannels[0], eps); err != nil {
		return nil, err
	}
	if d.convOut, err = nn.NewConv2d(src, "decoder.conv_out", c.BlockOutChannels[0], c.OutChannels, 3, 1, 1); err != nil {
		return nil, err
	}
	return v, nil
}

func checkNCHW(what string, t *tensor.Tensor, ch int) error {
	if t == nil || len(t.Shape) != 4 || t.Shape[1] != ch || t.Shape[0] <= 0 || t.Shape[2] <= 0 || t.Shape[3] <= 0 ||
		len(t.Data) != tensor.NumElements(t.Shape) {
		var shape []int
		if t != nil {
			shape = t.Shape
		}
		return fmt.Errorf("vae: %s shape %v, want [batch, %d, height, width]", what, shape, ch)
	}
	return nil
}

// Decode maps latents [B, latent_channels, h, w] (already divided by the
// scaling factor) to an image [B, out_channels, h·2^(n-1), w·2^(n-1)]
// (8x for Stable Diffusion), values roughly in [-1, 1]. Any size works.
// Images are decoded one at a time.
func (v *VAE) Decode(latents *tensor.Tensor) (*tensor.Tensor, error) {
	return v.DecodeContext(context.Background(), latents)
}

// DecodeContext is Decode that stops when ctx is done: the context is
// checked before every band of rows, so a cancelled decode returns
// ctx.Err() after at most one band of work.
func (v *VAE) DecodeContext(ctx context.Context, latents *tensor.Tensor) (out *tensor.Tensor, err error) {
	if err := checkNCHW("latents", latents, v.cfg.LatentChannels); err != nil {
		return nil, err
	}
	defer v.watch(ctx, &err)()
	bsz, h, w := latents.Shape[0], latents.Shape[2], latents.Shape[3]
	scale := 1 << (len(v.cfg.BlockOutChannels) - 1)
	out = tensor.New(bsz, v.cfg.OutChannels, h*scale, w*scale)
	in, per := len(latents.Data)/bsz, len(out.Data)/bsz
	em := &emitter{hook: v.opts.Hook, batch: bsz}
	for n := range bsz {
		em.n = n
		v.decode(latents.Data[n*in:(n+1)*in], h, w, out.Data[n*per:(n+1)*per], em)
	}
	em.flush()
	return out, nil
}

// stopped carries a cancelled context's error from a band loop up to the
// Decode or Encode that runs it.
type stopped struct{ err error }

// watch makes ctx the context of the call in progress. The function it
// returns, deferred by Decode and Encode, turns a stop raised by
// checkCancel into the call's error and forgets the buffers the
// abandoned bands held.
func (v *VAE) watch(ctx context.Context, err *error) func() {
	v.call = ctx
	return func() {
		v.call = nil
		r := recover()
		if r == nil {
			return
		}
		s, ok := r.(stopped)
		if !ok {
			panic(r)
		}
		v.ctx.Arena.Abandon()
		*err = s.err
	}
}

// checkCancel stops the call in progress when its context is done.
func (v *VAE) checkCancel() {
	if v.call == nil {
		return
	}
	if err := v.call.Err(); err != nil {
		panic(stopped{err})
	}
}

// decode decodes the latents z [latent_channels, h, w] of one image into
// img [out_channels, H, W].
func (v *VAE) decode(z []float32, h, w int, img []float32, em *emitter) {
	c := v.ctx
	d := &v.dec
	x := viewOf(z, v.cfg.LatentChannels, h, w)
	if v.postQuantConv != nil {
		x = v.conv(c, v.postQuantConv, x, nil, false)
		em.emit("post_quant_conv", x)
	}
	x = v.conv(c, d.convIn, x, nil, true)
	em.emit("decoder.conv_in", x)
	x = v.mid(c, d, x)
	em.emit("decoder.mid_block", x)
	for i, b := range d.blocks {
		for j, r := range b.resnets {
			// The last resnet before an upsampling needs no statistics.
			x = v.resnet(c, r, x, b.upsample == nil || j < len(b.resnets)-1)
		}
		if b.upsample != nil {
			x = v.upsample(c, b.upsample, x)
		}
		em.emit("decoder.up_blocks."+strconv.Itoa(i), x)
	}
	y := v.conv(c, d.convOut, x, x.stats(c.K.Pool(), d.normOut), true)
	y.copyRows(img, 0, y.h)
	y.free(c)
}

// Encode maps an image [B, in_channels, H, W] with values in [-1, 1] to the
// latent distribution's mean and log-variance, each [B, latent_channels,
// H/2^(n-1), W/2^(n-1)] (odd sizes round down); the log-variance is clamped
// to [-30, 20] as diffusers' DiagonalGaussianDistribution does. Sampling
// (mean + exp(logvar/2)·noise) and the scaling factor are left to the
// caller. Images are encoded one at a time.
func (v *VAE) Encode(image *tensor.Tensor) (mean, logvar *tensor.Tensor, err error) {
	return v.EncodeContext(context.Background(), image)
}

// EncodeContext is Encode that stops, as DecodeContext does, when ctx is
// done.
func (v *VAE) EncodeContext(ctx context.Context, image *tensor.Tensor) (mean, logvar *tensor.Tensor, err error) {
	if err := checkNCHW("image", image, v.cfg.InChannels); err != nil {
		return nil, nil, err
	}
	defer v.watch(ctx, &err)()
	bsz, h, w := image.Shape[0], image.Shape[2], image.Shape[3]
	in := len(image.Data) / bsz
	em := &emitter{hook: v.opts.Hook, batch: bsz}
	for n := range bsz {
		em.n = n
		moments := v.encode(image.Data[n*in:(n+1)*in], h, w, em)
		// moments = cat(mean, logvar) along channels.
		lat := v.cfg.LatentChannels
		if mean == nil {
			mean, logvar = tensor.New(bsz, lat, moments.h, moments.w), tensor.New(bsz, lat, moments.h, moments.w)
		}
		per := lat * moments.h * moments.w
		src := moments.tensor().Data
		copy(mean.Data[n*per:(n+1)*per], src[:per])
		lv := logvar.Data[n*per : (n+1)*per]
		for i, x := range src[per:] {
			lv[i] = min(max(x, -30), 20)
		}
		moments.free(v.ctx)
	}
	em.flush()
	return mean, logvar, nil
}

// encode encodes one image [in_channels, h, w] into the moments
// [2·latent_channels, h', w'].
func (v *VAE) encode(img []float32, h, w int, em *emitter) *act {
	c := v.ctx
	e := &v.enc
	x := v.conv(c, e.convIn, viewOf(img, v.cfg.InChannels, h, w), nil, false)
	for i, b := range e.blocks {
		for j, r := range b.resnets {
			// The last resnet before a downsampling needs no statistics.
			x = v.resnet(c, r, x, b.downsample == nil || j < len(b.resnets)-1)
		}
		if b.downsample != nil {
			x = v.conv(c, b.downsample.Conv, x, nil, true)
		}
		em.emit("encoder.down_blocks."+strconv.Itoa(i), x)
	}
	x = v.mid(c, e, x)
	em.emit("encoder.mid_block", x)
	m := v.conv(c, e.convOut, x, x.stats(c.K.Pool(), e.normOut), true)
	if v.quantConv != nil {
		m = v.conv(c, v.quantConv, m, nil, true)
		em.emit("quant_conv", m)
	}
	m.join(c)
	return m
}

// emitter passes activations to the hook. With several images, processed
// one at a time, it gathers each name's images and passes the whole batch
// once every image is done.
type emitter struct {
	hook  func(string, *tensor.Tensor)
	batch int
	n     int // the image being processed
	names []string
	acc   map[string]*tensor.Tensor
}

func (e *emitter) emit(name string, a *act) {
	switch {
	case e.hook == nil:
		return
	case e.batch == 1:
		e.hook(name, a.clone())
		return
	}
	t, ok := e.acc[name]
	if !ok {
		if e.acc == nil {
			e.acc = map[string]*tensor.Tensor{}
		}
		t = tensor.New(e.batch, a.c, a.h, a.w)
		e.acc[name] = t
		e.names = append(e.names, name)
	}
	per := a.c * a.h * a.w
	a.copyRows(t.Data[e.n*per:(e.n+1)*per], 0, a.h)
}

// flush passes the gathered batches to the hook.
func (e *emitter) flush() {
	for _, name := range e.names {
		e.hook(name, e.acc[name])
	}
}
