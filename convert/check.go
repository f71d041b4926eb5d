package convert

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/format/pigmentpkg"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	tokclip "github.com/pigment-sd/pigment/tokenizer/clip"
)

// CheckPrompt is the prompt the text encoder check encodes (with the empty
// prompt as the second sequence).
const CheckPrompt = "a photograph of an astronaut riding a horse"

// Inputs of the check.
const (
	checkSeed     = 20240607
	checkTimestep = 981
	checkContext  = 77 // context tokens of the UNet check
	maxCheckSize  = 32 // latent side cap
)

// CheckError reports the networks whose output check fell below the
// threshold. The package is installed nonetheless.
type CheckError struct {
	ThresholdDB float64
	Failed      []CheckFailure // in check order
}

// CheckFailure is one network that failed the check.
type CheckFailure struct {
	Component component.Name
	PSNR      float64
}

func (e *CheckError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = fmt.Sprintf("%s %.2f dB", f.Component, f.PSNR)
	}
	return fmt.Sprintf("convert: output check failed (threshold %.2f dB): %s", e.ThresholdDB, strings.Join(parts, ", "))
}

// checkErr returns a *CheckError for the failing results of c, or nil.
func checkErr(c *pigmentpkg.Check) error {
	e := &CheckError{ThresholdDB: c.ThresholdDB}
	for _, name := range component.Networks() {
		if r := c.Results[string(name)]; r != nil && !r.Pass {
			e.Failed = append(e.Failed, CheckFailure{Component: name, PSNR: r.PSNR})
		}
	}
	if len(e.Failed) == 0 {
		return nil
	}
	return e
}

// checkedParts lists the networks with palettized tensors, in check order.
func checkedParts(items map[component.Name][]item) []component.Name {
	has := map[component.Name]bool{}
	for _, its := range items {
		for _, it := range its {
			if it.bits != 0 {
				has[part(it.folder, it.name)] = true
			}
		}
	}
	var out []component.Name
	for _, p := range component.Networks() {
		if has[p] {
			out = append(out, p)
		}
	}
	return out
}

// runCheck runs every network with palettized tensors from the package in
// dir and from m, and compares their outputs.
func runCheck(ctx context.Context, m *checkpoint.Model, dir string, s *settings, items map[component.Name][]item) (*pigmentpkg.Check, error) {
	res := &pigmentpkg.Check{ThresholdDB: s.CheckThresholdDB, Results: map[string]*pigmentpkg.CheckResult{}}
	parts := checkedParts(items)
	if len(parts) == 0 {
		return res, nil
	}
	var comps []component.Name
	for _, p := range parts {
		if f := p.Folder(); !slices.Contains(comps, f) {
			comps = append(comps, f)
		}
	}
	pkg, err := checkpoint.Open(dir, checkpoint.Options{Components: comps})
	if err != nil {
		return nil, fmt.Errorf("check: reopen the package: %w", err)
	}
	defer pkg.Close()
	k := s.Kernels
	for i, p := range parts {
		if s.Progress != nil {
			s.Progress(Event{Kind: CheckStarted, Component: p, Index: i + 1, Total: len(parts)})
		}
		src := m.Components[p.Folder()]
		in, err := checkInputs(p, src, m)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", p, err)
		}
		ref, err := runNetwork(p, src, k, in)
		if err != nil {
			return nil, fmt.Errorf("check %s (float model): %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		got, err := runNetwork(p, pkg.Components[p.Folder()], k, in)
		if err != nil {
			return nil, fmt.Errorf("check %s (package): %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		psnr := palette.PSNR(ref, got)
		r := &pigmentpkg.CheckResult{PSNR: psnr, Pass: psnr >= s.CheckThresholdDB}
		if math.IsNaN(psnr) || math.IsInf(psnr, 0) {
			// A non-finite output; JSON cannot hold the value.
			r.PSNR, r.Pass = 0, false
		}
		res.Results[string(p)] = r
		if s.Progress != nil {
			s.Progress(Event{Kind: CheckDone, Component: p, Index: i + 1, Total: len(parts), PSNR: r.PSNR})
		}
	}
	return res, nil
}

// inputs are the fixed inputs of one network's check.
type inputs struct {
	ids     []int          // text encoder, 2 sequences
	x       *tensor.Tensor // UNet sample, VAE latents or image
	context *tensor.Tensor // UNet
}

// checkInputs builds the seeded inputs of network p from the source
// component's config.
func checkInputs(p component.Name, c *checkpoint.Component, m *checkpoint.Model) (*inputs, error) {
	rng := rand.New(rand.NewPCG(checkSeed, uint64(slices.Index(component.Networks(), p))))
	normal := func(shape ...int) *tensor.Tensor {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
		return t
	}
	switch p {
	case component.TextEncoder:
		cfg, err := clip.ParseConfig(c.Config)
		if err != nil {
			return nil, err
		}
		return &inputs{ids: checkIDs(cfg, m, rng)}, nil
	case component.UNet:
		cfg, err := unet.ParseConfig(c.Config)
		if err != nil {
			return nil, err
		}
		side := cfg.SampleSize
		if side <= 0 || side > maxCheckSize {
			side = maxCheckSize
		}
		return &inputs{
			x:       normal(2, cfg.InChannels, side, side),
			context: normal(2, checkContext, cfg.CrossAttentionDim[0]),
		}, nil
	case component.VAEDecoder, component.VAEEncoder:
		cfg, err := vae.ParseConfig(c.Config)
		if err != nil {
			return nil, err
		}
		factor := 1 << (len(cfg.BlockOutChannels) - 1)
		side := cfg.SampleSize / factor
		if side <= 0 || side > maxCheckSize {
			side = maxCheckSize
		}
		if p == component.VAEDecoder {
			return &inputs{x: normal(1, cfg.LatentChannels, side, side)}, nil
		}
		img := tensor.New(1, cfg.InChannels, side*factor, side*factor)
		for i := range img.Data {
			img.Data[i] = float32(2*rng.Float64() - 1)
		}
		return &inputs{x: img}, nil
	}
	return nil, fmt.Errorf("unknown network %q", p)
}

// checkIDs returns the ids of CheckPrompt and of the empty prompt from the
// model's tokenizer or the bundled one, or seeded random ids when neither
// loads or fits the vocabulary.
func checkIDs(cfg clip.Config, m *checkpoint.Model, rng *rand.Rand) []int {
	seq := min(cfg.MaxPositionEmbeddings, checkContext)
	var tok *tokclip.Tokenizer
	var err error
	if m.TokenizerDir != "" {
		tok, err = tokclip.Load(m.TokenizerDir)
	} else {
		tok, err = tokclip.Bundled(m.Family)
	}
	if err == nil && seq >= 2 {
		a, _ := tok.EncodePadded(CheckPrompt, seq)
		b, _ := tok.EncodePadded("", seq)
		ids := append(a, b...)
		if slices.Max(ids) < cfg.VocabSize {
			return ids
		}
	}
	ids := make([]int, 2*seq)
	for i := range ids {
		ids[i] = rng.IntN(cfg.VocabSize)
	}
	return ids
}

// runNetwork runs network p of component c on in and returns its output.
func runNetwork(p component.Name, c *checkpoint.Component, k kernels.Kernels, in *inputs) ([]float32, error) {
	switch p {
	case component.TextEncoder:
		net, err := clip.New(c.Config, c.Weights, k)
		if err != nil {
			return nil, err
		}
		out, err := net.Forward(in.ids, 2)
		if err != nil {
			return nil, err
		}
		return out.Data, nil
	case component.UNet:
		net, err := unet.New(c.Config, c.Weights, k)
		if err != nil {
			return nil, err
		}
		out, err := net.Forward(in.x, checkTimestep, in.context)
		if err != nil {
			return nil, err
		}
		return out.Data, nil
	case component.VAEDecoder, component.VAEEncoder:
		net, err := vae.New(c.Config, c.Weights, k)
		if err != nil {
			return nil, err
		}
		if p == component.VAEDecoder {
			out, err := net.Decode(in.x)
			if err != nil {
				return nil, err
			}
			return out.Data, nil
		}
		mean, _, err := net.Encode(in.x)
		if err != nil {
			return nil, err
		}
		return mean.Data, nil
	}
	return nil, fmt.Errorf("unknown network %q", p)
}
