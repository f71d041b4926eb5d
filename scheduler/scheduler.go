// Package scheduler implements the diffusion schedulers of diffusers v0.21.0
// behind one interface, reproducing diffusers' trajectories to float32
// precision: PNDM (PLMS, skip_prk_steps), DDIM, Euler (optionally with Karras
// sigmas), Euler ancestral, DPM-Solver++ multistep (optionally with Karras
// sigmas) and singlestep, LMS, Heun, KDPM2, KDPM2 ancestral, UniPC and DEIS,
// for epsilon and v_prediction models and the leading, trailing and linspace
// timestep spacings.
//
// A scheduler is made from a diffusers scheduler_config.json:
//
//	cfg, err := scheduler.ParseConfig(scheduler.Euler, raw, nil) // class defaults fill missing keys
//	s, err := scheduler.New(cfg)
//	err = s.SetTimesteps(25)
//	// latents = N(0,1) noise times s.InitNoiseSigma()
//	for k, t := range s.Timesteps() {
//		err = s.ScaleModelInput(in, latents, k)
//		eps := unet(in, t)
//		err = s.Step(latents, eps, latents, k, noise) // noise fills a slice with N(0,1) draws
//	}
//
// ByName maps the command-line names (euler, dpm++2m-karras, ...) to a class
// and the config overrides that select the variant.
//
// Steps are addressed by their index k into Timesteps(), not by timestep
// value: Heun, KDPM2 and PNDM repeat timesteps, and diffusers tells the
// repeats apart by call order, which the index states directly. Schedulers
// are stateful (multistep history, the predictor/corrector phase of Heun and
// KDPM2): call Step once per index, in order, after SetTimesteps. For
// img2img, start at index tStart*Order() (diffusers slices
// timesteps[t_start*order:]) and noise the image with AddNoise at that
// index's timestep; the first step then runs as diffusers' first step does.
//
// Samples are flat float32 slices of any length (a batch [B,C,H,W] is one
// slice). Arithmetic follows diffusers' tensors: float32 wherever diffusers
// computes on float32 tensors, float64 where it uses numpy float64 (the
// interpolated and Karras sigmas, the LMS integrals), numpy's float32 log
// and PyTorch's float32 linspace and cumprod restated exactly. PNDM, DDIM,
// Euler, Euler ancestral, LMS and Heun reproduce diffusers' trajectories bit
// for bit; the solvers that take PyTorch's vectorised log and exp (DPM-Solver,
// UniPC, DEIS, KDPM2) agree to a few 1e-6.
//
// Noise: Step calls noise exactly when diffusers' step draws randn_tensor
// (Euler: once per step, unused with s_churn = 0; Euler ancestral: once per
// step; KDPM2 ancestral: once per call, only the corrector's draw is used),
// so a PyTorch-compatible generator stays in step with diffusers. noise may
// be nil where the draw would be unused.
package scheduler

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Scheduler is one diffusers scheduler after construction.
type Scheduler interface {
	// Config is the resolved configuration.
	Config() Config
	// SetTimesteps prepares n inference steps and resets all step state.
	SetTimesteps(n int) error
	// Timesteps are the model's timesteps, one per model call, as diffusers
	// holds them (integers as whole numbers).
	Timesteps() []float64
	// Order is how many model calls make one inference step (2 for Heun and
	// KDPM2, 1 otherwise); img2img starts at index tStart*Order().
	Order() int
	// InitNoiseSigma scales the initial unit-variance noise.
	InitNoiseSigma() float64
	// ScaleModelInput writes the model input for call k into dst (which may
	// be sample).
	ScaleModelInput(dst, sample []float32, k int) error
	// Step computes the sample after call k from the model output and the
	// sample the model saw (before scaling) into dst (which may be sample or
	// modelOutput).
	Step(dst, modelOutput, sample []float32, k int, noise func(dst []float32)) error
	// PredOriginalSample is the denoised estimate x₀ of the last Step, for
	// the classes whose diffusers step output carries one (DDIM, Euler, Euler
	// ancestral, LMS); nil otherwise. It is overwritten by the next Step.
	PredOriginalSample() []float32
	// AddNoise writes original noised to timestep t (one of Timesteps())
	// into dst, as diffusers' add_noise does for img2img.
	AddNoise(dst, original, noise []float32, t float64) error
}

// New builds the scheduler cfg.Class describes. Use ParseConfig to get a
// Config with the class defaults applied.
func New(cfg Config) (Scheduler, error) {
	if _, ok := classParams[cfg.Class]; !ok {
		return nil, fmt.Errorf("scheduler: unknown class %q (known: %s)", cfg.Class, strings.Join(Classes(), ", "))
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	train, err := newTrainSchedule(&cfg)
	if err != nil {
		return nil, fmt.Errorf("scheduler %s: %w", cfg.Class, err)
	}
	b := base{cfg: cfg, train: train}
	switch cfg.Class {
	case PNDM:
		return &pndm{base: b}, nil
	case DDIM:
		return &ddim{base: b}, nil
	case Euler:
		return &euler{sigmaBase: sigmaBase{base: b}}, nil
	case EulerAncestral:
		return &eulerAncestral{sigmaBase: sigmaBase{base: b}}, nil
	case LMS:
		return &lms{sigmaBase: sigmaBase{base: b}}, nil
	case Heun:
		return &heun{sigmaBase: sigmaBase{base: b}}, nil
	case KDPM2:
		return &kdpm2{sigmaBase: sigmaBase{base: b}}, nil
	case KDPM2Ancestral:
		return &kdpm2{sigmaBase: sigmaBase{base: b}, ancestral: true}, nil
	case DPMSolverMultistep:
		return &dpmMultistep{solverBase: newSolverBase(b)}, nil
	case DPMSolverSinglestep:
		return &dpmSinglestep{solverBase: newSolverBase(b)}, nil
	case UniPCMultistep:
		return &unipc{solverBase: newSolverBase(b)}, nil
	case DEISMultistep:
		return &deis{solverBase: newSolverBase(b)}, nil
	}
	return nil, fmt.Errorf("scheduler: unknown class %q", cfg.Class)
}

// FromConfig is ParseConfig followed by New.
func FromConfig(class string, raw []byte, overrides map[string]any) (Scheduler, error) {
	cfg, err := ParseConfig(class, raw, overrides)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

type namedScheduler struct {
	class     string
	overrides map[string]any
	// label is the sampler's name in AUTOMATIC1111's web UI and API
	// (sampler_name), which PNG parameters carry.
	label string
}

// names are the command-line scheduler names.
var names = map[string]namedScheduler{
	"pndm":           {PNDM, map[string]any{"skip_prk_steps": true}, "PLMS"},
	"ddim":           {DDIM, nil, "DDIM"},
	"euler":          {Euler, map[string]any{"use_karras_sigmas": false}, "Euler"},
	"euler-karras":   {Euler, map[string]any{"use_karras_sigmas": true}, "Euler Karras"},
	"euler-a":        {EulerAncestral, nil, "Euler a"},
	"dpm++2m":        {DPMSolverMultistep, map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": false}, "DPM++ 2M"},
	"dpm++2m-karras": {DPMSolverMultistep, map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": true}, "DPM++ 2M Karras"},
	"dpm-single":     {DPMSolverSinglestep, map[string]any{"algorithm_type": "dpmsolver++", "solver_order": 2}, "DPM++ 2S"},
	"lms":            {LMS, map[string]any{"use_karras_sigmas": false}, "LMS"},
	"heun":           {Heun, map[string]any{"use_karras_sigmas": false}, "Heun"},
	"kdpm2":          {KDPM2, nil, "DPM2"},
	"kdpm2-a":        {KDPM2Ancestral, nil, "DPM2 a"},
	"unipc":          {UniPCMultistep, map[string]any{"use_karras_sigmas": false}, "UniPC"},
	"deis":           {DEISMultistep, map[string]any{"use_karras_sigmas": false}, "DEIS"},
}

// Default is the scheduler name that asks for the model's own scheduler,
// as the empty name does.
const Default = "default"

// IsDefault reports whether name asks for the model's own scheduler.
func IsDefault(name string) bool { return name == "" || strings.EqualFold(name, Default) }

// classLabels are the AUTOMATIC1111 sampler names of the classes, for a
// model's own scheduler.
var classLabels = map[string]string{
	PNDM: "PLMS", DDIM: "DDIM", Euler: "Euler", EulerAncestral: "Euler a",
	DPMSolverMultistep: "DPM++ 2M", DPMSolverSinglestep: "DPM++ 2S", LMS: "LMS",
	Heun: "Heun", KDPM2: "DPM2", KDPM2Ancestral: "DPM2 a",
	UniPCMultistep: "UniPC", DEISMultistep: "DEIS",
}

// Label returns the AUTOMATIC1111 sampler name of a generation that used
// the scheduler name asked for (a command-line name, or Default) and ended
// up with the resolved config cfg.
func Label(name string, cfg Config) string {
	if n, ok := names[strings.ToLower(name)]; ok {
		return n.label
	}
	l := classLabels[cfg.Class]
	if l == "" {
		l = cfg.Class
	}
	if cfg.UseKarrasSigmas {
		l += " Karras"
	}
	return l
}

// ByLabel returns the command-line name of an AUTOMATIC1111 sampler name
// (case-insensitive), for APIs that speak AUTOMATIC1111's vocabulary.
func ByLabel(label string) (name string, ok bool) {
	for n, s := range names {
		if strings.EqualFold(s.label, label) {
			return n, true
		}
	}
	return "", false
}

// Labels lists the AUTOMATIC1111 sampler names ByLabel accepts, in the
// order of Names.
func Labels() []string {
	var out []string
	for _, n := range Names() {
		out = append(out, names[n].label)
	}
	return out
}

// Names lists the command-line scheduler names ByName accepts.
func Names() []string {
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ByName resolves a command-line scheduler name (see Names) or a diffusers
// class name to the class and the overrides to pass to ParseConfig together
// with the model's own scheduler_config.json.
func ByName(name string) (class string, overrides map[string]any, err error) {
	if IsDefault(name) {
		return "", nil, fmt.Errorf("scheduler: %q names no scheduler but the model's own", name)
	}
	if n, ok := names[strings.ToLower(name)]; ok {
		ov := make(map[string]any, len(n.overrides))
		for k, v := range n.overrides {
			ov[k] = v
		}
		return n.class, ov, nil
	}
	if _, ok := classParams[name]; ok {
		return name, map[string]any{}, nil
	}
	return "", nil, fmt.Errorf("scheduler: unknown scheduler %q (known: %s)", name, strings.Join(Names(), ", "))
}

// base holds what every class shares: the config, the training schedule and
// the inference timesteps.
type base struct {
	cfg       Config
	train     *trainSchedule
	timesteps []float64
	n         int // inference steps asked for
}

func (b *base) Config() Config                { return b.cfg }
func (b *base) Timesteps() []float64          { return slices.Clone(b.timesteps) }
func (b *base) Order() int                    { return 1 }
func (b *base) InitNoiseSigma() float64       { return 1 }
func (b *base) PredOriginalSample() []float32 { return nil }

func (b *base) checkSteps(n int) error {
	if n < 1 || n > b.cfg.NumTrainTimesteps {
		return fmt.Errorf("scheduler %s: %d inference steps is out of range [1, %d]", b.cfg.Class, n, b.cfg.NumTrainTimesteps)
	}
	b.n = n
	return nil
}

// checkCall validates a call index and the lengths of the slices.
func (b *base) checkCall(k int, dst []float32, others ...[]float32) error {
	if b.timesteps == nil {
		return fmt.Errorf("scheduler %s: SetTimesteps was not called", b.cfg.Class)
	}
	if k < 0 || k >= len(b.timesteps) {
		return fmt.Errorf("scheduler %s: step index %d is out of range [0, %d)", b.cfg.Class, k, len(b.timesteps))
	}
	for _, o := range others {
		if len(o) != len(dst) {
			return fmt.Errorf("scheduler %s: slice lengths differ (%d and %d)", b.cfg.Class, len(dst), len(o))
		}
	}
	return nil
}

// ScaleModelInput is the identity for the classes whose model input is the
// sample itself.
func (b *base) ScaleModelInput(dst, sample []float32, k int) error {
	if err := b.checkCall(k, dst, sample); err != nil {
		return err
	}
	copy(dst, sample)
	return nil
}

// AddNoise is diffusers' DDPM-style add_noise: sqrt(ᾱ_t)·x + sqrt(1-ᾱ_t)·ε
// at the integer timestep t.
func (b *base) AddNoise(dst, original, noise []float32, t float64) error {
	if len(original) != len(dst) || len(noise) != len(dst) {
		return fmt.Errorf("scheduler %s: add noise: slice lengths differ", b.cfg.Class)
	}
	ti := int(t)
	if !(t >= 0) || ti >= len(b.train.alphasCumprod) {
		return fmt.Errorf("scheduler %s: add noise: timestep %v is out of range", b.cfg.Class, t)
	}
	a := b.train.alphasCumprod[ti]
	sa, sb := sqrt32(a), sqrt32(1-a)
	for i := range dst {
		dst[i] = sa*original[i] + sb*noise[i]
	}
	return nil
}

// alphaAt returns ᾱ_t, or final (the "previous" alpha before t = 0) for
// t < 0.
func (b *base) alphaAt(t int, final float32) (float32, error) {
	if t < 0 {
		return final, nil
	}
	if t >= len(b.train.alphasCumprod) {
		return 0, fmt.Errorf("scheduler %s: timestep %d is out of range", b.cfg.Class, t)
	}
	return b.train.alphasCumprod[t], nil
}

// finalAlpha is the ᾱ PNDM and DDIM step to past the last timestep.
func (b *base) finalAlpha() float32 {
	if b.cfg.SetAlphaToOne {
		return 1
	}
	return b.train.alphasCumprod[0]
}

// spacedInts returns the class's inference timesteps for n steps, rounded to
// integers (PNDM, DDIM).
func (b *base) spacedInts(n int) []float64 {
	ts := spacedTimesteps(&b.cfg, n)
	for i := range ts {
		ts[i] = math.RoundToEven(ts[i])
	}
	return ts
}

// checkState verifies that the state kept from earlier calls matches a
// sample of n values.
func (b *base) checkState(n int, bufs ...[]float32) error {
	for _, buf := range bufs {
		if buf != nil && len(buf) != n {
			return fmt.Errorf("scheduler %s: sample length changed from %d to %d between steps", b.cfg.Class, len(buf), n)
		}
	}
	return nil
}

// clone copies src into buf (reallocating when the length differs) and
// returns it.
func clone(buf, src []float32) []float32 {
	if len(buf) != len(src) {
		buf = make([]float32, len(src))
	}
	copy(buf, src)
	return buf
}
