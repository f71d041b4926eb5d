// Package pipeline turns the networks into text-to-image and image-to-image
// generation with the same numbers as diffusers' StableDiffusionPipeline and
// StableDiffusionImg2ImgPipeline (v0.21): classifier-free guidance with the
// unconditional batch first, random draws from one PyTorch-compatible
// generator in diffusers' order, the scheduler loop, VAE decoding and
// diffusers' post-processing (clamp, scale to 0..255, round half to even).
//
// The pipeline owns cancellation (a context checked between model calls)
// and progress (a callback per model call); it prints nothing.
package pipeline

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/rng"
	"github.com/pigment-sd/pigment/scheduler"
	"github.com/pigment-sd/pigment/tensor"
)

// MaxTokens is the CLIP context length of every SD model.
const MaxTokens = 77

// Tokenizer turns a prompt into MaxTokens ids (bos, body, eos, padding).
type Tokenizer interface {
	EncodePadded(text string, maxLen int) (ids []int, truncated bool)
}

// TextEncoder maps [batch, 77] ids to [batch, 77, C] embeddings.
type TextEncoder interface {
	Forward(ids []int, batch int) (*tensor.Tensor, error)
}

// UNet predicts noise (or v) for latents [B,4,h,w] at timestep t given the
// text embeddings [B,77,C].
type UNet interface {
	Forward(sample *tensor.Tensor, timestep float64, context *tensor.Tensor) (*tensor.Tensor, error)
}

// VAE decodes latents to images in [-1,1] and encodes images to the mean and
// log-variance of the latent distribution, stopping with ctx.Err() when
// ctx is done.
type VAE interface {
	DecodeContext(ctx context.Context, latents *tensor.Tensor) (*tensor.Tensor, error)
	EncodeContext(ctx context.Context, image *tensor.Tensor) (mean, logvar *tensor.Tensor, err error)
}

// Model is everything a generation needs.
type Model struct {
	Tokenizer   Tokenizer
	TextEncoder TextEncoder
	UNet        UNet
	VAE         VAE
	// SchedulerClass and SchedulerConfig are the model's own scheduler
	// (scheduler/scheduler_config.json and its _class_name).
	SchedulerClass  string
	SchedulerConfig []byte
	// ScalingFactor is the VAE latent scale (0.18215 for SD 1.x and 2.x).
	ScalingFactor float64
	// VAEScaleFactor is the ratio of image to latent size (8 for real SD).
	VAEScaleFactor int
	// LatentChannels is the UNet's input channel count (4).
	LatentChannels int
	// SampleSize is the UNet's native latent size (64 for SD 1.5: 512
	// pixels).
	SampleSize int

	// evict drops a component's memory-mapped weights from resident
	// memory once a generation is done with it (set by Load).
	evict map[component.Name]func() error
}

// release ends a phase of a generation: the network's idle activation
// buffers go back to the runtime and its memory-mapped weights leave the
// resident set until the next generation reads them (from the page
// cache), so the text encoder, UNet and VAE never need to be resident
// together.
func (m *Model) release(c component.Name, net any) {
	releaseScratch(net)
	if e := m.evict[c]; e != nil {
		_ = e() // advisory: a failure only leaves the pages resident
	}
}

// Params are the settings of one generation.
type Params struct {
	Prompt string
	// NegativePrompt is used for the unconditional branch of classifier-free
	// guidance; empty means "" as in diffusers.
	NegativePrompt string
	Steps          int
	// Guidance is the classifier-free guidance scale; at or below 1 the
	// unconditional branch is skipped entirely, as diffusers does.
	Guidance float64
	// Seed seeds the PyTorch-compatible generator (PyTorch keeps the low
	// 32 bits).
	Seed uint64
	// Scheduler is a command-line scheduler name (see scheduler.Names) or
	// "" for the model's own.
	Scheduler string
	// SchedulerOverrides are extra config keys, applied after the name's.
	SchedulerOverrides map[string]any
	Width, Height      int
	// ImageCount is the number of images generated in one batch.
	ImageCount int
	// InitImage switches to img2img: a [1,3,H,W] tensor in [-1,1] (see
	// ImageToTensor), noised to Strength of the schedule.
	InitImage *tensor.Tensor
	Strength  float64
	// Latents, when set, replace the initial noise draw of txt2img
	// ([ImageCount,4,h,w], before scaling by the scheduler's initial noise
	// sigma), as diffusers' latents argument does.
	Latents *tensor.Tensor
	// Progress is called after every model call with the call count done
	// and the total; it may be nil.
	Progress func(done, total int)
	// OnStep, when set, is called after every scheduler step with the call
	// index, its timestep and the latents (which it must not keep).
	OnStep func(k int, t float64, latents *tensor.Tensor)
	// OnPhase, when set, is called as each phase of the generation starts,
	// after the previous phase's idle buffers were released (a command
	// line tool may call debug.FreeOSMemory there, to hand their pages
	// back to the system at once; a server may report the phase).
	OnPhase func(Phase)
}

// Result is the outcome of a generation.
type Result struct {
	Images []*image.RGBA
	// Latents are the final latents [B,4,h,w] (before VAE scaling).
	Latents *tensor.Tensor
	// Decoded is the VAE output [B,3,H,W] in about [-1,1].
	Decoded *tensor.Tensor
	// Timesteps are the timesteps the UNet ran at.
	Timesteps []float64
	// SchedulerConfig is the resolved scheduler configuration.
	SchedulerConfig scheduler.Config
	// PromptTruncated reports that the prompt had more than 75 tokens.
	PromptTruncated bool
}

// ParamError reports invalid generation settings.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

func paramErr(format string, args ...any) error {
	return &ParamError{Msg: fmt.Sprintf(format, args...)}
}

// Validate checks p against m without running anything.
func (m *Model) Validate(p *Params) error {
	f := m.ScaleFactor()
	if p.Steps < 1 {
		return paramErr("steps must be at least 1, got %d", p.Steps)
	}
	if p.Steps > 1000 {
		return paramErr("steps must be at most 1000, got %d", p.Steps)
	}
	if p.Width <= 0 || p.Height <= 0 {
		return paramErr("width and height must be positive, got %dx%d", p.Width, p.Height)
	}
	if p.Width%f != 0 || p.Height%f != 0 {
		return paramErr("width and height must be multiples of %d, got %dx%d", f, p.Width, p.Height)
	}
	if p.ImageCount < 1 {
		return paramErr("image count must be at least 1, got %d", p.ImageCount)
	}
	if math.IsNaN(p.Guidance) || math.IsInf(p.Guidance, 0) {
		return paramErr("guidance must be a finite number")
	}
	if p.InitImage != nil {
		if !(p.Strength >= 0 && p.Strength <= 1) {
			return paramErr("strength must be in [0, 1], got %v", p.Strength)
		}
		s := p.InitImage.Shape
		if len(s) != 4 || s[0] != 1 || s[1] != 3 || s[2] != p.Height || s[3] != p.Width {
			return paramErr("init image tensor has shape %v, want [1,3,%d,%d]", s, p.Height, p.Width)
		}
	}
	return nil
}

// NewScheduler builds the scheduler p asks for from the model's config, as
// diffusers' from_config does (keys the file lacks take the new class's
// defaults).
func (m *Model) NewScheduler(name string, overrides map[string]any) (scheduler.Scheduler, error) {
	class, ov := m.SchedulerClass, map[string]any{}
	if !scheduler.IsDefault(name) {
		var err error
		class, ov, err = scheduler.ByName(name)
		if err != nil {
			return nil, err
		}
	}
	for k, v := range overrides {
		ov[k] = v
	}
	return scheduler.FromConfig(class, m.SchedulerConfig, ov)
}

// Phase names a stage of a generation, reported through Params.OnPhase.
type Phase string

// The phases of a generation, in order. PhaseEncodeImage happens only in
// img2img.
const (
	PhaseEncodePrompt Phase = "encode_prompt"
	PhaseEncodeImage  Phase = "encode_image"
	PhaseDenoise      Phase = "denoise"
	PhaseDecode       Phase = "decode"
)

// Generate runs txt2img, or img2img when p.InitImage is set: it encodes
// the prompt, prepares the initial latents, runs the denoising loop and
// decodes the result. ctx is checked between model calls and between
// the VAE's bands of work.
func (m *Model) Generate(ctx context.Context, p Params) (*Result, error) {
	if err := m.Validate(&p); err != nil {
		return nil, err
	}
	sched, err := m.NewScheduler(p.Scheduler, p.SchedulerOverrides)
	if err != nil {
		return nil, err
	}
	if err := sched.SetTimesteps(p.Steps); err != nil {
		return nil, err
	}
	res := &Result{SchedulerConfig: sched.Config()}

	p.phase(PhaseEncodePrompt)
	cond, err := m.encodePrompt(p.Prompt, p.NegativePrompt, p.ImageCount, p.Guidance > 1)
	if err != nil {
		return nil, err
	}
	res.PromptTruncated = cond.truncated
	m.release(component.TextEncoder, m.TextEncoder)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	gen := rng.New(p.Seed)
	start, err := m.prepareLatents(ctx, &p, sched, gen)
	if err != nil {
		return nil, err
	}
	res.Timesteps = sched.Timesteps()[start.first:]
	if p.InitImage != nil {
		releaseScratch(m.VAE) // the encoder's buffers
	}

	p.phase(PhaseDenoise)
	if err := m.denoise(ctx, &p, sched, gen, start, cond); err != nil {
		return nil, err
	}
	res.Latents = start.latents
	m.release(component.UNet, m.UNet)

	p.phase(PhaseDecode)
	res.Decoded, err = m.decode(ctx, start.latents)
	if err != nil {
		return nil, err
	}
	m.release(component.VAE, m.VAE)
	res.Images, err = TensorToImages(res.Decoded)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (p *Params) phase(ph Phase) {
	if p.OnPhase != nil {
		p.OnPhase(ph)
	}
}

// conditioning is the text conditioning of a batch of B images.
type conditioning struct {
	// embeddings are [B,77,C], or [2B,77,C] with guidance: the negative
	// prompt's B copies first, then the prompt's, as diffusers batches
	// classifier-free guidance.
	embeddings *tensor.Tensor
	guided     bool
	// truncated reports that the prompt had more than 75 tokens.
	truncated bool
}

// encodePrompt encodes the prompt and, with guidance, the negative prompt
// for the unconditional branch; each is encoded on its own and repeated
// batch times.
func (m *Model) encodePrompt(prompt, negative string, batch int, guided bool) (*conditioning, error) {
	ids, truncated := m.Tokenizer.EncodePadded(prompt, MaxTokens)
	cond, err := m.TextEncoder.Forward(ids, 1)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	var parts []*tensor.Tensor
	if guided {
		nids, _ := m.Tokenizer.EncodePadded(negative, MaxTokens)
		uncond, err := m.TextEncoder.Forward(nids, 1)
		if err != nil {
			return nil, fmt.Errorf("text encoder: %w", err)
		}
		parts = append(parts, repeat(uncond, batch))
	}
	parts = append(parts, repeat(cond, batch))
	return &conditioning{embeddings: concat(parts...), guided: guided, truncated: truncated}, nil
}

// start is where denoising begins.
type start struct {
	latents *tensor.Tensor // [B,C,h,w], scaled for the first timestep
	first   int            // index of the first timestep to run
}

// latentShape returns the batch, channels, height and width of p's
// latents.
func (m *Model) latentShape(p *Params) (b, c, h, w int) {
	f := m.ScaleFactor()
	c = m.LatentChannels
	if c <= 0 {
		c = 4
	}
	return p.ImageCount, c, p.Height / f, p.Width / f
}

// prepareLatents draws (or takes) the initial noise of txt2img, scaled by
// the scheduler's initial sigma, or for img2img encodes the init image,
// samples its latent and noises it to the strength's point of the
// schedule; the random draws come from gen in diffusers' order.
func (m *Model) prepareLatents(ctx context.Context, p *Params, sched scheduler.Scheduler, gen *rng.Generator) (*start, error) {
	B, lc, h, w := m.latentShape(p)
	latents := tensor.New(B, lc, h, w)
	if p.InitImage == nil {
		if p.Latents != nil {
			if !tensor.SameShape(p.Latents.Shape, latents.Shape) {
				return nil, paramErr("initial latents have shape %v, want %v", p.Latents.Shape, latents.Shape)
			}
			copy(latents.Data, p.Latents.Data)
		} else {
			gen.RandnInto(latents.Data)
		}
		s := float32(sched.InitNoiseSigma())
		for i := range latents.Data {
			latents.Data[i] *= s
		}
		return &start{latents: latents}, nil
	}

	timesteps := sched.Timesteps()
	initT := min(int(float64(p.Steps)*p.Strength), p.Steps)
	tStart := max(p.Steps-initT, 0)
	first := tStart * sched.Order()
	if initT < 1 || first >= len(timesteps) {
		return nil, paramErr("strength %v with %d steps leaves no denoising step (steps x strength must be at least 1)", p.Strength, p.Steps)
	}
	p.phase(PhaseEncodeImage)
	mean, logvar, err := m.VAE.EncodeContext(ctx, p.InitImage)
	if err != nil {
		return nil, fmt.Errorf("vae encoder: %w", err)
	}
	per := lc * h * w
	if mean.Len() != per {
		return nil, fmt.Errorf("vae encoder: latent of %d values, want %d", mean.Len(), per)
	}
	encNoise := gen.Randn(per)
	sf := float32(m.ScalingFactor)
	lat0 := make([]float32, B*per)
	for i := 0; i < per; i++ {
		std := float32(math.Exp(0.5 * float64(logvar.Data[i])))
		v := sf * (mean.Data[i] + std*encNoise[i])
		for b := 0; b < B; b++ {
			lat0[b*per+i] = v
		}
	}
	noise := gen.Randn(B * per)
	if err := sched.AddNoise(latents.Data, lat0, noise, timesteps[first]); err != nil {
		return nil, err
	}
	return &start{latents: latents, first: first}, nil
}

// denoise runs the scheduler loop from st.first on st.latents in place:
// the UNet on the (doubled, with guidance) scaled latents, the guidance
// combination, the scheduler step.
func (m *Model) denoise(ctx context.Context, p *Params, sched scheduler.Scheduler, gen *rng.Generator, st *start, cond *conditioning) error {
	timesteps := sched.Timesteps()
	latents := st.latents
	B, lc, h, w := latents.Shape[0], latents.Shape[1], latents.Shape[2], latents.Shape[3]
	per := lc * h * w
	calls := len(timesteps) - st.first
	batch := B
	if cond.guided {
		batch = 2 * B
	}
	in := tensor.New(batch, lc, h, w)
	eps := make([]float32, B*per)
	noiseFn := func(dst []float32) { gen.RandnInto(dst) }
	if p.Progress != nil {
		p.Progress(0, calls)
	}
	for k := st.first; k < len(timesteps); k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := sched.ScaleModelInput(in.Data[:B*per], latents.Data, k); err != nil {
			return err
		}
		if cond.guided {
			copy(in.Data[B*per:], in.Data[:B*per])
		}
		out, err := m.UNet.Forward(in, timesteps[k], cond.embeddings)
		if err != nil {
			return fmt.Errorf("unet: %w", err)
		}
		if cond.guided {
			g := float32(p.Guidance)
			u, c := out.Data[:B*per], out.Data[B*per:]
			for i := range eps {
				eps[i] = u[i] + g*(c[i]-u[i])
			}
		} else {
			copy(eps, out.Data)
		}
		if err := sched.Step(latents.Data, eps, latents.Data, k, noiseFn); err != nil {
			return err
		}
		if p.OnStep != nil {
			p.OnStep(k, timesteps[k], latents)
		}
		if p.Progress != nil {
			p.Progress(k-st.first+1, calls)
		}
	}
	return ctx.Err()
}

// decode divides the latents by the VAE scaling factor and decodes them
// to images [B,3,H,W] in about [-1,1].
func (m *Model) decode(ctx context.Context, latents *tensor.Tensor) (*tensor.Tensor, error) {
	scaled := latents.Clone()
	inv := float32(1 / m.ScalingFactor)
	for i := range scaled.Data {
		scaled.Data[i] *= inv
	}
	decoded, err := m.VAE.DecodeContext(ctx, scaled)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("vae decoder: %w", err)
	}
	return decoded, nil
}

// scratchHolder is a network that keeps activation buffers between calls.
type scratchHolder interface {
	Arena() *nn.Arena
}

// releaseScratch returns a network's idle activation buffers to the Go
// runtime, so the phases of a generation (text, denoising, decoding) do
// not hold each other's peak memory. Handing the pages back to the
// operating system at once (debug.FreeOSMemory) is the caller's choice,
// made in Params.OnPhase.
func releaseScratch(net any) {
	h, ok := net.(scratchHolder)
	if !ok || h.Arena().Stats().Held-h.Arena().Stats().InUse < 64<<20 {
		return
	}
	h.Arena().Release()
}

func repeat(t *tensor.Tensor, n int) *tensor.Tensor {
	shape := append([]int{t.Shape[0] * n}, t.Shape[1:]...)
	out := tensor.New(shape...)
	for i := 0; i < n; i++ {
		copy(out.Data[i*t.Len():], t.Data)
	}
	return out
}

func concat(ts ...*tensor.Tensor) *tensor.Tensor {
	if len(ts) == 1 {
		return ts[0]
	}
	n := 0
	for _, t := range ts {
		n += t.Shape[0]
	}
	shape := append([]int{n}, ts[0].Shape[1:]...)
	out := tensor.New(shape...)
	off := 0
	for _, t := range ts {
		copy(out.Data[off:], t.Data)
		off += t.Len()
	}
	return out
}
