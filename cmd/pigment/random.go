package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/internal/sdconfigs"
	"github.com/pigment-sd/pigment/internal/testmodel"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// parseWeightSpec reads a weight storage spec: f16, f32, bf16 or palN.
func parseWeightSpec(spec string) (tensor.DType, int, error) {
	switch w := strings.ToLower(spec); {
	case w == "f16":
		return tensor.F16, 0, nil
	case w == "f32":
		return tensor.F32, 0, nil
	case w == "bf16":
		return tensor.BF16, 0, nil
	case strings.HasPrefix(w, "pal"):
		n, err := strconv.Atoi(w[3:])
		if err != nil || !palette.ValidBits(n) {
			return "", 0, fmt.Errorf("weights %q: palN needs N in 1, 2, 3, 4, 6, 8", spec)
		}
		return tensor.F16, n, nil
	}
	return "", 0, fmt.Errorf("weights %q: want f16, f32, bf16 or palN", spec)
}

// randomModel builds a full-size model of an official config with
// deterministic random weights in memory, for benchmarks and smoke runs
// of the whole pipeline without a download. The images are noise.
func randomModel(name, spec string, seed uint64) (*checkpoint.Model, error) {
	dir, ok := benchModels[name]
	if !ok {
		return nil, fmt.Errorf("random weights: unknown config %q (sd15, sd21-base, sd21)", name)
	}
	dtype, bits, err := parseWeightSpec(spec)
	if err != nil {
		return nil, err
	}
	m := &checkpoint.Model{Path: "random-" + name + "-" + spec, Kind: "random", Components: map[string]*checkpoint.Component{}}
	if m.Scheduler, err = sdconfigs.File(dir, "scheduler/scheduler_config.json"); err != nil {
		return nil, err
	}
	for _, comp := range checkpoint.AllComponents() {
		cfg, err := sdconfigs.File(dir, comp+"/config.json")
		if err != nil {
			return nil, err
		}
		var shapes map[string][]int
		switch comp {
		case checkpoint.UNet:
			c, err := unet.ParseConfig(cfg)
			if err != nil {
				return nil, err
			}
			shapes = unet.WeightShapes(c)
		case checkpoint.TextEncoder:
			c, err := clip.ParseConfig(cfg)
			if err != nil {
				return nil, err
			}
			shapes = clip.WeightShapes(c)
			m.Family = checkpoint.FamilySD1
			if c.HiddenAct == "gelu" {
				m.Family = checkpoint.FamilySD2
			}
		case checkpoint.VAE:
			c, err := vae.ParseConfig(cfg)
			if err != nil {
				return nil, err
			}
			shapes = vae.WeightShapes(c)
		}
		var src weights.Source = testmodel.Random(shapes, seed, dtype)
		if bits > 0 {
			if src, err = palettizeSource(src, bits); err != nil {
				return nil, err
			}
		}
		m.Components[comp] = &checkpoint.Component{Name: comp, Config: cfg, Weights: src}
	}
	return m, nil
}
