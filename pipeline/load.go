package pipeline

import (
	"fmt"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/kernels"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/nn"
	"github.com/pigment-sd/pigment/scheduler"
	tokclip "github.com/pigment-sd/pigment/tokenizer/clip"
)

// LoadOptions choose how networks are built.
type LoadOptions struct {
	// Kernels runs the arithmetic.
	Kernels kernels.Kernels
	// Attention and Chunk select the attention implementation.
	Attention kernels.AttentionMode
	Chunk     int
}

// Load builds a generation Model from an opened checkpoint, which must
// hold all three components. A checkpoint without a tokenizer (single
// files) gets the bundled CLIP tokenizer of its family.
func Load(m *checkpoint.Model, opt LoadOptions) (*Model, error) {
	for _, c := range component.Folders() {
		if m.Components[c] == nil {
			return nil, fmt.Errorf("model %s has no %s", m.Path, c)
		}
	}
	nopt := nn.Options{Attention: opt.Attention, Chunk: opt.Chunk}
	out := &Model{SchedulerConfig: m.Scheduler}
	var err error
	if m.TokenizerDir != "" {
		out.Tokenizer, err = tokclip.Load(m.TokenizerDir)
	} else {
		out.Tokenizer, err = tokclip.Bundled(m.Family)
	}
	if err != nil {
		return nil, err
	}
	te := m.Components[component.TextEncoder]
	if out.TextEncoder, err = clip.New(te.Config, te.Weights, opt.Kernels, nopt); err != nil {
		return nil, fmt.Errorf("load text encoder: %w", err)
	}
	uc := m.Components[component.UNet]
	u, err := unet.New(uc.Config, uc.Weights, opt.Kernels, nopt)
	if err != nil {
		return nil, fmt.Errorf("load unet: %w", err)
	}
	out.UNet = u
	out.LatentChannels = u.Config().InChannels
	out.SampleSize = u.Config().SampleSize
	vc := m.Components[component.VAE]
	v, err := vae.New(vc.Config, vc.Weights, opt.Kernels, nopt)
	if err != nil {
		return nil, fmt.Errorf("load vae: %w", err)
	}
	out.VAE = v
	vcfg := v.Config()
	out.ScalingFactor = vcfg.ScalingFactor
	out.VAEScaleFactor = 1 << (len(vcfg.BlockOutChannels) - 1)
	if vcfg.LatentChannels != out.LatentChannels {
		return nil, fmt.Errorf("model %s: vae latent_channels %d but unet in_channels %d", m.Path, vcfg.LatentChannels, out.LatentChannels)
	}
	if out.SchedulerClass, err = scheduler.ConfigClassName(m.Scheduler); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Path, err)
	}
	out.evict = map[component.Name]func() error{}
	for name, c := range m.Components {
		out.evict[name] = c.Evict
	}
	return out, nil
}
