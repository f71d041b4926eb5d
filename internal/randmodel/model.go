// Package randmodel builds full-size Stable Diffusion models in memory from
// the official configs, with deterministic random weights (randweights),
// so that `pigment bench`, `--random-weights` runs and benchmarks need no
// download: the weight shapes of each component, optional palettization,
// whole models. It does not import testing.
package randmodel

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/pigment-sd/pigment/checkpoint"
	"github.com/pigment-sd/pigment/component"
	"github.com/pigment-sd/pigment/convert"
	"github.com/pigment-sd/pigment/internal/randweights"
	"github.com/pigment-sd/pigment/internal/sdconfigs"
	"github.com/pigment-sd/pigment/model/clip"
	"github.com/pigment-sd/pigment/model/unet"
	"github.com/pigment-sd/pigment/model/vae"
	"github.com/pigment-sd/pigment/palette"
	"github.com/pigment-sd/pigment/parallel"
	"github.com/pigment-sd/pigment/tensor"
	"github.com/pigment-sd/pigment/weights"
)

// configs maps the short names users type to the embedded official
// configs.
var configs = map[string]string{
	"sd15":      "stable-diffusion-v1-5",
	"sd21-base": "stable-diffusion-2-1-base",
	"sd21":      "stable-diffusion-2-1",
}

// ConfigNames lists the short names of the official configs.
const ConfigNames = "sd15, sd21-base, sd21"

// Config returns the embedded folder name of an official config by its
// short name (sd15, sd21-base, sd21).
func Config(name string) (string, error) {
	dir, ok := configs[name]
	if !ok {
		return "", fmt.Errorf("unknown config %q (want %s)", name, ConfigNames)
	}
	return dir, nil
}

// Storage is how random weights are stored: a float dtype, and n-bit
// palettization of the tensors convert palettizes when Bits > 0.
type Storage struct {
	DType tensor.DType
	Bits  int
}

// ParseStorage reads a weight storage spec: f16, f32, bf16 or palN
// (float16 weights palettized to N bits).
func ParseStorage(spec string) (Storage, error) {
	switch w := strings.ToLower(spec); {
	case w == "f16":
		return Storage{DType: tensor.F16}, nil
	case w == "f32":
		return Storage{DType: tensor.F32}, nil
	case w == "bf16":
		return Storage{DType: tensor.BF16}, nil
	case strings.HasPrefix(w, "pal"):
		n, err := strconv.Atoi(w[3:])
		if err != nil || !palette.ValidBits(n) {
			return Storage{}, fmt.Errorf("weights %q: palN needs N in %s", spec, palette.WidthsText)
		}
		return Storage{DType: tensor.F16, Bits: n}, nil
	}
	return Storage{}, fmt.Errorf("weights %q: want f16, f32, bf16 or palN", spec)
}

// Shapes returns the weight shapes of the component folder c for its
// config.json.
func Shapes(c component.Name, cfg []byte) (map[string][]int, error) {
	switch c {
	case component.UNet:
		conf, err := unet.ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return unet.WeightShapes(conf), nil
	case component.TextEncoder:
		conf, err := clip.ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return clip.WeightShapes(conf), nil
	case component.VAE:
		conf, err := vae.ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return vae.WeightShapes(conf), nil
	}
	return nil, fmt.Errorf("randmodel: no shapes for component %q", c)
}

// Component builds component folder c of the official config name with
// random weights stored as st, generated on pool's workers.
func Component(pool *parallel.Pool, name string, c component.Name, st Storage, seed uint64) (*checkpoint.Component, error) {
	dir, err := Config(name)
	if err != nil {
		return nil, err
	}
	cfg, err := sdconfigs.File(dir, string(c)+"/config.json")
	if err != nil {
		return nil, err
	}
	shapes, err := Shapes(c, cfg)
	if err != nil {
		return nil, err
	}
	src := randweights.New(pool, shapes, seed, st.DType)
	if st.Bits > 0 {
		if src, err = Palettize(pool, src, st.Bits); err != nil {
			return nil, err
		}
	}
	return &checkpoint.Component{Name: c, Config: cfg, Weights: src}, nil
}

// Model builds a whole model of the official config name (sd15, sd21-base,
// sd21) with deterministic random weights in memory, stored as spec (see
// ParseStorage): enough to run the whole pipeline without a download. Its
// images are noise.
func Model(pool *parallel.Pool, name, spec string, seed uint64) (*checkpoint.Model, error) {
	dir, err := Config(name)
	if err != nil {
		return nil, fmt.Errorf("random weights: %w", err)
	}
	st, err := ParseStorage(spec)
	if err != nil {
		return nil, err
	}
	m := &checkpoint.Model{Path: "random-" + name + "-" + spec, Kind: "random", Components: map[component.Name]*checkpoint.Component{}}
	if m.Scheduler, err = sdconfigs.File(dir, "scheduler/scheduler_config.json"); err != nil {
		return nil, err
	}
	for _, c := range component.Folders() {
		comp, err := Component(pool, name, c, st, seed)
		if err != nil {
			return nil, err
		}
		if c == component.TextEncoder {
			conf, err := clip.ParseConfig(comp.Config)
			if err != nil {
				return nil, err
			}
			m.Family = checkpoint.FamilySD1
			if conf.HiddenAct == "gelu" {
				m.Family = checkpoint.FamilySD2
			}
		}
		m.Components[c] = comp
	}
	return m, nil
}

// Palettize palettizes the weights pigment convert palettizes by default
// (Linear and Conv weights of at least convert.DefaultMinSize elements,
// stored as float16) with n-bit k-means on pool's workers; the others are
// kept as they are.
func Palettize(pool *parallel.Pool, src weights.Source, bits int) (weights.Source, error) {
	out := weights.Map{}
	for _, name := range src.Names() {
		t, _ := src.Tensor(name)
		shape := t.Shape()
		raw, ok := t.(*weights.Raw)
		if !ok || raw.DType() != tensor.F16 || !convert.Palettizable(name, t) || weights.NumElements(t) < convert.DefaultMinSize {
			out[name] = t
			continue
		}
		b := raw.Bytes()
		h := make([]uint16, len(b)/2)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		p, err := palette.PalettizeF16(name, h, shape, palette.Options{Bits: bits, Pool: pool})
		if err != nil {
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}
